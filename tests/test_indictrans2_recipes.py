"""examples/indictrans2/: prepare -> finetune -> decode -> evaluate on a tiny IndicTrans2-shaped
directory (its layout, SentencePiece models per side, separate dictionaries with language tags,
a transformer_base18L-style pre-norm base trained for a few updates; quality is irrelevant)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fairseq_helpers as h
from indictrans2_dir import DOCS_PER_SPLIT, SENTS_PER_DOC

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "indictrans2"
ENV = dict(os.environ, OMP_NUM_THREADS="1",
           PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
FEW = ["--max-update", "3", "--max-tokens", "1000", "--num-workers", "0", "--seed", "1",
       "--warmup-updates", "2", "--log-interval", "1"]


def script(name, *args, env=None, check=True):
    proc = subprocess.run(["bash", str(RECIPES / name), *map(str, args)], capture_output=True, text=True,
                          env=dict(ENV, **(env or {})))
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def prepared(it2, tmp_path_factory):
    it2_dir, raw = it2
    out = tmp_path_factory.mktemp("prepared")
    proc = script("prepare.sh", "-b", 40, it2_dir, raw, "eng_Latn", "hin_Deva", out)
    return out, proc


@pytest.mark.parametrize("name", ["prepare.sh", "finetune.sh", "decode.sh", "run_all.sh"])
def test_usage(name):
    proc = script(name, "-h")
    assert proc.stdout.startswith("Usage: ") and name in proc.stdout
    proc = script(name, check=False)
    assert proc.returncode == 2 and "Usage: " in proc.stderr


@pytest.mark.slow
def test_prepare_tags_sources_adds_documents_and_uses_the_checkpoints_dictionaries(it2, prepared):
    it2_dir, _ = it2
    out, proc = prepared
    assert "binarised train valid test (+ documents of up to 40 pieces)" in proc.stdout
    for side in ("SRC", "TGT"):
        assert (out / "bin" / f"dict.{side}.txt").read_text() == (it2_dir / "final_bin" / f"dict.{side}.txt").read_text()
    for subset in ("train", "valid", "test", "test1"):
        assert (out / "bin" / f"{subset}.SRC-TGT.SRC.bin").exists(), subset
    sentences = (out / "spm" / "test.sent.SRC").read_text().splitlines()
    docs = (out / "spm" / "test.docs.SRC").read_text().splitlines()
    assert len(sentences) == DOCS_PER_SPLIT["test"] * SENTS_PER_DOC
    assert all(line.startswith("eng_Latn hin_Deva ▁") for line in sentences + docs)
    assert all(line.count("eng_Latn") == 1 for line in docs) and len(docs) < len(sentences)
    assert "replaced" in proc.stdout  # fairseq-preprocess's unknown-word report is shown


def count_hypotheses(gen):
    return len(h.hypotheses(Path(gen).read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("method,positions", [("full", "rope"), ("lora", "alibi")])
def test_finetune_then_decode_every_document(it2, prepared, tmp_path, method, positions):
    it2_dir, _ = it2
    out, _ = prepared
    save = tmp_path / f"{method}-{positions}"
    proc = script("finetune.sh", it2_dir, out / "bin", method, positions, save, *FEW)
    log = (save / "train.log").read_text()
    assert "loading pretrained model from" in log and "num_updates 3" in log.replace("=", " ")
    assert ("trainable parameters" in log) == (method != "full")
    assert (save / "checkpoint_best.pt").exists(), proc.stdout[-2000:]
    script("decode.sh", save / "checkpoint_best.pt", out / "bin", "test1", tmp_path / "doc",
           "--beam", 1, "--max-len-b", 5)
    n_docs = len((out / "spm" / "test.docs.SRC").read_text().splitlines())
    assert count_hypotheses(tmp_path / "doc.gen") == n_docs
    scores = json.loads((tmp_path / "doc.json").read_text())
    assert scores["overall"]["segments"] == n_docs
    gen = (tmp_path / "doc.gen").read_text()
    assert "▁" not in gen and "\nS-0\teng_Latn hin_Deva " in "\n" + gen  # pieces removed, tags kept
    assert scores["by_pair"]["eng_Latn-hin_Deva"]["segments"] == n_docs


@pytest.mark.slow
def test_run_all_prints_a_summary(it2, tmp_path):
    it2_dir, raw = it2
    proc = script("run_all.sh", it2_dir, raw, "eng_Latn", "hin_Deva", tmp_path / "w", *FEW,
                  env={"METHODS": "minlora", "POSITIONS": "rope", "BUDGET": "40"})
    rows = (tmp_path / "w" / "summary.tsv").read_text().splitlines()
    assert rows[0] == "method\tpositions\tsubset\tchrf++"
    assert [row.split("\t")[:3] for row in rows[1:]] == [
        ["base", "sinusoidal", "test"], ["base", "sinusoidal", "test1"],  # the IndicTrans2 checkpoint itself
        ["minlora", "rope", "test"], ["minlora", "rope", "test1"]]
    assert "minlora" in proc.stdout


@pytest.mark.slow
def test_bad_input_is_named(it2, prepared, tmp_path):
    it2_dir, raw = it2
    out, _ = prepared
    proc = script("prepare.sh", tmp_path / "nope", raw, "eng_Latn", "hin_Deva", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "IndicTrans2 directory not found" in proc.stderr
    proc = script("prepare.sh", it2_dir, raw, "eng_Latn", "tam_Taml", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "missing" in proc.stderr and "tam_Taml" in proc.stderr
    proc = script("finetune.sh", tmp_path / "nope", out / "bin", "full", "rope", tmp_path / "s", check=False)
    assert proc.returncode == 2 and "IndicTrans2 directory not found" in proc.stderr
    proc = script("finetune.sh", it2_dir, out / "bin", "qlora", "rope", tmp_path / "s", check=False)
    assert proc.returncode == 2 and "unknown METHOD 'qlora'" in proc.stderr
    proc = script("finetune.sh", it2_dir, out / "bin", "full", "learned", tmp_path / "s", check=False)
    assert proc.returncode == 2 and "unknown POSITIONS 'learned'" in proc.stderr
    proc = script("decode.sh", tmp_path / "none.pt", out / "bin", "test", tmp_path / "d", check=False)
    assert proc.returncode == 2 and "checkpoint not found" in proc.stderr
    assert not (tmp_path / "s").exists()
