"""Score translations with ChrF++ (sacrebleu) overall, by document length and by language pair.

Give fairseq-generate output (--generate FILE), or --hyp and --ref files (with --src for the
per-pair scores, read from the IndicTrans2 tags). Prints the sacrebleu signature and a table;
--json writes the same numbers. A lost segment (gap in ids, count mismatch) is an error.
"""
import json

from ..scoring import evaluate, read_generate, read_lines, table
from ..safe_io import check_output
from ..scratch import write_atomically


def add_arguments(parser):
    parser.add_argument("--generate", metavar="FILE", help="fairseq-generate output")
    parser.add_argument("--hyp", metavar="FILE", help="hypotheses, one a line")
    parser.add_argument("--ref", metavar="FILE",
                        help="references, one a line (with --generate: used instead of its T- lines, "
                             "which also checks that no trailing input was lost)")
    parser.add_argument("--src", metavar="FILE", help="sources, one a line, for scores by language pair")
    parser.add_argument("--json", metavar="FILE", help="also write the scores as JSON here")
    parser.add_argument("--force", action="store_true", help="replace the --json file if it exists")


def main(args):
    if bool(args.generate) == bool(args.hyp):
        raise ValueError("give either --generate FILE or --hyp FILE --ref FILE")
    if args.json:
        # before any work, so a failure never follows the printed table
        check_output(args.json, force=args.force, inputs=[args.generate, args.hyp, args.ref, args.src])
    if args.generate:
        sources, hyps, refs = read_generate(args.generate, references=not args.ref)
        if args.ref:
            refs = read_lines(args.ref)
    else:
        if not args.ref:
            raise ValueError("--hyp needs --ref")
        sources, hyps, refs = None, read_lines(args.hyp), read_lines(args.ref)
    if args.src:
        sources = read_lines(args.src)
    report = evaluate(hyps, refs, sources)
    if args.json:
        write_atomically(args.json, lambda f: f.write(json.dumps(report, indent=1) + "\n"),
                         mode="w", encoding="utf-8")
    print(table(report))
