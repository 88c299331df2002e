"""Bad positional options are refused, naming the option, by every path that takes them:
``convert`` (nothing written), fairseq-train (before training) and the model's build."""
import math

import pytest
import torch

import fairseq_helpers as h
from fork_fixtures import load_like_generate, source_model
from model_builders import build

from fairseq_relpos.cli import main as cli
from fairseq_relpos.modules import RotaryEmbedding
from fairseq_relpos.positions import DEFAULTS

# (convert options, the option the error must name); the tiny models have 8-dimensional heads
BAD = [
    (["--pe", "rope", "--rope-theta", "0"], "--rope-theta"),
    (["--pe", "rope", "--rope-theta", "1"], "--rope-theta"),
    (["--pe", "rope", "--rope-theta", "nan"], "--rope-theta"),
    (["--pe", "rope", "--rope-theta", "inf"], "--rope-theta"),
    (["--pe", "rope", "--rope-fraction", "1.5"], "--rope-fraction"),
    (["--pe", "rope", "--rope-fraction", "0"], "--rope-fraction"),
    (["--pe", "rope", "--rope-fraction", "nan"], "--rope-fraction"),
    (["--pe", "rope", "--rope-fraction", "0.3"], "--rope-fraction"),  # 2.4 of 8 dimensions
    (["--pe", "rope", "--rope-fraction", "0.125"], "--rope-fraction"),  # 1 dimension: no pair
    (["--pe", "rope", "--rope-scaling", "linear", "--rope-scaling-factor", "0"], "--rope-scaling-factor"),
    (["--pe", "rope", "--rope-scaling", "ntk", "--rope-scaling-factor", "inf"], "--rope-scaling-factor"),
    (["--pe", "rope", "--rope-scaling", "linear", "--rope-scaling-factor", "0.5"], "--rope-scaling-factor"),
    (["--pe", "rope", "--rope-scaling-factor", "2"], "--rope-scaling-factor"),
    (["--pe", "rope", "--max-positions", "0"], "--max-positions"),
    (["--pe", "alibi", "--max-positions", "-5"], "--max-positions"),
    (["--pe", "nope", "--max-positions", "1.5"], "--max-positions"),
]


def relpos_status(argv):
    """cli.main's exit status; argparse's own refusals exit 2 through SystemExit."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as stop:
        return stop.code


@pytest.mark.slow
@pytest.mark.parametrize("options,named", BAD)
def test_convert_refuses_bad_values_and_writes_nothing(reversal_base, tmp_path, capsys, options, named):
    _, base, _ = reversal_base
    assert relpos_status(["convert", *options, base, tmp_path / "out.pt"]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_convert_accepts_the_edges(reversal_base, tmp_path):
    _, base, _ = reversal_base
    assert relpos_status(["convert", "--pe", "rope", "--rope-theta", "1.5", "--rope-fraction", "0.25",
                          "--rope-scaling", "ntk", "--rope-scaling-factor", "1", "--max-positions", "1",
                          base, tmp_path / "out.pt"]) == 0


@pytest.mark.parametrize("extra,named", [
    (["--rope-theta", "nan"], "--rope-theta"),
    (["--rope-fraction", "2"], "--rope-fraction"),
    (["--rope-scaling-factor", "-1"], "--rope-scaling-factor"),
])
def test_the_training_parser_refuses_bad_values(dicts, capsys, extra, named):
    with pytest.raises(SystemExit) as stop:
        build(dicts, "transformer_rope", extra=extra)
    assert stop.value.code == 2 and f"argument {named}: must be" in capsys.readouterr().err


@pytest.mark.parametrize("arch,extra,named", [
    ("transformer_rope", ["--rope-fraction", "0.3"], "--rope-fraction"),
    ("transformer_rope", ["--rope-scaling-factor", "4"], "--rope-scaling-factor"),  # no --rope-scaling
    ("transformer_alibi", ["--max-source-positions", "0"], "--max-source-positions"),
    ("transformer_nope", ["--max-target-positions", "-3"], "--max-target-positions"),
    # heads that leave 1 dimension each, or do not divide: the heads are named, not only --rope-fraction
    ("transformer_rope", ["--encoder-attention-heads", "32"], r"\(--encoder-embed-dim 32 over --encoder-attention-heads 32\)"),
    ("transformer_rope", ["--decoder-attention-heads", "3"], "--decoder-attention-heads 3 must be a positive integer that divides"),
])
def test_the_model_refuses_bad_combinations_and_lengths(dicts, arch, extra, named):
    with pytest.raises(ValueError, match=named):
        build(dicts, arch, extra=extra)


def test_rotary_module_applies_the_same_rule():
    with pytest.raises(ValueError, match="--rope-fraction"):
        RotaryEmbedding(8, fraction=0.3)
    with pytest.raises(ValueError, match="--rope-theta"):
        RotaryEmbedding(8, theta=math.nan)
    assert RotaryEmbedding(12, fraction=0.5).dim == 6


@pytest.mark.slow
def test_fairseq_train_refuses_nan_theta_before_training(tmp_path):
    raw = h.write_reversal_corpus(tmp_path / "raw", sizes=(("train", 20), ("valid", 4)))
    data = h.preprocess(raw, tmp_path / "bin", splits=("train", "valid"))
    proc = h.run("train", data, "--arch", "transformer_rope", "--save-dir", tmp_path / "save", "--max-update", 2,
                 *h.TRAIN, *h.TINY, "--user-dir", h.PLUGIN, "--rope-theta", "nan", check=False)
    assert proc.returncode == 2
    assert "argument --rope-theta: must be a finite number > 1, got 'nan'" in proc.stderr
    assert not (tmp_path / "save").exists()


# ------------------------------------------------------- switching between relative kinds

NON_DEFAULT = {"rope": ["--rope-theta", "500", "--rope-layout", "half", "--rope-fraction", "1.0",
                        "--rope-scaling", "linear", "--rope-scaling-factor", "2"],
               "alibi": ["--alibi-encoder", "asymmetric"]}


def saved_options(path):
    model = torch.load(path, weights_only=True)["cfg"]["model"]
    return {k: getattr(model, k) for k in ("relative_positions", *DEFAULTS)}


@pytest.mark.parametrize("source,target", [("rope", "alibi"), ("rope", "nope"), ("alibi", "rope"),
                                           ("alibi", "nope")])
def test_the_old_kinds_options_do_not_follow_a_switch_to_another_kind(tmp_path, source, target):
    """A checkpoint's own options of its old kind (never given by the user) are neither refused
    nor kept when it is converted or fine-tuned to another kind: the new kind starts from its
    defaults, and the weights load strictly."""
    data, _, _, path = source_model(tmp_path, f"transformer_{source}", NON_DEFAULT[source])
    assert any(saved_options(path)[k] != DEFAULTS[k] for k in DEFAULTS)
    expected = dict(DEFAULTS, relative_positions=target)

    out = tmp_path / "converted.pt"
    assert relpos_status(["convert", "--pe", target, path, out]) == 0
    assert saved_options(out) == expected
    load_like_generate(out, data)

    _, model, cfg = build(data, f"transformer_{target}", extra=["--finetune-from-model", str(path)])
    assert {k: getattr(cfg.model, k) for k in expected} == expected
    model.load_state_dict(torch.load(path, weights_only=True)["model"], strict=True, model_cfg=cfg.model)


def test_a_switch_within_a_kind_keeps_the_checkpoints_options(tmp_path):
    data, _, _, path = source_model(tmp_path, "transformer_rope", NON_DEFAULT["rope"])
    kept = saved_options(path)
    assert relpos_status(["convert", "--pe", "rope", "--max-positions", "64", path, tmp_path / "out.pt"]) == 0
    assert saved_options(tmp_path / "out.pt") == kept
    _, _, cfg = build(data, "transformer_rope", extra=["--finetune-from-model", str(path)])
    assert {k: getattr(cfg.model, k) for k in kept} == kept
