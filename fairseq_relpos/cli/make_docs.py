"""Join sentence-aligned parallel text into pseudo-documents within a token budget.

Reads IN.SRC and IN.TGT (one sentence a line; documents delimited by blank lines or by --ids,
and by a change of language pair), writes OUT.SRC, OUT.TGT and OUT.lines (the input line
numbers of each document's sentences). IndicTrans2's language tags are kept once per document.
Streams in constant memory; outputs appear only if the whole input was valid.
"""
from ..documents.make_docs import make_documents


def add_arguments(parser):
    parser.add_argument("input", metavar="IN", help="input prefix: reads IN.SRC and IN.TGT")
    parser.add_argument("output", metavar="OUT", help="output prefix: writes OUT.SRC, OUT.TGT, OUT.lines")
    parser.add_argument("-s", "--source-lang", default="src", metavar="SRC", help="source suffix (default src)")
    parser.add_argument("-t", "--target-lang", default="tgt", metavar="TGT", help="target suffix (default tgt)")
    parser.add_argument("--budget", type=int, required=True, metavar="N",
                        help="most tokens per document on either side, tags and separators included")
    parser.add_argument("--min-budget", type=int, metavar="N",
                        help="draw each document's budget uniformly from [N, --budget] so documents "
                             "of every length occur (default: every document uses --budget)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the --min-budget draws (default 1)")
    parser.add_argument("--overlap", type=int, default=0, metavar="K",
                        help="consecutive documents cut from one input document share up to K "
                             "sentences (default 0: every sentence is written once)")
    parser.add_argument("--ids", metavar="FILE",
                        help="document id of every input line; documents are runs of equal ids "
                             "(default: blank lines delimit documents)")
    parser.add_argument("--separator", default=" ",
                        help="text between joined sentences (default one space)")
    parser.add_argument("--pairs", nargs="+", metavar="PAIR",
                        help="keep only these pairs (eng_Latn-hin_Deva) or languages (hin_Deva); "
                             "other sentences are left out and counted")
    parser.add_argument("--spm", metavar="MODEL",
                        help="count SentencePiece pieces of this model instead of whitespace tokens")
    parser.add_argument("--no-tags", action="store_true",
                        help="source lines have no IndicTrans2 language tags")
    parser.add_argument("--force", action="store_true", help="replace OUT.SRC, OUT.TGT and OUT.lines if they exist")


def main(args):
    ext = (args.source_lang, args.target_lang)
    summary = make_documents(
        f"{args.input}.{ext[0]}", f"{args.input}.{ext[1]}",
        f"{args.output}.{ext[0]}", f"{args.output}.{ext[1]}", f"{args.output}.lines",
        budget=args.budget, ids_path=args.ids, overlap=args.overlap, separator=args.separator,
        min_budget=args.min_budget, seed=args.seed, pairs=args.pairs, spm_model=args.spm,
        tagged=not args.no_tags, force=args.force)
    print(summary.report(args.budget))
