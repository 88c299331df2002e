"""Switching a pre-trained sinusoidal checkpoint to RoPE/ALiBi/NoPE in one fairseq-train command.

A tiny stock ``transformer`` is trained on the reversal corpus (its targets depend on
positions), then started from by relative architectures: through fairseq's own trainer and
checkpoint_utils (in-process, exact tensors) and through the real fairseq-train CLI.
"""
import re
import shutil

import pytest
import torch

import fairseq_helpers as h
from fairseq_versions import is_fused_copy
from fairseq_helpers import BASE_UPDATES, ONE_THREAD, fairseq_train, valid_loss
from model_builders import RESETS, load_like_fairseq_train, start_argv

FINETUNE_UPDATES = 25

pytestmark = pytest.mark.slow  # every test here trains or decodes through fairseq's CLIs


def assert_holds_every_base_weight(model, checkpoint):
    base = torch.load(checkpoint, weights_only=True)["model"]
    # not weights: sinusoidal tables, and fairseq 0.12.2's fused copies (rebuilt at every load)
    base = {k: v for k, v in base.items() if ".embed_positions." not in k and not is_fused_copy(k)}
    got = model.state_dict()
    assert set(got) == set(base)
    for key, tensor in base.items():
        assert torch.equal(got[key], tensor), key


@pytest.mark.parametrize("arch,form", [("transformer_rope", "finetune"), ("transformer_rope", "restore"),
                                       ("transformer_alibi", "finetune"), ("transformer_nope", "restore")])
def test_switched_model_holds_exactly_the_base_weights(reversal_base, tmp_path, arch, form):
    data, base, _ = reversal_base
    # No shape flags: layers, dims, heads, sharing all come from the checkpoint. Its Adam
    # state (a different model class saved it) is left alone by the reset flags.
    trainer = load_like_fairseq_train(start_argv(data, tmp_path / "save", arch, base, form,
                                                 "--share-all-embeddings"))
    assert type(trainer.model).__name__ == "RelativeTransformerModel"
    assert trainer.get_num_updates() == 0
    assert_holds_every_base_weight(trainer.model, base)
    assert trainer.model.encoder.embed_positions is None
    assert trainer.model.encoder.layers[0].self_attn.__class__.__name__ == "RelativeSelfAttention"


def test_finetuned_switch_beats_training_from_scratch(reversal_base, tmp_path):
    data, base, base_loss = reversal_base
    start = tmp_path / "it2.pt"
    start.write_bytes(base.read_bytes())
    tuned = fairseq_train(data, tmp_path / "ft", "transformer_rope", "--finetune-from-model", start,
                          updates=FINETUNE_UPDATES, tiny=False)
    scratch = fairseq_train(data, tmp_path / "scratch", "transformer_rope", "--share-all-embeddings",
                            updates=FINETUNE_UPDATES)
    tuned_loss, scratch_loss = valid_loss(tuned), valid_loss(scratch)
    print(f"valid loss: sinusoidal base {base_loss:.3f} ({BASE_UPDATES} updates); RoPE after "
          f"{FINETUNE_UPDATES} updates: fine-tuned from base {tuned_loss:.3f}, from scratch {scratch_loss:.3f}")
    assert tuned_loss < scratch_loss - 0.5
    assert "loading pretrained model from" in tuned.stdout + tuned.stderr
    # The fine-tuned file decodes on its own, even once the checkpoint it started from is gone.
    start.unlink()
    proc = h.run("generate", data, "--path", tmp_path / "ft" / "checkpoint_last.pt", "--user-dir", h.PLUGIN,
                 "--gen-subset", "test", "--batch-size", 4, "--required-batch-size-multiple", 1, "--beam", 2,
                 "--max-len-b", 20, env=ONE_THREAD)
    assert len(h.hypotheses(proc.stdout)) == 16


def test_wrong_dimensions_stop_with_an_explanation_and_write_nothing(reversal_base, tmp_path):
    data, base, _ = reversal_base
    proc = fairseq_train(data, tmp_path / "save", "transformer_rope", "--restore-file", base, *RESETS,
                         "--encoder-ffn-embed-dim", "128", updates=1, tiny=False, check=False)
    assert proc.returncode != 0
    assert "nothing was loaded" in proc.stderr
    assert "wrong shape" in proc.stderr and "encoder.layers.0.fc1.weight" in proc.stderr
    assert "do not restate the checkpoint's shape" in proc.stderr
    assert not list((tmp_path / "save").glob("*.pt"))


def test_a_different_dictionary_stops_with_an_explanation_and_writes_nothing(reversal_base, tmp_path):
    _, base, _ = reversal_base
    raw = h.write_reversal_corpus(tmp_path / "raw", sizes=(("train", 50), ("valid", 10)), vocab=25)
    other = h.preprocess(raw, tmp_path / "bin", splits=("train", "valid"), extra=["--joined-dictionary"])
    proc = fairseq_train(other, tmp_path / "save", "transformer_alibi", "--finetune-from-model", base,
                         updates=1, tiny=False, check=False)
    assert proc.returncode != 0
    assert re.search(r"encoder.embed_tokens.weight: checkpoint \(\d+, 32\) vs model \(\d+, 32\)", proc.stderr)
    assert "dictionaries differ" in proc.stderr
    assert not list((tmp_path / "save").glob("*.pt"))


@pytest.mark.parametrize("form", ["finetune", "restore"])
def test_a_file_that_is_not_a_checkpoint_is_named_before_anything_is_built(reversal_base, tmp_path, form):
    data, _, _ = reversal_base
    junk = tmp_path / "notes.pt"
    junk.write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match="notes.pt is not a fairseq checkpoint"):
        load_like_fairseq_train(start_argv(data, tmp_path / "save", "transformer_rope", junk, form))


def test_a_missing_restore_file_is_an_error_not_training_from_scratch(reversal_base, tmp_path):
    # Stock fairseq starts from scratch, silently, when --restore-file names no file.
    data, _, _ = reversal_base
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_like_fairseq_train(start_argv(data, tmp_path / "save", "transformer_rope",
                                           tmp_path / "missing.pt", "restore"))


def test_learned_positions_are_refused_by_name(reversal_base, tmp_path):
    data, base, _ = reversal_base
    state = torch.load(base, weights_only=True)
    vars(state["cfg"]["model"])["encoder_learned_pos"] = True
    state["model"]["encoder.embed_positions.weight"] = torch.zeros(66, 32)
    learned = tmp_path / "learned.pt"
    torch.save(state, learned)
    with pytest.raises(RuntimeError, match="learned positional embeddings"):
        load_like_fairseq_train(start_argv(data, tmp_path / "save", "transformer_rope", learned, "finetune"))


def test_separate_dictionaries_with_language_tags(tmp_path):
    """IndicTrans2's layout: tags before the text, a dictionary per side, no shared embeddings."""
    raw = h.write_reversal_corpus(tmp_path / "raw", sizes=(("train", 80), ("valid", 16)), vocab=12)
    for split in ("train", "valid"):
        src = raw / f"{split}.src"
        src.write_text("".join(f"eng_Latn hin_Deva {line}\n" for line in src.read_text().splitlines()))
    data = h.preprocess(raw, tmp_path / "bin", splits=("train", "valid"))
    fairseq_train(data, tmp_path / "base", "transformer_base18L", "--encoder-layers", 2,
                  "--decoder-layers", 2, "--encoder-embed-dim", 32, "--decoder-embed-dim", 32,
                  "--encoder-ffn-embed-dim", 64, "--decoder-ffn-embed-dim", 64,
                  "--encoder-attention-heads", 4, "--decoder-attention-heads", 4,
                  "--activation-fn", "gelu", updates=2, tiny=False)
    base = tmp_path / "base" / "checkpoint_last.pt"
    trainer = load_like_fairseq_train(start_argv(data, tmp_path / "save", "transformer_rope", base, "finetune"))
    model = trainer.model
    assert_holds_every_base_weight(model, base)
    assert model.encoder.embed_tokens.weight.shape[0] != model.decoder.embed_tokens.weight.shape[0]
    assert model.encoder.embed_tokens is not model.decoder.embed_tokens
    # transformer_base18L's pre-norm and layernorm_embedding came from the checkpoint, too
    assert model.encoder.layers[0].normalize_before and model.encoder.layernorm_embedding is not None
    assert trainer.cfg.model.activation_fn == "gelu"


@pytest.mark.parametrize("task", [(), ("--task", "translation_lora")])
def test_a_resume_needs_no_finetune_base_once_checkpoint_last_exists(reversal_base, tmp_path, task):
    """fairseq resumes from --save-dir's checkpoint_last.pt and ignores --finetune-from-model
    once that exists, so the same command resumes after the base has moved; the model's shape
    (no shape flags given) comes from the checkpoint fairseq resumes from."""
    data, base, _ = reversal_base
    start, save = tmp_path / "base.pt", tmp_path / "save"
    shutil.copy(base, start)
    first = fairseq_train(data, save, "transformer_rope", "--finetune-from-model", start, *task,
                          updates=2, tiny=False)
    assert "loading pretrained model from" in first.stdout + first.stderr
    start.rename(tmp_path / "moved.pt")
    again = fairseq_train(data, save, "transformer_rope", "--finetune-from-model", start, *task,
                          updates=4, tiny=False, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "loading pretrained model from" not in again.stdout + again.stderr
    resumed = torch.load(save / "checkpoint_last.pt", weights_only=True)
    assert resumed["optimizer_history"][-1]["num_updates"] == 4
