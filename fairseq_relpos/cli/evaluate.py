"""Score translations with ChrF++ (sacrebleu) overall, by document length and by language pair.

Give fairseq-generate output (--generate FILE), or --hyp and --ref files (with --src for the
per-pair scores, read from the IndicTrans2 tags). Prints the sacrebleu signature and a table;
--json writes the same numbers. A lost segment (gap in ids, count mismatch) is an error; the last
segments of --generate output can only be counted against --ref or fairseq-generate's log (its
stderr: --log, or in FILE itself), so one of them is required.

Both sides are NFKC-normalised unless --no-normalize (the signature says which). Documents are
also scored sentence by sentence: with --doc-separator SYM the hypotheses (and references from
T- lines or --ref) are cut at SYM, or the reference sentences come from --ref-sentences and
make-docs's --lines sidecar; a hypothesis whose sentence count differs from its reference's is
cut again by minimum edit distance. --floors prints what references alone score as whole
documents; --baseline OTHER gives the paired bootstrap 95% interval of this output minus OTHER.
"""
import json

from ..bootstrap import RESAMPLES, SEED, paired_bootstrap
from ..documents.sentences import check_separator, read_sentence_documents, split_sentences
from ..documents.tags import split_tags
from ..floors import floors
from ..scoring import (align_sentences, aligned_score, evaluate, inputs_read, inputs_skipped, normalized,
                       read_generate, read_lines, table, whole_document)
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
    parser.add_argument("--no-normalize", action="store_true",
                        help="score the texts as they are (default: NFKC on both sides, as SentencePiece "
                             "normalised the hypotheses)")
    parser.add_argument("--doc-separator", metavar="SYM",
                        help="the symbol between a document's sentences (e.g. '<s>'): also score the "
                             "documents sentence by sentence; the whole-document score leaves it out")
    parser.add_argument("--ref-sentences", metavar="FILE",
                        help="reference sentences, one a line, grouped into documents by --lines "
                             "(instead of --ref or T- lines): also score sentence by sentence")
    parser.add_argument("--lines", metavar="FILE",
                        help="with --ref-sentences: make-docs's .lines sidecar, each document's 1-based "
                             "line numbers in that file")
    parser.add_argument("--floors", action="store_true",
                        help="also print what the references alone score as whole documents (another "
                             "document's reference, a perfect translation cut short, a looped prefix)")
    parser.add_argument("--baseline", metavar="FILE",
                        help="another system's output on the same inputs (fairseq-generate output with "
                             f"--generate, hypotheses with --hyp): print this minus it with a paired "
                             f"bootstrap 95%% interval ({RESAMPLES} resamples, seed {SEED})")


def main(args):
    if bool(args.generate) == bool(args.hyp):
        raise ValueError("give either --generate FILE or --hyp FILE --ref FILE")
    if args.log and not args.generate:
        raise ValueError("--log is fairseq-generate's log: it goes with --generate")
    _check_document_options(args)
    if args.json:
        # before any work, so a failure never follows the printed table
        check_output(args.json, force=args.force, inputs=[args.generate, args.hyp, args.ref, args.src,
                                                          args.ref_sentences, args.lines, args.baseline])
    if args.generate:
        sources, hyps, refs = read_generate(args.generate, references=not (args.ref or args.ref_sentences))
        _check_inputs_read(args, len(hyps))
        if args.ref:
            refs = read_lines(args.ref)
    else:
        if not (args.ref or args.ref_sentences):
            raise ValueError("--hyp needs --ref (or --ref-sentences with --lines)")
        sources, hyps, refs = None, read_lines(args.hyp), read_lines(args.ref) if args.ref else None
    if args.src:
        sources = read_lines(args.src)
    report = _score(args, sources, hyps, refs)
    if args.json:
        write_atomically(args.json, lambda f: f.write(json.dumps(report, indent=1) + "\n"),
                         mode="w", encoding="utf-8")
    print(table(report))


def _check_inputs_read(args, segments):
    """The --generate output holds one segment per input fairseq-generate read (its log's count)."""
    log = args.log or args.generate
    read = inputs_read(log)
    if read is None:
        if args.log or not (args.ref or args.ref_sentences):
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


def _check_document_options(args):
    if args.doc_separator is not None:
        check_separator(args.doc_separator)
    if bool(args.ref_sentences) != bool(args.lines):
        raise ValueError("--ref-sentences FILE and --lines FILE go together: the sentences and each "
                         "document's line numbers in them")
    if args.ref_sentences and args.ref:
        raise ValueError("give the references once: --ref (documents) or --ref-sentences with --lines")


def _score(args, sources, hyps, refs):
    """Whole-document scores, and with sentence structure the sentence-aligned score; floors and
    the comparison with --baseline on request."""
    normalize, separator = not args.no_normalize, args.doc_separator
    if args.ref_sentences:
        ref_docs = read_sentence_documents(args.ref_sentences, args.lines)
    else:
        ref_docs = [split_sentences(r, separator) for r in refs] if separator else None
    whole_refs = [whole_document(d) for d in ref_docs] if ref_docs is not None else refs
    report = evaluate(_whole(hyps, separator), whole_refs, sources, normalize)
    if ref_docs is not None:
        report["separator"] = separator
        report["aligned"] = aligned_score(align_sentences(hyps, ref_docs, separator, normalize))
    if args.floors:
        languages = [_target_language(s) for s in sources] if sources is not None else None
        report["floors"] = floors([normalized(d, normalize) for d in ref_docs or [[r] for r in whole_refs]], languages)
    if args.baseline:
        report["comparison"] = _compare(args, sources, hyps, whole_refs, ref_docs)
    return report


def _target_language(source):
    tags = split_tags(source)[0] if source is not None else None
    return tags[1] if tags else None


def _whole(hyps, separator):
    return [whole_document(split_sentences(h, separator)) for h in hyps] if separator else hyps


def _compare(args, sources, hyps, whole_refs, ref_docs):
    """This output minus --baseline's, whole documents and (with sentences) aligned, with paired
    bootstrap intervals; a document's sentences are drawn together."""
    if args.generate:
        other_sources, other, _ = read_generate(args.baseline, references=False)
        differ = [i for i, (a, b) in enumerate(zip(sources, other_sources)) if a is not None and b is not None and a != b]
        if differ:
            raise ValueError(f"--baseline {args.baseline}: its S-{differ[0]} line is not {args.generate}'s: "
                             f"not an output of the same inputs")
    else:
        other = read_lines(args.baseline)
    if len(other) != len(hyps):
        raise ValueError(f"--baseline {args.baseline} has {len(other)} outputs, {args.generate or args.hyp} "
                         f"{len(hyps)}: not outputs of the same inputs")
    normalize, separator = not args.no_normalize, args.doc_separator
    scores = {"whole": paired_bootstrap(*(normalized(_whole(h, separator), normalize) for h in (hyps, other)),
                                        normalized(whole_refs, normalize))}
    if ref_docs is not None:
        mine, theirs = (align_sentences(h, ref_docs, separator, normalize) for h in (hyps, other))
        scores["aligned"] = paired_bootstrap(mine.hypotheses, theirs.hypotheses, mine.references,
                                             groups=mine.documents)
    return {"baseline": args.baseline, "resamples": RESAMPLES, "seed": SEED, "scores": scores}
