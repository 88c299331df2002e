"""Checkpoints holding numpy data (the BLEU counters of --eval-bleu runs) load under weights_only,
through every path; anything beyond plain numpy numbers is still refused unexecuted."""
import importlib.util
import io
import os
import pickletools
import re
import zipfile

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_helpers import PLUGIN, hypotheses, preprocess, run, train, write_reversal_corpus
from fairseq_versions import stock_fast_path_bug
from fairseq_relpos.cli import main as cli
from fairseq_relpos.checkpoints import UnsafeCheckpointError, read_checkpoint

BLEU_RUN = ["--eval-bleu", "--eval-bleu-args", '{"beam": 1}', "--eval-bleu-detok", "space",
            "--best-checkpoint-metric", "bleu", "--maximize-best-checkpoint-metric"]
# where this numpy's pickles name its array and scalar constructors
WRITTEN = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


def pickle_globals(path):
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def assert_same(a, b):
    """Equal values of equal types, through nested dicts, lists and numpy data."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif hasattr(a, "__dict__"):
        assert_same(vars(a), vars(b))
    else:
        assert a == b


@pytest.fixture(scope="module")
def bleu_run(tmp_path_factory):
    """A stock fairseq-train run (no plugin) that keeps BLEU as the best-checkpoint metric."""
    root = tmp_path_factory.mktemp("bleu")
    raw = write_reversal_corpus(root / "raw", sizes=(("train", 200), ("valid", 20), ("test", 5)))
    data = preprocess(raw, root / "bin")
    train(data, root / "save", "transformer", *BLEU_RUN, updates=4, user_dir=False)
    best = root / "save" / "checkpoint_best.pt"
    assert f"{WRITTEN}.multiarray._reconstruct" in pickle_globals(best)  # what the plugin must allow
    return data, best


@pytest.mark.slow
@stock_fast_path_bug
def test_eval_bleu_checkpoint_decodes_with_the_plugin(bleu_run):
    data, best = bleu_run
    out = run("generate", data, "--path", best, "--user-dir", PLUGIN, "--gen-subset", "test",
              "--batch-size", "8", env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": ""})
    assert sorted(hypotheses(out.stdout)) == list(range(5))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["--finetune-from-model", "--restore-file"])
def test_eval_bleu_checkpoint_starts_a_plugin_run(bleu_run, how, tmp_path):
    data, best = bleu_run
    proc = train(data, tmp_path, "transformer", how, best, updates=6)
    log = proc.stdout + proc.stderr
    loaded = re.search(r"Loaded checkpoint \S+ \(epoch \d+ @ (\d+) updates\)", log)
    assert loaded, log[-2000:]
    assert int(loaded.group(1)) == (0 if how == "--finetune-from-model" else 4)  # optimizer history reset, or kept
    assert (tmp_path / "checkpoint_last.pt").is_file()


@pytest.mark.slow
def test_eval_bleu_checkpoint_inspects_and_converts_with_its_metrics(bleu_run, tmp_path, capsys):
    _, best = bleu_run
    unrestricted = torch.load(best, map_location="cpu", weights_only=False)
    assert_same(read_checkpoint(str(best))["extra_state"], unrestricted["extra_state"])
    assert cli.main(["inspect", str(best)]) == 0
    assert re.search(r"updates: +4, optimizer state kept", capsys.readouterr().out)
    out = tmp_path / "rope.pt"
    assert cli.main(["convert", "--pe", "rope", str(best), str(out)]) == 0
    assert_same(read_checkpoint(str(out))["extra_state"]["metrics"], unrestricted["extra_state"]["metrics"])


# ---- hand-made files: both numpy spellings, and what stays refused ------------------------------

NUMPY_DATA = {"counts": np.arange(4, dtype=np.int64), "totals": np.array([1.5, 2.5], dtype=np.float32),
              "bleu": np.float64(12.25), "flag": np.bool_(True), "c": np.array([1 + 2j]), "n": np.uint8(7)}


def saved_state(path, spelling=WRITTEN, **extra):
    """A torch.save'd checkpoint with numpy metrics, whose pickle names numpy's array and scalar
    constructors under ``spelling`` (numpy 1.x writes numpy.core, numpy 2.x numpy._core)."""
    state = {"model": {"w": torch.ones(2)}, "cfg": {"model": {"_name": "transformer"}},
             "extra_state": {"metrics": dict(NUMPY_DATA)}, **extra}
    buf = io.BytesIO()
    torch.save(state, buf)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("data.pkl"):
                data = data.replace(WRITTEN.encode() + b".multiarray\n", spelling.encode() + b".multiarray\n")
            dst.writestr(item, data)
    return state


@pytest.mark.parametrize("spelling", ["numpy.core", "numpy._core"])
def test_numpy_arrays_and_scalars_load_under_both_spellings(spelling, tmp_path):
    path = tmp_path / "ckpt.pt"
    state = saved_state(path, spelling)
    assert {f"{spelling}.multiarray._reconstruct", f"{spelling}.multiarray.scalar"} <= pickle_globals(path)
    assert_same(read_checkpoint(str(path))["extra_state"], state["extra_state"])
    if importlib.util.find_spec(spelling) is not None:  # numpy 1.x has no numpy._core to import
        assert_same(torch.load(path, map_location="cpu")["extra_state"], state["extra_state"])  # as fairseq loads


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_next_to_numpy_data_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    saved_state(path, hook=_RunsCode(marker))  # the numpy metrics come first in the pickle
    for load in (read_checkpoint, checkpoint_utils.load_checkpoint_to_cpu):
        with pytest.raises(UnsafeCheckpointError) as err:
            load(str(path))
        said = str(err.value)
        assert said.startswith(f"refused to load {path}: its pickle references the global posix.system")
        assert "never" not in said
    assert not marker.exists()


@pytest.mark.parametrize("value,kind", [(np.array([1, "x"], dtype=object), "O"), (np.array(["ab"]), "U"),
                                        (np.datetime64("2024-01-01"), "M")])
def test_numpy_data_other_than_numbers_is_refused(value, kind, tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"model": {}, "cfg": {"model": {}}, "extra_state": {"metrics": {"x": value}}}, path)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(f"refused to load {path}: its pickle references "
                                                              f"numpy.dtype('{kind}")):
        read_checkpoint(str(path))
