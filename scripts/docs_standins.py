"""The small stand-ins that scripts/check_docs_commands.py runs the docs' commands on, named as
the docs name them, built once under one folder in about a minute on one thread.

The world is IndicTrans2's: the toy corpus (``fairseq-relpos toy-corpus``) with its tags renamed
to IndicTrans2 language codes, SentencePiece models per side, data binarised with the language
names SRC and TGT (IndicTrans2's final_bin uses them literally), one pair of dictionaries shared
by every model here, so that every checkpoint fits every data folder as in the docs. Models are
2+2 layers, d 32, trained a few updates: they decode nonsense, but through every code path.
"""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = Path(sys.executable)
BIN = PY.parent
TAGS = {"eng_Toyl": "eng_Latn", "toya_Toyl": "hin_Deva", "toyb_Toyl": "tam_Taml",
        "toyc_Toyl": "kan_Knda", "toyd_Toyl": "ben_Beng"}
SEP = "<s>"
TEST_DOCS = 8  # documents in data-bin's test split: decoding them takes seconds
TINY = ["--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
        "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "4",
        "--decoder-attention-heads", "4"]
IT2_LIKE = ["--encoder-normalize-before", "--decoder-normalize-before", "--layernorm-embedding",
            "--share-decoder-input-output-embed", "--activation-fn", "gelu"]
TRAIN = ["--optimizer", "adam", "--lr", "0.003", "--max-tokens", "2000", "--criterion",
         "label_smoothed_cross_entropy", "--no-epoch-checkpoints", "--num-workers", "0", "--seed", "1",
         "--log-format", "simple"]
# what each stand-in is, for the report (every name a page may be given)
DESCRIBE = {
    "it2": "IndicTrans2 layout: vocab/model.SRC|TGT, final_bin/dict.SRC|TGT.txt, model/checkpoint_best.pt",
    "it2_distilled.pt": "tiny pre-norm sinusoidal `transformer` (2+2 layers, d 32), 10 updates on data-bin",
    "it2.pt": "the same checkpoint as it2_distilled.pt",
    "data-bin": "the toy corpus, SentencePiece-encoded, binarised SRC-TGT; test = 8 4-sentence documents joined by <s>",
    "corpus": "corpus/train.{src,tgt,ids}: the toy corpus's document sentences (4 languages), IndicTrans2 tags",
    "test.tgt": "the reference of data-bin's test split",
    "test.SRC": "data-bin's test text, source side (tags + pieces)",
    "test.TGT": "data-bin's test text, target side",
    "docs.eng_Latn": "raw English sentences, a blank line between documents",
    "ckpt-rope": "ckpt-rope/checkpoint_best.pt: it2_distilled.pt switched to transformer_rope, 5 updates",
    "ckpt": "ckpt/checkpoint_best.pt: the ckpt-rope checkpoint",
    "ckpt.pt": "the ckpt-rope checkpoint",
    "checkpoint_best.pt": "a translation_lora (lora) checkpoint on the ckpt-rope base, 5 updates",
    "fork_checkpoint.pt": "the ckpt-rope checkpoint as the authors' fork saves it (tests/fork_fixtures.forkify)",
    "rotary-indictrans2-en-indic-dist-200M": "export-hf of the ckpt-rope checkpoint with it2's SentencePiece models",
    "model.spm": "it2/vocab/model.SRC",
    "split.out": "fairseq-generate --doc-decoding split of ckpt.pt on data-bin's test",
    "out.txt": "test-doc8's references, each document's last word dropped",
    "ref.txt": "test-doc8's references (toy corpus, <s> between sentences)",
    "src.txt": "test-doc8's sources",
    "test-doc8.tgt-sentences": "the toy corpus's file of that name",
    "test-doc8.lines": "the toy corpus's file of that name",
    "examples": "a link to the repository's examples/",
}


def run(*cmd, cwd, env, stdout=None):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=stdout or subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"stand-in step failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return proc


def retag(line):
    words = line.split(" ")
    return " ".join(TAGS.get(w, w) for w in words)


def encode_line(sp, line, tagged):
    """Tags kept as they are, each sentence (between <s>) in pieces."""
    words = line.split()
    tags = words[:2] if tagged else []
    body = " ".join(words[2:] if tagged else words)
    sentences = [" ".join(sp.encode(s.strip(), out_type=str)) for s in body.split(SEP)]
    return " ".join(tags + [f" {SEP} ".join(sentences)])


def strip_tags(line):
    return " ".join(line.split()[2:])


def build(out, env):
    """Every stand-in of DESCRIBE under ``out`` (a fresh folder)."""
    import sentencepiece as spm

    out = Path(out)
    toy, enc = out / "toy-raw", out / "enc"
    run(BIN / "fairseq-relpos", "toy-corpus", toy, "--doc-separator", SEP, "--train-sentences", "300",
        "--doc-targets", *[t for t in TAGS if t != "eng_Toyl"], cwd=out, env=env)
    for path in toy.glob("*.src"):
        path.write_text("".join(retag(line) + "\n" for line in path.read_text().splitlines()))
    it2 = out / "it2"
    for sub in ("vocab", "final_bin", "model"):
        (it2 / sub).mkdir(parents=True)
    plain = {"SRC": [strip_tags(l) for l in (toy / "train.src").read_text().splitlines()],
             "TGT": (toy / "train.tgt").read_text().splitlines()}
    for side, lines in plain.items():
        (out / f"spm.{side}.txt").write_text("\n".join(lines) + "\n")
        spm.SentencePieceTrainer.train(input=str(out / f"spm.{side}.txt"), model_prefix=str(out / f"spm.{side}"),
                                       vocab_size=400, model_type="unigram", character_coverage=1.0,
                                       num_threads=1, minloglevel=2, hard_vocab_limit=False)
        shutil.copy(out / f"spm.{side}.model", it2 / "vocab" / f"model.{side}")
    enc.mkdir()
    splits = {"train": "train", "valid": "valid", "test": "test-doc4"}
    for side, suffix in (("SRC", "src"), ("TGT", "tgt")):
        sp = spm.SentencePieceProcessor(model_file=str(it2 / "vocab" / f"model.{side}"))
        for split, name in splits.items():
            lines = (toy / f"{name}.{suffix}").read_text().splitlines()[:TEST_DOCS if split == "test" else None]
            (enc / f"{split}.{side}").write_text("".join(encode_line(sp, l, side == "SRC") + "\n" for l in lines))
    run(BIN / "fairseq-preprocess", "--source-lang", "SRC", "--target-lang", "TGT", "--trainpref", enc / "train",
        "--validpref", enc / "valid", "--testpref", enc / "test", "--destdir", out / "data-bin", "--workers", "1",
        cwd=out, env=env)
    for side in ("SRC", "TGT"):
        shutil.copy(out / "data-bin" / f"dict.{side}.txt", it2 / "final_bin" / f"dict.{side}.txt")
        shutil.copy(enc / f"test.{side}", out / f"test.{side}")
    shutil.copy(enc / "test.TGT", out / "test.tgt")
    plugin = ["--user-dir", str(ROOT / "fairseq_relpos")]
    run(BIN / "fairseq-train", "data-bin", *plugin, "--arch", "transformer", *TINY, *IT2_LIKE, *TRAIN,
        "--max-update", "10", "--save-dir", "base", cwd=out, env=env)
    for name in ("it2_distilled.pt", "it2.pt", "it2/model/checkpoint_best.pt"):
        shutil.copy(out / "base" / "checkpoint_best.pt", out / name)
    run(BIN / "fairseq-train", "data-bin", *plugin, "--arch", "transformer_rope", "--finetune-from-model",
        "it2_distilled.pt", *TRAIN, "--max-update", "5", "--save-dir", "ckpt-rope", cwd=out, env=env)
    rope = out / "ckpt-rope" / "checkpoint_best.pt"
    (out / "ckpt").mkdir()
    for name in ("ckpt/checkpoint_best.pt", "ckpt.pt"):
        shutil.copy(rope, out / name)
    run(BIN / "fairseq-train", "data-bin", *plugin, "--arch", "transformer_rope", "--task", "translation_lora",
        "--lora-style", "lora", "--finetune-from-model", rope, *TRAIN, "--max-update", "5",
        "--save-dir", "lora", cwd=out, env=env)
    shutil.copy(out / "lora" / "checkpoint_best.pt", out / "checkpoint_best.pt")
    sys.path.insert(0, str(ROOT / "tests"))
    from fairseq_relpos.checkpoints import allow_fairseq_checkpoints
    from fork_fixtures import forkify
    allow_fairseq_checkpoints()  # forkify reads with weights_only=True, as the tests do
    forkify(rope, out / "fork_checkpoint.pt")
    run(BIN / "fairseq-relpos", "export-hf", rope, "rotary-indictrans2-en-indic-dist-200M", "--data", "data-bin",
        "--source-lang", "SRC", "--target-lang", "TGT", "--spm-src", "it2/vocab/model.SRC",
        "--spm-tgt", "it2/vocab/model.TGT", cwd=out, env=env)
    with open(out / "split.out", "w") as split:
        run(BIN / "fairseq-generate", "data-bin", *plugin, "--task", "translation_doc", "--path", "ckpt.pt",
            "--gen-subset", "test", "--beam", "2", "--max-len-b", "10", "--doc-separator", SEP,
            "--doc-decoding", "split", cwd=out, env=env, stdout=split)
    corpus = out / "corpus"
    corpus.mkdir()
    for suffix in ("src", "tgt", "ids"):
        shutil.copy(toy / f"train-docs.{suffix}", corpus / f"train.{suffix}")
    shutil.copy(it2 / "vocab" / "model.SRC", out / "model.spm")
    refs = (toy / "test-doc8.tgt").read_text().splitlines()
    (out / "ref.txt").write_text("\n".join(refs) + "\n")
    (out / "out.txt").write_text("".join(" ".join(l.split()[:-1]) + "\n" for l in refs))
    shutil.copy(toy / "test-doc8.src", out / "src.txt")
    for suffix in ("tgt-sentences", "lines"):
        shutil.copy(toy / f"test-doc8.{suffix}", out / f"test-doc8.{suffix}")
    docs = [[s.strip() for s in strip_tags(l).split(SEP)] for l in (toy / "test-doc4.src").read_text().splitlines()[:3]]
    (out / "docs.eng_Latn").write_text("\n\n".join("\n".join(d) for d in docs) + "\n")
    (out / "examples").symlink_to(ROOT / "examples")
    return out
