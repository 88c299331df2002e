"""``fairseq-relpos convert`` and ``fairseq-relpos inspect`` on a real fairseq checkpoint."""
import json

import pytest
import torch

import fairseq_helpers as h
from fairseq_helpers import ONE_THREAD
from fairseq_versions import is_fused_copy
from model_builders import load_like_fairseq_train, start_argv

from fairseq_relpos.cli import main as cli
from fairseq_relpos.modules.unfused_layer import FUSED_COPIES

pytestmark = pytest.mark.slow  # every test here trains or decodes through fairseq's CLIs


def relpos(*argv):
    return cli.main([str(a) for a in argv])


def model_cfg(path):
    return dict(vars(torch.load(path, weights_only=True)["cfg"]["model"]))


def test_converted_checkpoint_decodes_with_only_the_user_dir(reversal_base, tmp_path):
    data, base, _ = reversal_base
    out = tmp_path / "rope.pt"
    assert relpos("convert", "--pe", "rope", base, out) == 0
    cfg = model_cfg(out)
    assert (cfg["arch"], cfg["_name"], cfg["relative_positions"]) == ("transformer_rope",) * 2 + ("rope",)
    assert cfg["max_source_positions"] == cfg["max_target_positions"] == 4096
    proc = h.run("generate", data, "--path", out, "--user-dir", h.PLUGIN, "--gen-subset", "test",
                 "--batch-size", 4, "--required-batch-size-multiple", 1, "--beam", 2,
                 "--max-len-b", 20, env=ONE_THREAD)
    assert len(h.hypotheses(proc.stdout)) == 16


def test_convert_drops_the_fused_copies_fairseq_0_12_2_saves(reversal_base, tmp_path):
    """A stock checkpoint of fairseq 0.12.2 holds each encoder layer's fused copy of its weights
    (derived at every load); the converted relative checkpoint holds none, on any fairseq."""
    _, base, _ = reversal_base
    state = torch.load(base, weights_only=True)
    layer = state["model"]["encoder.layers.0.self_attn.q_proj.weight"]
    for name in FUSED_COPIES:
        state["model"].setdefault(f"encoder.layers.0.{name}", torch.zeros_like(layer))
    torch.save(state, tmp_path / "base-0.12.2.pt")
    assert relpos("convert", "--pe", "rope", tmp_path / "base-0.12.2.pt", tmp_path / "rope.pt") == 0
    converted = torch.load(tmp_path / "rope.pt", weights_only=True)["model"]
    assert not [k for k in converted if is_fused_copy(k)]
    assert set(converted) == {k for k in state["model"] if not is_fused_copy(k) and ".embed_positions." not in k}


def test_round_trip_to_rope_and_back_restores_the_stock_model(reversal_base, tmp_path):
    _, base, _ = reversal_base
    rope, back = tmp_path / "rope.pt", tmp_path / "back.pt"
    assert relpos("convert", "--pe", "rope", "--rope-theta", 500, base, rope) == 0
    assert model_cfg(rope)["rope_theta"] == 500
    assert relpos("convert", "--pe", "sinusoidal", "--max-positions", 1024, rope, back) == 0
    original, returned = torch.load(base, weights_only=True), torch.load(back, weights_only=True)
    assert model_cfg(back) == model_cfg(base)  # stock `transformer`, no relative options left
    # but for what fairseq 0.12.2 saves and main does not, all derived and dropped by name: the
    # sinusoidal buffers and each encoder layer's fused copy of its weights
    assert set(returned["model"]) == {k for k in original["model"]
                                      if not k.endswith(".embed_positions._float_tensor") and not is_fused_copy(k)}
    for key, tensor in returned["model"].items():
        assert torch.equal(returned["model"][key], tensor), key


def test_relative_options_can_be_changed_between_relative_types(reversal_base, tmp_path, capsys):
    _, base, _ = reversal_base
    rope, alibi = tmp_path / "rope.pt", tmp_path / "alibi.pt"
    relpos("convert", "--pe", "rope", base, rope)
    assert relpos("convert", "--pe", "alibi", "--alibi-encoder", "asymmetric", "--max-positions", 2048,
                  rope, alibi) == 0
    capsys.readouterr()
    assert relpos("inspect", "--json", alibi) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["positions"] == {"type": "alibi", "encoder": "asymmetric", "decoder": "causal",
                                 "max_source_positions": 2048, "max_target_positions": 2048}
    assert info["model"] == "transformer_relpos"


def test_optimizer_state_is_dropped_unless_kept(reversal_base, tmp_path):
    _, base, _ = reversal_base
    assert "last_optimizer_state" in torch.load(base, weights_only=True)
    relpos("convert", "--pe", "nope", base, tmp_path / "dropped.pt")
    relpos("convert", "--pe", "nope", "--keep-optimizer-state", base, tmp_path / "kept.pt")
    assert "last_optimizer_state" not in torch.load(tmp_path / "dropped.pt", weights_only=True)
    assert "last_optimizer_state" in torch.load(tmp_path / "kept.pt", weights_only=True)


def _refusal(capsys, folder, *argv):
    before = sorted(p.name for p in folder.iterdir())
    assert relpos(*argv) == 2
    assert sorted(p.name for p in folder.iterdir()) == before  # no OUT, no temporary file
    return capsys.readouterr().err


def test_convert_refusals_write_nothing(reversal_base, tmp_path, capsys):
    _, base, _ = reversal_base
    work = tmp_path / "work"
    work.mkdir()
    rope = work / "rope.pt"
    relpos("convert", "--pe", "rope", base, rope)
    stamp = rope.read_bytes()
    alias = work / "alias.pt"
    alias.symlink_to(rope)
    err = _refusal(capsys, work, "convert", "--pe", "alibi", "--force", rope, alias)
    assert "refusing to overwrite the input" in err
    assert rope.read_bytes() == stamp
    assert "exists; pass --force" in _refusal(capsys, work, "convert", "--pe", "alibi", base, rope)
    assert "no such checkpoint" in _refusal(capsys, work, "convert", "--pe", "rope", work / "gone.pt", work / "o.pt")
    junk = work / "junk.pt"
    junk.write_text("hello\n")
    assert "junk.pt is not a fairseq checkpoint" in _refusal(capsys, work, "convert", "--pe", "rope", junk, work / "o.pt")
    assert "--rope-theta 500.0 applies only to RoPE" in _refusal(capsys, work, "convert", "--pe", "alibi", "--rope-theta", 500, base, work / "o.pt")
    assert "--alibi-encoder asymmetric applies only to ALiBi" in _refusal(capsys, work, "convert", "--pe", "rope", "--alibi-encoder", "asymmetric", base, work / "o.pt")
    assert "already has sinusoidal" in _refusal(capsys, work, "convert", "--pe", "sinusoidal", base, work / "o.pt")
    state = torch.load(base, weights_only=True)
    state["model"]["encoder.embed_positions.weight"] = torch.zeros(66, 32)
    learned = work / "learned.pt"
    torch.save(state, learned)
    assert "learned positional embeddings" in _refusal(capsys, work, "convert", "--pe", "rope", learned, work / "o.pt")


def test_a_failed_write_leaves_no_partial_file(reversal_base, tmp_path, monkeypatch, capsys):
    _, base, _ = reversal_base

    def full_disk(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "out.pt"
    assert relpos("convert", "--pe", "rope", base, out) == 2
    said = capsys.readouterr().err.strip()
    assert said == f"fairseq-relpos convert: error: No space left on device; nothing was replaced or left behind: {out}"
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_cannot_be_written_are_one_line_and_nothing_is_written(reversal_base, tmp_path, capsys):
    """A directory as OUT (even with --force) or OUT under a regular file (fails for root too,
    unlike a read-only folder)."""
    _, base, _ = reversal_base
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep").write_text("x")
    err = _refusal(capsys, tmp_path, "convert", "--pe", "rope", "--force", base, folder)
    assert "folder is a directory" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in folder.iterdir()] == ["keep"]
    (tmp_path / "f").write_text("x")
    err = _refusal(capsys, tmp_path, "convert", "--pe", "rope", base, tmp_path / "f" / "out.pt")
    assert "f is a file, not a folder" in err and len(err.strip().splitlines()) == 1


def test_inspect_describes_a_stock_checkpoint(reversal_base, tmp_path, capsys):
    data, base, _ = reversal_base
    assert relpos("inspect", "--json", base) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["architecture"], info["model"], info["positions"]["type"]) == ("transformer", "transformer", "sinusoidal")
    for stack in ("encoder", "decoder"):
        assert info["shapes"][stack] == {"layers": 2, "embed_dim": 32, "ffn_dim": 64, "attention_heads": 4, "norm": "post"}
    assert info["shapes"]["share_all_embeddings"] and info["shapes"]["activation_fn"] == "relu"
    trainer = load_like_fairseq_train(start_argv(data, tmp_path / "save", "transformer_rope", base, "finetune"))
    assert info["parameters"] == sum(p.numel() for p in trainer.model.parameters())
    size = len(trainer.task.source_dictionary)
    assert info["dictionaries"] == {"source": size, "target": size, "joined": True}
    assert info["adapters"] is None and info["task"]["name"] == "translation"
    assert info["updates"] > 0 and info["optimizer_state"] is True

    assert relpos("inspect", base) == 0
    text = capsys.readouterr().out
    for expected in ("architecture:   transformer (model transformer)", "positions:      sinusoidal",
                     "encoder:        2 layers, dim 32, ffn 64, 4 heads, post-norm",
                     f"parameters:     {info['parameters']:,}", "(joined)", "adapters:       none",
                     "version not recorded"):
        assert expected in text


def test_inspect_shows_rope_options_and_adapters(reversal_base, tmp_path, capsys):
    _, base, _ = reversal_base
    rope = tmp_path / "rope.pt"
    relpos("convert", "--pe", "rope", "--rope-fraction", 1.0, "--rope-layout", "half", base, rope)
    state = torch.load(rope, weights_only=True)
    state["model"]["encoder.layers.0.self_attn.q_proj.lora_A"] = torch.zeros(4, 32)
    state["model"]["encoder.layers.0.self_attn.q_proj.lora_B"] = torch.zeros(32, 4)
    torch.save(state, rope)
    capsys.readouterr()
    assert relpos("inspect", rope) == 0
    text = capsys.readouterr().out
    assert "rope (theta=10000.0, fraction=1.0, layout=half, scaling=none" in text
    assert "2 LoRA tensors, 256 parameters" in text
    assert "transformer_rope (model transformer_relpos)" in text
