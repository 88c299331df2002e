"""The real fairseq command-line tools, with and without the plugin, on tiny generated data."""
import os
import pickle
import random

import pytest

from fairseq_helpers import PLUGIN, hypotheses, preprocess, run, train, write_reversal_corpus
from fairseq_versions import stock_fast_path_bug

ARCHS = ["transformer_rope", "transformer_alibi", "transformer_nope"]
DECODE = ["--beam", "4", "--batch-size", "8", "--required-batch-size-multiple", "1"]
LONG_WORDS = 1100

pytestmark = pytest.mark.slow  # every test here trains or decodes through fairseq's CLIs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    raw = write_reversal_corpus(root / "raw")
    rng = random.Random(5)
    with open(raw / "long.src", "w") as src, open(raw / "long.tgt", "w") as tgt:
        for _ in range(2):
            words = [f"w{rng.randrange(30)}" for _ in range(LONG_WORDS)]
            src.write(" ".join(words) + "\n")
            tgt.write(" ".join(w.upper() for w in reversed(words)) + "\n")
    return preprocess(raw, root / "bin", splits=("train", "valid", "test", "long"))


@pytest.fixture(scope="module")
def checkpoints(data, tmp_path_factory):
    cache = {}

    def get(arch):
        if arch not in cache:
            save = tmp_path_factory.mktemp(arch)
            train(data, save, arch, user_dir=arch != "transformer", updates=60)
            cache[arch] = save / "checkpoint_last.pt"
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", ARCHS)
def test_beam_scores_equal_teacher_forced_scores(arch, data, checkpoints, tmp_path):
    """What beam search scores for its hypothesis equals fairseq-generate --score-reference
    on the same hypothesis: step-by-step decoding with the cache is exact."""
    ckpt = checkpoints(arch)
    out = run("generate", data, "--path", ckpt, "--user-dir", PLUGIN, "--gen-subset", "test", *DECODE).stdout
    hyps = hypotheses(out)
    assert len(hyps) == 20
    sources = {int(line.split("\t")[0][2:]): line.split("\t")[1] for line in out.splitlines()
               if line.startswith("S-")}
    raw = tmp_path / "raw"
    raw.mkdir()
    ids = sorted(hyps)
    (raw / "test.src").write_text("".join(sources[i] + "\n" for i in ids))
    (raw / "test.tgt").write_text("".join(hyps[i][1] + "\n" for i in ids))
    rescored_bin = tmp_path / "bin"
    run("preprocess", "--source-lang", "src", "--target-lang", "tgt", "--testpref", raw / "test",
        "--srcdict", data / "dict.src.txt", "--tgtdict", data / "dict.tgt.txt", "--destdir", rescored_bin,
        "--workers", "1")
    for lang in ("src", "tgt"):
        (rescored_bin / f"dict.{lang}.txt").write_text((data / f"dict.{lang}.txt").read_text())
    forced = hypotheses(run("generate", rescored_bin, "--path", ckpt, "--user-dir", PLUGIN,
                            "--gen-subset", "test", "--score-reference", "--batch-size", "8",
                            "--required-batch-size-multiple", "1").stdout)
    assert len(forced) == len(ids)
    for new_id, old_id in enumerate(ids):
        assert forced[new_id][0] == pytest.approx(hyps[old_id][0], abs=2e-4), (arch, old_id)


@pytest.mark.parametrize("arch", ARCHS)
def test_interactive_decodes(arch, data, checkpoints):
    ckpt = checkpoints(arch)
    lines = "w1 w2 w3 w4\nw5 w6 w7\n"
    out = run("interactive", data, "--path", ckpt, "--user-dir", PLUGIN, "--source-lang", "src",
              "--target-lang", "tgt", "--beam", "2", stdin=lines).stdout
    assert len([line for line in out.splitlines() if line.startswith("H-")]) == 2


def test_input_past_1024_tokens_decodes_with_raised_limits_only(data, checkpoints):
    ckpt = checkpoints("transformer_rope")
    raised = run("generate", data, "--path", ckpt, "--user-dir", PLUGIN, "--gen-subset", "test1",
                 "--max-source-positions", "4096", "--max-target-positions", "4096", *DECODE)
    assert sorted(hypotheses(raised.stdout)) == [0, 1]
    capped = run("generate", data, "--path", ckpt, "--user-dir", PLUGIN, "--gen-subset", "test1",
                 *DECODE, check=False)
    said = capped.stdout + capped.stderr
    assert capped.returncode != 0 and "is invalid" in said and "max_positions=(1024, 1024)" in said


@stock_fast_path_bug
def test_stock_checkpoint_decodes_identically_with_plugin(data, checkpoints):
    """Loading the plugin changes nothing for stock models. Without it, torch >= 2.6 refuses
    every fairseq checkpoint, so the reference run lifts the protection for this one file we made."""
    ckpt = checkpoints("transformer")
    args = [data, "--path", ckpt, "--gen-subset", "test", *DECODE]
    without = run("generate", *args, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}).stdout
    with_plugin = run("generate", *args, "--user-dir", PLUGIN,
                      env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": ""}).stdout

    def decoded(out):
        return sorted(line for line in out.splitlines() if line[:2] in ("H-", "P-", "D-"))

    assert len(hypotheses(without)) == 20
    assert decoded(with_plugin) == decoded(without)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_would_run_code_is_refused(data, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model": {}, "cfg": _RunsCode(marker)}, f, protocol=2)  # as torch.save writes
    proc = run("generate", data, "--path", evil, "--user-dir", PLUGIN, "--gen-subset", "test",
               check=False, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": ""})
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"refused to load {evil}" in said and "posix.system" in said
    assert not marker.exists()
