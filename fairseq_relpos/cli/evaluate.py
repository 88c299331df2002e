"""Score translations with ChrF++ (sacrebleu) overall, by document length and by language pair.

Give fairseq-generate output (--generate FILE), or --hyp and --ref files (with --src for the
per-pair scores, read from the IndicTrans2 tags). Prints the sacrebleu signature and a table;
--json writes the same numbers. A lost segment (gap in ids, count mismatch) is an error; the last
segments of --generate output can only be counted against --ref or fairseq-generate's log (its
stderr: --log, or in FILE itself), so one of them is required.
"""
import json

from ..scoring import evaluate, inputs_read, inputs_skipped, read_generate, read_lines, table
from ..safe_io import check_output
from ..scratch import write_atomically


def add_arguments(parser):
    parser.add_argument("--generate", metavar="FILE", help="fairseq-generate output")
    parser.add_argument("--hyp", metavar="FILE", help="hypotheses, one a line")
    parser.add_argument("--ref", metavar="FILE",
                        help="references, one a line (with --generate: used instead of its T- lines, "
                             "which also checks that no trailing input was lost)")
    parser.add_argument("--log", metavar="FILE",
                        help="fairseq-generate's log (its stderr), which says how many inputs it read; "
                             "with --generate and no --ref it is needed unless the output file holds "
                             "the log too (2>&1)")
    parser.add_argument("--src", metavar="FILE", help="sources, one a line, for scores by language pair")
    parser.add_argument("--json", metavar="FILE", help="also write the scores as JSON here")
    parser.add_argument("--force", action="store_true", help="replace the --json file if it exists")


def main(args):
    if bool(args.generate) == bool(args.hyp):
        raise ValueError("give either --generate FILE or --hyp FILE --ref FILE")
    if args.log and not args.generate:
        raise ValueError("--log is fairseq-generate's log: it goes with --generate")
    if args.json:
        # before any work, so a failure never follows the printed table
        check_output(args.json, force=args.force, inputs=[args.generate, args.hyp, args.ref, args.src])
    if args.generate:
        sources, hyps, refs = read_generate(args.generate, references=not args.ref)
        _check_inputs_read(args, len(hyps))
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


def _check_inputs_read(args, segments):
    """The --generate output holds one segment per input fairseq-generate read (its log's count)."""
    log = args.log or args.generate
    read = inputs_read(log)
    if read is None:
        if args.log or not args.ref:
            raise ValueError(f"{log} does not say how many inputs fairseq-generate read (no 'loaded N "
                             f"examples' line), so lost last segments would go unnoticed: give --ref "
                             f"REFERENCES, or --log with fairseq-generate's stderr")
        return
    if segments > read:
        raise ValueError(f"{args.generate} has output for {segments} inputs, but fairseq-generate read "
                         f"{read} ({log}): the log is not this output's")
    if segments < read:
        missing, skipped = read - segments, inputs_skipped(log)
        cut = "a run cut short, or a file cut or filtered"
        why = cut if not skipped else (
            f"the log says {skipped} input(s) were skipped as longer than max positions "
            f"(--skip-invalid-size-inputs-valid-test), and a skipped input has no output to score: raise "
            f"--max-source-positions/--max-target-positions to decode them"
            + ("" if skipped >= missing else f"; the other {missing - skipped}: {cut}"))
        raise ValueError(f"{args.generate} has output for {segments} inputs, but fairseq-generate read "
                         f"{read} ({log}): the last {missing} are missing ({why})")
