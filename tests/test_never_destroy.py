"""Never destroy what the user gave (issue 17): bad outputs refused before anything is written,
crafted checkpoints refused before they are built, and kills or a full disk mid-write leave every
input and every earlier output as it was.

Every refusal is checked to be one line that names the path and says what to do, and every
folder the command touched is compared by checksums before and after.
"""
import argparse
import builtins
import errno
import hashlib
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import fairseq_helpers as h
from model_builders import build, write_dicts

from fairseq import checkpoint_utils
from fairseq_relpos.cli import main as cli
from fairseq_relpos.checkpoints import UnsafeCheckpointError, read_checkpoint
from fairseq_relpos.fairseq_patches import UnknownArchitectureError
from fairseq_relpos.modules.rotary import RotaryEmbedding

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def checksums(*roots):
    """{path: sha256} of every file under the given files or folders (hidden ones too)."""
    sums = {}
    for root in map(Path, roots):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            sums[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return sums


def refused(capsys, command, *argv, mentions=()):
    """Run ``fairseq-relpos COMMAND ARGV``; it must exit 2 with one line naming ``mentions``."""
    assert cli.main([command, *map(str, argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"fairseq-relpos {command}: error: "), err
    for text in mentions:
        assert str(text) in err, (text, err)
    return err


def save_checkpoint(state_of, path):
    torch.save(state_of, path)
    return path


def tiny_state(data, arch="transformer_rope", extra=()):
    """A fairseq checkpoint's state for a random tiny model, as fairseq-train saves it."""
    _, model, cfg = build(data, arch, extra=extra)
    return {"args": None, "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
            "model": model.state_dict(), "extra_state": {},
            "optimizer_history": [{"criterion_name": "LabelSmoothedCrossEntropyCriterion",
                                   "optimizer_name": "Adam", "lr_scheduler_state": {}, "num_updates": 10}]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """work/{data (dictionaries), ckpt/{checkpoint_best.pt, checkpoint_last.pt, train.log}}."""
    work = tmp_path_factory.mktemp("work")
    data = write_dicts(work / "data")
    (work / "ckpt").mkdir()
    state = tiny_state(data)
    best = save_checkpoint(state, work / "ckpt" / "checkpoint_best.pt")
    save_checkpoint(state, work / "ckpt" / "checkpoint_last.pt")
    (work / "ckpt" / "train.log").write_text("epoch 1 | loss 3.2\n")
    return work, data, best


def needs_ct2():
    pytest.importorskip("ctranslate2", reason="the export needs the ct2 extra")


# ------------------------------------------------------------ 1. export OUTDIR never an input

@pytest.mark.parametrize("where", ["checkpoint's folder", "data folder", "parent of both", "inside data",
                                   "working folder"])
def test_export_force_never_replaces_a_folder_holding_or_inside_its_inputs(run_dir, capsys, monkeypatch, where):
    needs_ct2()
    work, data, best = run_dir
    before = checksums(work)
    outdir = {"checkpoint's folder": best.parent, "data folder": data, "parent of both": work,
              "inside data": data / "ct2", "working folder": Path(".")}[where]
    if where == "working folder":
        monkeypatch.chdir(best.parent)
        best = Path("..") / "ckpt" / best.name
    err = refused(capsys, "export", best, outdir, "--data", data, "--force",
                  mentions=[os.path.abspath(outdir), "give another folder"])
    assert "refusing to write" in err
    assert checksums(work) == before and sorted(os.listdir(work)) == ["ckpt", "data"]


def test_export_force_replaces_only_an_earlier_export(run_dir, tmp_path, capsys):
    needs_ct2()
    work, data, best = run_dir
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    (mine / "model.bin").write_text("not a model")
    a_file = tmp_path / "a_file"
    a_file.write_text("mine too")
    before = checksums(tmp_path)
    for outdir, reason in ((mine, "it holds notes.txt, which an export does not write"), (a_file, "it is a file")):
        refused(capsys, "export", best, outdir, "--data", data, "--force", mentions=[outdir, reason])
    assert checksums(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["a_file", "mine"]
    out = tmp_path / "ct2"
    assert cli.main(["export", str(best), str(out), "--data", str(data)]) == 0
    first = checksums(out)
    assert cli.main(["export", str(best), str(out), "--data", str(data), "--force", "--beam", "2"]) == 0
    assert json.loads((out / "decoding.json").read_text())["beam"] == 2
    assert {Path(p).name for p in first} == {p.name for p in out.iterdir()}  # the same export's files
    assert sorted(os.listdir(tmp_path)) == ["a_file", "ct2", "mine"]  # nothing left beside it


# ------------------------------------------------------------ 2. evaluate --json never an input

# fairseq-generate's log line that counts its inputs (evaluate needs it, or --ref, to see lost ones)
LOADED = "2026-12-01 00:00:00 | INFO | fairseq.data.data_utils | loaded {:,} examples from: data/test.src-tgt.src\n"


def test_evaluate_json_never_replaces_an_input_and_needs_force(tmp_path, capsys):
    hyp, ref, src, gen = (tmp_path / n for n in ("hyp", "ref", "src", "gen.out"))
    hyp.write_text("a b c\nd e\n"), ref.write_text("a b c\nd f\n")
    src.write_text("eng_Latn hin_Deva x\neng_Latn hin_Deva y\n")
    gen.write_text(LOADED.format(2) + "S-0\tx\nT-0\ta b c\nH-0\t-0.1\ta b c\nS-1\ty\nT-1\td f\nH-1\t-0.2\td e\n")
    before = checksums(tmp_path)
    for given, target in (("--hyp", hyp), ("--ref", ref), ("--src", src)):
        refused(capsys, "evaluate", "--hyp", hyp, "--ref", ref, "--src", src, "--json", target, "--force",
                mentions=[f"refusing to overwrite the input {target}", "write to another file"])
    refused(capsys, "evaluate", "--generate", gen, "--json", gen, "--force", mentions=[gen])
    assert checksums(tmp_path) == before
    sentences, lines, other = (tmp_path / n for n in ("ref.sentences", "ref.lines", "other"))
    sentences.write_text("a b c\nd f\n"), lines.write_text("1\n2\n"), other.write_text("a b\nd\n")
    before = checksums(tmp_path)
    for target in (sentences, lines, other):  # the document inputs too
        refused(capsys, "evaluate", "--hyp", hyp, "--ref-sentences", sentences, "--lines", lines, "--baseline", other,
                "--json", target, "--force", mentions=[f"refusing to overwrite the input {target}"])
    assert checksums(tmp_path) == before
    out = tmp_path / "scores.json"
    assert cli.main(["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--json", str(out)]) == 0
    first = checksums(out)
    refused(capsys, "evaluate", "--generate", gen, "--json", out, mentions=[out, "pass --force"])
    assert checksums(out) == first
    assert cli.main(["evaluate", "--generate", str(gen), "--json", str(out), "--force"]) == 0
    assert json.loads(out.read_text())["overall"]["segments"] == 2


# ------------------------------------------------------------ 3. export's search options

@pytest.mark.parametrize("option,value", [("--beam", "0"), ("--beam", "-3"), ("--max-len-a", "-1"),
                                          ("--max-len-a", "nan"), ("--max-len-b", "-5")])
def test_export_refuses_search_options_that_cannot_decode(run_dir, tmp_path, capsys, option, value):
    needs_ct2()
    _, data, best = run_dir
    refused(capsys, "export", best, tmp_path / "ct2", "--data", data, option, value, mentions=[option, value])
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ 4. NTK factor bounded

NTK_HUGE = ["--rope-scaling", "ntk", "--rope-scaling-factor", "1e300"]


def test_ntk_factor_whose_theta_overflows_is_refused_where_positions_are_checked(run_dir, tmp_path, capsys):
    work, data, best = run_dir
    before = checksums(best)
    refused(capsys, "convert", "--pe", "rope", best, tmp_path / "ntk.pt", *NTK_HUGE,
            mentions=["--rope-scaling-factor 1e+300", "not a finite number"])
    assert checksums(best) == before and os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="effective theta"):  # fairseq-train/generate build the model so
        build(data, "transformer_rope", extra=NTK_HUGE)
    with pytest.raises(ValueError, match="effective theta"):
        RotaryEmbedding(8, fraction=1.0, scaling="ntk", factor=1e300)
    with pytest.raises(ValueError, match="at least 4 rotated dimensions"):  # d/(d-2) with d = 2
        RotaryEmbedding(8, fraction=0.25, scaling="ntk", factor=2.0)
    rotary = RotaryEmbedding(8, fraction=1.0, theta=10000.0, scaling="ntk", factor=4.0)
    assert rotary.theta == pytest.approx(10000.0 * 4.0 ** (8 / 6), rel=1e-12)  # still the NTK formula


# ------------------------------------------------------------ 5. numpy dtype states

try:
    from numpy._core import multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray


class _Dtype:
    """Pickles as numpy pickles a float64 dtype, with a given state; built from its code, by its
    DType class, or from another (plain) dtype."""

    def __init__(self, state, built):
        self.state, self.built = state, built

    def __reduce__(self):
        if self.built == "DType class":
            return (type(np.dtype("f8")), (), self.state)
        return (np.dtype, ("f8" if self.built == "numpy.dtype" else np.dtype("f8"), False, True), self.state)


class _Array:
    def __init__(self, dtype):
        self.dtype = dtype

    def __reduce__(self):
        return (multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), self.dtype, False, b"\0" * 8))


class _Scalar:
    def __init__(self, dtype):
        self.dtype = dtype

    def __reduce__(self):
        return (multiarray.scalar, (self.dtype, b"\0" * 8))


CRAFTED_STATES = {
    "a field at an offset outside its buffer": (3, "<", None, ("x",), {"x": (np.dtype("f8"), 2 ** 40)}, 8, 1, 0),
    "object flags": (3, "<", None, None, None, -1, -1, 63),
    "an item size that is not native": (3, "<", None, None, None, 4096, -1, 0),
    "a subarray": (3, "<", (np.dtype("f8"), (4096,)), None, None, -1, -1, 0),
    "a state of another version": (4, "<", None, None, None, -1, -1, 0, {"k": 1}),
}


@pytest.mark.parametrize("built", ["numpy.dtype", "DType class", "from a dtype"])
@pytest.mark.parametrize("holder", [_Array, _Scalar], ids=["array", "scalar"])
@pytest.mark.parametrize("crafted", CRAFTED_STATES)
def test_a_numpy_dtype_with_a_crafted_state_is_refused_before_anything_is_built(tmp_path, crafted, holder, built):
    path = tmp_path / "crafted.pt"
    dtype = _Dtype(CRAFTED_STATES[crafted], built)
    torch.save({"model": {}, "cfg": {"model": {}}, "extra_state": {"metrics": {"x": holder(dtype)}}}, path)
    for load in (read_checkpoint, checkpoint_utils.load_checkpoint_to_cpu):
        with pytest.raises(UnsafeCheckpointError) as err:
            load(str(path))
        assert str(err.value).startswith(f"refused to load {path}: its pickle gives numpy.dtype")
        assert "plain numbers or bools only" in str(err.value)


def test_every_plain_number_and_bool_dtype_still_loads(tmp_path):
    codes = "?" + np.typecodes["AllInteger"] + np.typecodes["AllFloat"]
    values = {}
    for code in codes:
        for order in ("<", ">"):
            dtype = np.dtype(code).newbyteorder(order) if np.dtype(code).itemsize > 1 else np.dtype(code)
            values[f"{code}{order}"] = np.arange(3).astype(dtype)
            values[f"{code}{order} scalar"] = values[f"{code}{order}"][1]
    path = tmp_path / "plain.pt"
    torch.save({"model": {}, "cfg": {"model": {}}, "extra_state": {"metrics": values}}, path)
    loaded = read_checkpoint(str(path))["extra_state"]["metrics"]
    for key, value in values.items():  # as numpy's own, unrestricted pickle round trip gives them
        expected = pickle.loads(pickle.dumps(value))
        assert loaded[key].dtype == expected.dtype and np.array_equal(loaded[key], expected), key


# ------------------------------------------------------------ 6. unregistered architecture

def test_export_of_an_unregistered_architecture_is_one_line(run_dir, tmp_path, capsys):
    needs_ct2()
    _, data, best = run_dir
    state = torch.load(best, weights_only=False)
    state["cfg"]["model"].arch = state["cfg"]["model"]._name = "transformer_from_elsewhere"
    odd = save_checkpoint(state, tmp_path / "odd.pt")
    refused(capsys, "export", odd, tmp_path / "ct2", "--data", data,
            mentions=[odd, "'transformer_from_elsewhere'", "not registered"])
    assert sorted(os.listdir(tmp_path)) == ["odd.pt"]


@pytest.mark.parametrize("saved", ["cfg", "args"])
def test_loading_a_checkpoint_of_an_unregistered_architecture_names_it(run_dir, tmp_path, saved):
    """What fairseq-generate --path does; fairseq ended in an IndexError (cfg) or KeyError (the
    args of a checkpoint of fairseq < 0.10)."""
    _, data, best = run_dir
    state = torch.load(best, weights_only=False)
    model = state["cfg"]["model"]
    if saved == "args":  # as fairseq < 0.10 saved it: one Namespace of every option
        state["args"] = argparse.Namespace(**{**vars(model), **state["cfg"]["task"], "task": "translation"})
        del state["args"]._name
        state["cfg"] = None
        model = state["args"]
    model.arch = "transformer_rop"  # one letter short of the plugin's transformer_rope
    if saved == "cfg":
        model._name = model.arch
    odd = save_checkpoint(state, tmp_path / "odd.pt")
    with pytest.raises(UnknownArchitectureError) as err:
        checkpoint_utils.load_model_ensemble_and_task([str(odd)], arg_overrides={"data": str(data)})
    said = str(err.value)
    assert "\n" not in said and said.startswith("the checkpoint's architecture 'transformer_rop' is not registered")
    assert "transformer_18_18" in said and "needs that plugin's --user-dir" in said
    assert "(registered names closest to it: transformer_rope, " in said


@pytest.mark.slow
def test_fairseq_generate_names_an_unregistered_architecture(run_dir, tmp_path):
    _, data, best = run_dir
    state = torch.load(best, weights_only=False)
    state["cfg"]["model"].arch = state["cfg"]["model"]._name = "transformer_from_elsewhere"
    odd = save_checkpoint(state, tmp_path / "odd.pt")
    proc = h.run("generate", data, "--path", odd, "--user-dir", h.PLUGIN, "--source-lang", "src",
                 "--target-lang", "tgt", check=False, env=ONE_THREAD)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and last.startswith(
        "fairseq_relpos.fairseq_patches.UnknownArchitectureError: the checkpoint's architecture "
        "'transformer_from_elsewhere' is not registered"), proc.stderr[-2000:]


# ------------------------------------------------------------ 7. torn checkpoints

def torn_beside_intact(folder, source):
    """checkpoint_1_10.pt whole, checkpoint_last.pt cut in half, as a kill mid-copy leaves them."""
    folder.mkdir()
    intact = folder / "checkpoint_1_10.pt"
    intact.write_bytes(Path(source).read_bytes())
    torn = folder / "checkpoint_last.pt"
    torn.write_bytes(intact.read_bytes()[: intact.stat().st_size // 2])
    os.utime(intact, (time.time() - 60, time.time() - 60))
    return torn, intact


def test_a_torn_checkpoint_is_named_with_the_whole_one_beside_it(run_dir, tmp_path, capsys):
    _, data, best = run_dir
    torn, intact = torn_beside_intact(tmp_path / "save", best)
    for load in (checkpoint_utils.load_checkpoint_to_cpu, read_checkpoint):
        with pytest.raises(ValueError) as err:
            load(str(torn))
        said = str(err.value)
        assert said.startswith(f"cannot load {torn}: it is truncated or damaged")
        assert f"the newest whole checkpoint beside it is {intact}" in said and "--restore-file" in said
    refused(capsys, "inspect", torn, mentions=[torn, intact])


def test_fairseq_generate_names_a_truncated_checkpoint(run_dir, tmp_path):
    _, data, best = run_dir
    torn, intact = torn_beside_intact(tmp_path / "save", best)
    proc = h.run("generate", data, "--path", torn, "--user-dir", h.PLUGIN, "--source-lang", "src",
                 "--target-lang", "tgt", check=False, env=ONE_THREAD)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert str(torn) in last and str(intact) in last, proc.stderr[-2000:]


# ------------------------------------------------------------ kill -9 mid-write

SLOW_WRITE = r'''
import io, os, sys, time
marker, what = sys.argv[1], sys.argv[2]

def stop_halfway(write_whole):
    """Write half of what would be written, tell the parent, and wait to be killed."""
    def slow(*args, **kwargs):
        data = write_whole(*args, **kwargs)
        open(marker, "w").close()
        time.sleep(600)
    return slow

if what == "torch.save":
    import torch
    real = torch.save
    def half(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
    torch.save = stop_halfway(half)
elif what == "ct2 save":
    from ctranslate2.specs import model_spec
    real = model_spec.ModelSpec.save
    def half(self, output_dir):
        real(self, output_dir)
        path = os.path.join(output_dir, "model.bin")
        os.truncate(path, os.path.getsize(path) // 2)
    model_spec.ModelSpec.save = stop_halfway(half)
elif what == "rename":  # between moving the old export aside and renaming the new one in
    real = os.rename
    def once(src, dst):
        real(src, dst)
        if os.path.basename(dst) == "output":
            open(marker, "w").close()
            time.sleep(600)
    os.rename = once
elif what == "copy to checkpoint_last":  # fairseq's copy of the interval checkpoint, the second time
    import shutil
    real, seen = shutil.copyfile, []
    def copyfile(src, dst, *args, **kwargs):
        if "checkpoint_last.pt" in os.path.basename(dst):
            seen.append(dst)
            if len(seen) == 2:
                with open(src, "rb") as s, open(dst, "wb") as d:
                    d.write(s.read()[: os.path.getsize(src) // 2])
                open(marker, "w").close()
                time.sleep(600)
        return real(src, dst, *args, **kwargs)
    shutil.copyfile = copyfile

if sys.argv[3] == "train":
    from fairseq_cli.train import cli_main
    sys.argv = ["fairseq-train", *sys.argv[4:]]
    cli_main()
else:
    from fairseq_relpos.cli import main as cli
    sys.exit(cli.main(sys.argv[3:]))
'''


def kill_midway(tmp_path, what, *argv, timeout=300):
    """Run ``argv`` in a child whose ``what`` stops halfway; kill -9 it there."""
    marker = tmp_path / "halfway"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, str(marker), what, *map(str, argv)],
                            env=dict(os.environ, **ONE_THREAD), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start = time.time()
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended before the write: {proc.stderr.read().decode()[-3000:]}")
        assert time.time() - start < timeout, "the child never reached the write"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    marker.unlink()


def left_over(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def age(folder, seconds=60):
    """Make what a killed run left look as old as a later run would find it."""
    for name in left_over(folder):
        path = Path(folder) / name
        os.utime(path, (time.time() - seconds, time.time() - seconds))


@pytest.mark.parametrize("command", ["convert", "export"])
def test_scratch_left_by_a_kill_is_named_as_such_and_cleaned_by_the_next_run(run_dir, tmp_path, command):
    work, data, best = run_dir
    if command == "export":
        needs_ct2()
    out = tmp_path / "out" / ("ct2" if command == "export" else "rope.pt")
    out.parent.mkdir()
    argv = ["convert", "--pe", "rope", best, out] if command == "convert" else ["export", best, out, "--data", data]
    before = checksums(work)
    kill_midway(tmp_path, "torch.save" if command == "convert" else "ct2 save", *argv)
    assert not out.exists() and checksums(work) == before
    stale = left_over(out.parent)
    assert stale and all(n.startswith(f".{out.name}.") and n.endswith(".fairseq-relpos.tmp") for n in stale), stale
    age(out.parent)
    assert cli.main([str(a) for a in argv]) == 0
    assert left_over(out.parent) == [] and out.exists()


def test_a_kill_between_the_renames_of_an_export_loses_neither(run_dir, tmp_path):
    needs_ct2()
    _, data, best = run_dir
    out = tmp_path / "ct2"
    assert cli.main(["export", str(best), str(out), "--data", str(data)]) == 0
    first = {Path(p).name: s for p, s in checksums(out).items()}
    kill_midway(tmp_path, "rename", "export", best, out, "--data", data, "--force", "--beam", "3")
    assert not out.exists()  # moved aside, the new one not yet in place
    age(tmp_path)
    from fairseq_relpos import scratch

    scratch.clean_stale(tmp_path)  # what the next run does first
    assert {Path(p).name: s for p, s in checksums(out).items()} == first
    assert left_over(tmp_path) == []


@pytest.mark.slow
def test_a_kill_during_fairseqs_copy_to_checkpoint_last_leaves_it_whole_and_resumable(tmp_path):
    raw = h.write_reversal_corpus(tmp_path / "raw", sizes=(("train", 1000), ("valid", 20), ("test", 5)))
    data = h.preprocess(raw, tmp_path / "bin")
    save = tmp_path / "save"
    # about 20 updates an epoch, so that both interval saves (5, 10) come before the epoch's end
    args = [data, "--arch", "transformer_rope", "--save-dir", save, *h.TRAIN, "--max-tokens", "400", *h.TINY,
            "--user-dir", h.PLUGIN, "--save-interval-updates", "5", "--disable-validation", "--log-format", "simple"]
    kill_midway(tmp_path, "copy to checkpoint_last", "train", *args, "--max-update", "100")
    first, second = save / "checkpoint_1_5.pt", save / "checkpoint_1_10.pt"
    assert first.exists() and second.exists()
    assert checksums(save / "checkpoint_last.pt")[str(save / "checkpoint_last.pt")] == \
        checksums(first)[str(first)]  # the previous copy, whole
    age(save)  # as the next run finds what the killed one left
    proc = h.run("train", *args, "--max-update", "12", env=ONE_THREAD)
    assert "Loaded checkpoint" in proc.stdout + proc.stderr and "@ 5 updates" in proc.stdout + proc.stderr
    assert left_over(save) == []
    # what a kill without the plugin leaves: a torn checkpoint_last.pt, named with the whole one
    last = save / "checkpoint_last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    proc = h.run("train", *args, "--max-update", "14", check=False, env=ONE_THREAD)
    said = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and str(last) in said and "--restore-file" in said, proc.stderr[-2000:]


# ------------------------------------------------------------ a full disk

class _FullFile:
    """A file on a disk that fills after ``room`` characters: writes and the last flush fail."""

    def __init__(self, f, room):
        self._f, self._room = f, room

    def write(self, text):
        self._room -= len(text)
        if self._room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._f.write(text)

    def close(self):
        self._f.close()
        if self._room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(folder, room)``: files opened for writing in ``folder`` fill after ``room``."""
    real = io.open

    def make(folder, room):
        folder = os.path.realpath(folder)

        def opener(file, mode="r", *args, **kwargs):
            f = real(file, mode, *args, **kwargs)
            where = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.path.realpath(file)
            if any(m in mode for m in "wax") and os.path.dirname(where) == folder:
                return _FullFile(f, room)
            return f

        monkeypatch.setattr(io, "open", opener)
        monkeypatch.setattr(builtins, "open", opener)

    return make


def tagged_corpus(folder, lines=40):
    folder.mkdir(exist_ok=True)
    (folder / "in.src").write_text("".join(f"eng_Latn hin_Deva s{i} a b\n" for i in range(lines)), encoding="utf-8")
    (folder / "in.tgt").write_text("".join(f"S{i} A B\n" for i in range(lines)), encoding="utf-8")
    return folder / "in"


def make_docs(prefix, out, *extra):
    return ["make-docs", str(prefix), str(out), "--budget", "12", *map(str, extra)]


def test_make_docs_onto_a_full_disk_leaves_the_earlier_outputs_and_no_scratch(tmp_path, capsys, full_disk):
    prefix = tagged_corpus(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(make_docs(prefix, out / "docs")) == 0
    before = checksums(tmp_path)
    full_disk(out, room=50)
    refused(capsys, *make_docs(prefix, out / "docs", "--force"),
            mentions=["No space left", "nothing was replaced", out / "docs.src"])
    assert checksums(tmp_path) == before and left_over(out) == []


def test_evaluate_json_onto_a_full_disk_keeps_the_earlier_json(tmp_path, capsys, full_disk):
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_text("a b c\n"), ref.write_text("a b d\n")
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--json", str(out / "s.json")]) == 0
    before = checksums(tmp_path)
    full_disk(out, room=10)
    refused(capsys, "evaluate", "--hyp", hyp, "--ref", ref, "--json", out / "s.json", "--force",
            mentions=["No space left", "nothing was replaced", out / "s.json"])
    assert checksums(tmp_path) == before and left_over(out) == []


# ------------------------------------------------------------ make-docs and evaluate inputs

def test_make_docs_replaces_outputs_only_with_force_and_refuses_empty_input(tmp_path, capsys):
    prefix = tagged_corpus(tmp_path / "in")
    out = tmp_path / "out"
    assert cli.main(make_docs(prefix, out)) == 0
    before = checksums(tmp_path)
    refused(capsys, *make_docs(prefix, out, "--budget", "30"), mentions=[f"{out}.src exists", "--force"])
    assert checksums(tmp_path) == before
    assert cli.main(make_docs(prefix, out, "--budget", "30", "--force")) == 0
    empty = tmp_path / "empty"
    empty.with_suffix(".src").write_text(""), empty.with_suffix(".tgt").write_text("")
    refused(capsys, *make_docs(empty, tmp_path / "nothing"), mentions=[f"{empty}.src", "no sentence"])
    assert not any(p.name.startswith("nothing") for p in tmp_path.iterdir())


def test_a_byte_order_mark_is_not_a_missing_tag(tmp_path, capsys):
    prefix = tagged_corpus(tmp_path / "in", lines=3)
    src = prefix.with_suffix(".src")
    plain = src.read_bytes()
    assert cli.main(make_docs(prefix, tmp_path / "plain")) == 0
    src.write_bytes(b"\xef\xbb\xbf" + plain)
    assert cli.main(make_docs(prefix, tmp_path / "bom")) == 0
    assert (tmp_path / "bom.src").read_bytes() == (tmp_path / "plain.src").read_bytes()
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_bytes(b"\xef\xbb\xbfa b c\n"), ref.write_text("a b c\n")
    capsys.readouterr()
    assert cli.main(["evaluate", "--hyp", str(hyp), "--ref", str(ref)]) == 0
    assert "100.00" in capsys.readouterr().out


def test_evaluate_refuses_an_id_given_twice_but_reads_an_nbest_list(tmp_path, capsys):
    one = "S-0\tx\nT-0\ta b\nH-0\t-0.1\ta b\nD-0\t-0.1\ta b\nP-0\t-0.1 -0.1\n"
    nbest = tmp_path / "nbest.out"
    one = LOADED.format(1) + one
    nbest.write_text(one + "H-0\t-0.3\ta c\nD-0\t-0.3\ta c\nP-0\t-0.3 -0.3\n")
    assert cli.main(["evaluate", "--generate", str(nbest)]) == 0
    assert "100.00" in capsys.readouterr().out  # the first, best hypothesis
    joined = tmp_path / "joined.out"
    joined.write_text(one + "S-1\ty\nT-1\tc\nH-1\t-0.1\tc\n" + one.replace("a b\nD", "z z\nD"))
    refused(capsys, "evaluate", "--generate", joined, mentions=[f"{joined} line 11: a second S-0 line"])


# ------------------------------------------------------------ ct2_translate and its example

def tiny_export(data, out, arch="transformer_rope", extra=(), **shape):
    needs_ct2()
    from fairseq_relpos.ct2 import export as export_ct2, translate as ct2_translate

    task, model, _ = build(data, arch, extra=extra, **shape)
    decoding = ct2_translate.decoding_config(beam=2)
    export_ct2.save(export_ct2.model_spec(model, task), out,
                    extra_files={ct2_translate.DECODING_FILE: json.dumps(decoding)})
    return task, model, decoding


def test_ct2_translate_refuses_an_empty_source_with_the_reason(run_dir, tmp_path):
    import ctranslate2
    from fairseq_relpos.ct2 import translate as ct2_translate

    _, data, _ = run_dir
    _, _, decoding = tiny_export(data, tmp_path / "ct2")
    translator = ctranslate2.Translator(str(tmp_path / "ct2"), device="cpu", intra_threads=1)
    (tokens, _), = ct2_translate.translate_batch(translator, [["src3"]], decoding)
    assert tokens  # what fairseq gives too: at least one token
    with pytest.raises(ValueError, match="source 1 of the batch is empty: CTranslate2 does not decode"):
        ct2_translate.translate_batch(translator, [["src3"], []], decoding)


def test_a_sinusoidal_export_takes_its_table_size_and_refuses_documents_past_it(run_dir, tmp_path):
    """fairseq starts the table at max positions (1,024) and extends it for a longer input; the
    export has the rows it was given: --max-positions sets them, and longer sources are refused."""
    import ctranslate2
    from model_builders import random_batch
    from fairseq_relpos.ct2 import translate as ct2_translate

    needs_ct2()
    _, data, _ = run_dir
    ckpt = save_checkpoint(tiny_state(data, "transformer"), tmp_path / "sinusoidal.pt")
    model, task = (lambda m, c, t: (m[0].eval(), t))(*checkpoint_utils.load_model_ensemble_and_task([str(ckpt)]))
    src, _, prev = random_batch(task, 2, 1300, 20, seed=3)
    tgt = torch.cat([prev[:, 1:], torch.full((2, 1), task.target_dictionary.eos())], 1)
    with torch.no_grad():  # fairseq extends its 1,024-row table on the fly
        ref = torch.log_softmax(model(src, torch.full((2,), src.size(1)), prev)[0].float(), -1)
    ref = ref.gather(-1, tgt[..., None])[..., 0].numpy()
    sd, td = task.source_dictionary, task.target_dictionary
    sources = [[sd[i] for i in row[:-1].tolist()] for row in src]
    targets = [[td[i] for i in row[:-1].tolist()] for row in tgt]
    for out, extra in (("default", []), ("long", ["--max-positions", "1500"])):
        assert cli.main(["export", str(ckpt), str(tmp_path / out), "--data", str(data), *extra]) == 0
    translator = ctranslate2.Translator(str(tmp_path / "default"), device="cpu", intra_threads=1)
    decoding = ct2_translate.load_decoding(tmp_path / "default")
    assert decoding["max_positions"] == 1024
    with pytest.raises(ValueError, match="has 1300 tokens with </s>, more than the 1024 rows of this export's "
                                         "sinusoidal position table; export again with .* --max-positions N"):
        ct2_translate.translate_batch(translator, sources[:1], decoding)
    translator = ctranslate2.Translator(str(tmp_path / "long"), device="cpu", intra_threads=1)
    results = translator.score_batch(sources, targets, max_input_length=0)
    assert max(np.abs(np.array(r.log_probs) - ref[i]).max() for i, r in enumerate(results)) < 1e-4
    (tokens, _), = ct2_translate.translate_batch(translator, sources[:1], ct2_translate.load_decoding(tmp_path / "long"))
    assert tokens


def test_translate_ct2_keeps_blank_lines_in_step_and_names_a_bad_byte(run_dir, tmp_path):
    import sentencepiece as spm

    _, data, _ = run_dir
    tiny_export(data, tmp_path / "ct2")
    text = tmp_path / "text"
    text.write_text("".join(f"hello world number {i} and more words\n" for i in range(50)))
    (tmp_path / "it2" / "vocab").mkdir(parents=True)
    for side in ("SRC", "TGT"):
        spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / side), vocab_size=30,
                                       num_threads=1, minloglevel=2, hard_vocab_limit=False)
        os.replace(tmp_path / f"{side}.model", tmp_path / "it2" / "vocab" / f"model.{side}")
    script = ROOT / "examples" / "indictrans2" / "translate_ct2.py"
    command = [sys.executable, str(script), "--sentences", "--threads", "1", str(tmp_path / "ct2"),
               str(tmp_path / "it2"), "eng_Latn", "hin_Deva"]
    lines = ["hello world", "", "number one", "", "", "more words"]
    proc = subprocess.run(command, input="\n".join(lines) + "\n", capture_output=True, text=True, env=dict(
        os.environ, **ONE_THREAD))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.split("\n")[:-1]
    assert len(out) == len(lines) and [o for o, i in zip(out, lines) if not i] == ["", "", ""]
    proc = subprocess.run(command, input=b"hello\nw\xff\n", capture_output=True, env=dict(os.environ, **ONE_THREAD))
    assert proc.returncode == 2 and proc.stderr.decode().strip().splitlines()[-1] == (  # after fairseq's log
        "translate_ct2.py: error: input line 2 is not UTF-8 text (byte 0xff at byte 2 of the line)")


# ------------------------------------------------------------ LoRA rank

def test_a_lora_rank_larger_than_the_layer_is_refused(run_dir):
    _, data, _ = run_dir
    with pytest.raises(ValueError, match=r"--lora-rank 40 is larger than the layer .*k_proj allows: its weight "
                                         r"is \(32, 32\), so an update of it has rank <= 32"):
        build(data, "transformer_rope", extra=["--task", "translation_lora", "--lora-rank", "40"])
    build(data, "transformer_rope", extra=["--task", "translation_lora", "--lora-rank", "32"])
