"""Write the deterministic toy translation corpus (no download) into OUTDIR.

One source language (eng_Toyl) into four toy languages with their own words and word orders;
sentence-level train/valid/test, document training data for some languages only, and
document test sets of 2 to 32 sentences (see fairseq_relpos.corpora.toy). Same options, same bytes.
"""
from ..safe_io import check_folder
from ..corpora.toy import TARGETS, write_toy_corpus
from ..corpora.writing import train_sentencepiece
from .shared_options import add_sentencepiece_option, check_sentencepiece


def add_arguments(parser):
    parser.add_argument("outdir", help="directory to write (created if missing)")
    parser.add_argument("--seed", type=int, default=1, help="sampling seed (default 1)")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), metavar="LANG",
                        help=f"target languages (default all: {' '.join(TARGETS)})")
    parser.add_argument("--doc-targets", nargs="*", default=list(TARGETS[:2]), metavar="LANG",
                        help="languages that get document training data (train-docs); the others "
                             "only have sentences, to test length transfer (default: the first two)")
    parser.add_argument("--train-sentences", type=int, default=2000, metavar="N",
                        help="training sentences per language (default 2000)")
    parser.add_argument("--doc-separator", metavar="SYM",
                        help="write this symbol between the sentences of the test documents, on both "
                             "sides (e.g. '<s>', for --doc-decoding); default: a space only")
    add_sentencepiece_option(parser, "and write every split encoded with it under OUTDIR/spm/ (tags kept in front)")


def main(args):
    check_sentencepiece(args)
    check_folder(args.outdir)
    corpus = write_toy_corpus(args.outdir, seed=args.seed, targets=args.targets,
                              doc_targets=args.doc_targets, train_sentences=args.train_sentences, separator=args.doc_separator)
    spm = train_sentencepiece(corpus, args.sentencepiece, separator=args.doc_separator) if args.sentencepiece is not None else None
    corpus.print_summary("document id of each train-docs line", spm)
