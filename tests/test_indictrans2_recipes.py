"""examples/indictrans2/: prepare -> finetune -> decode -> evaluate on a tiny IndicTrans2-shaped
directory (its layout, SentencePiece models per side, separate dictionaries with language tags,
a transformer_base18L-style pre-norm base trained for a few updates; quality is irrelevant)."""
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fairseq_helpers as h  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "indictrans2"
ENV = dict(os.environ, OMP_NUM_THREADS="1",
           PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
FEW = ["--max-update", "3", "--max-tokens", "1000", "--num-workers", "0", "--seed", "1",
       "--warmup-updates", "2", "--log-interval", "1"]
SHAPE = ["--encoder-layers", 2, "--decoder-layers", 2, "--encoder-embed-dim", 32, "--decoder-embed-dim", 32,
         "--encoder-ffn-embed-dim", 64, "--decoder-ffn-embed-dim", 64, "--encoder-attention-heads", 4,
         "--decoder-attention-heads", 4, "--activation-fn", "gelu"]
DOCS_PER_SPLIT = {"train": 30, "valid": 3, "test": 3}
SENTS_PER_DOC = 4


def script(name, *args, env=None, check=True):
    proc = subprocess.run(["bash", str(RECIPES / name), *map(str, args)], capture_output=True, text=True,
                          env=dict(ENV, **(env or {})))
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def write_raw(raw):
    """Documents of SENTS_PER_DOC sentences, separated by blank lines; target = reversed, upper-cased."""
    raw.mkdir(parents=True)
    rng = random.Random(0)
    words = ["kitab", "ghar", "pani", "sadak", "pahad", "nadi", "baadal", "ped", "phool", "chidiya"]
    for split, docs in DOCS_PER_SPLIT.items():
        src, tgt = [], []
        for d in range(docs):
            if d:
                src.append(""), tgt.append("")
            for _ in range(SENTS_PER_DOC):
                sent = [rng.choice(words) for _ in range(rng.randint(3, 8))]
                src.append(" ".join(sent))
                tgt.append(" ".join(w.upper() for w in reversed(sent)))
        (raw / f"{split}.eng_Latn").write_text("\n".join(src) + "\n")
        (raw / f"{split}.hin_Deva").write_text("\n".join(tgt) + "\n")
    return raw


@pytest.fixture(scope="module")
def it2(tmp_path_factory):
    """(IndicTrans2-shaped directory, raw text directory)."""
    import sentencepiece as spm

    root = tmp_path_factory.mktemp("it2")
    raw = write_raw(root / "raw")
    it2 = root / "en-indic"
    for sub in ("vocab", "final_bin", "model"):
        (it2 / sub).mkdir(parents=True)
    for side, lang in (("SRC", "eng_Latn"), ("TGT", "hin_Deva")):
        spm.SentencePieceTrainer.train(input=str(raw / f"train.{lang}"), model_prefix=str(root / side),
                                       vocab_size=40, model_type="unigram", character_coverage=1.0,
                                       num_threads=1, minloglevel=2, hard_vocab_limit=False)
        shutil.copy(root / f"{side}.model", it2 / "vocab" / f"model.{side}")
    # IndicTrans2's dictionaries: built on the encoded, tagged training text.
    enc = root / "enc"
    enc.mkdir()
    for side, lang in (("SRC", "eng_Latn"), ("TGT", "hin_Deva")):
        model = spm.SentencePieceProcessor(model_file=str(it2 / "vocab" / f"model.{side}"))
        for split in ("train", "valid"):
            lines = [line for line in (raw / f"{split}.{lang}").read_text().splitlines() if line]
            tag = "eng_Latn hin_Deva " if side == "SRC" else ""
            (enc / f"{split}.{side}").write_text(
                "".join(tag + " ".join(model.encode(line, out_type=str)) + "\n" for line in lines))
    h.run("preprocess", "--source-lang", "SRC", "--target-lang", "TGT", "--trainpref", enc / "train",
          "--validpref", enc / "valid", "--destdir", root / "bin", "--workers", 1)
    for side in ("SRC", "TGT"):
        shutil.copy(root / "bin" / f"dict.{side}.txt", it2 / "final_bin" / f"dict.{side}.txt")
    h.run("train", root / "bin", "--user-dir", h.PLUGIN, "--arch", "transformer_base18L", *SHAPE,
          "--save-dir", root / "base", *h.TRAIN, "--max-update", 2, env={"OMP_NUM_THREADS": "1"})
    shutil.copy(root / "base" / "checkpoint_last.pt", it2 / "model" / "checkpoint_best.pt")
    return it2, raw


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
