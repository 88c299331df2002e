"""A tiny IndicTrans2-shaped directory (its layout, SentencePiece models per side, separate
dictionaries built on tagged text, a transformer_base18L-style base trained for 2 updates)."""
import random
import shutil

import fairseq_helpers as h

SHAPE = ["--encoder-layers", 2, "--decoder-layers", 2, "--encoder-embed-dim", 32, "--decoder-embed-dim", 32,
         "--encoder-ffn-embed-dim", 64, "--decoder-ffn-embed-dim", 64, "--encoder-attention-heads", 4,
         "--decoder-attention-heads", 4, "--activation-fn", "gelu"]
DOCS_PER_SPLIT = {"train": 30, "valid": 3, "test": 3}
SENTS_PER_DOC = 4


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


def make_indictrans2_dir(root):
    """(IndicTrans2-shaped directory, raw text directory), under ``root``."""
    import sentencepiece as spm

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
