"""ChrF++ (sacrebleu's ``CHRF(word_order=2)``) overall, by document length and by language pair.

Every score is sacrebleu's own corpus score on the selected segments, so the overall number is
exactly what ``sacrebleu -m chrf --chrf-word-order 2`` gives on the same files. Inputs are either
fairseq-generate output (``S-``/``T-``/``H-``/``D-`` lines; ``D-``, the detokenised hypothesis,
is used when present) or plain hypothesis/reference files. Segments are never dropped: a
missing hypothesis, a gap in the ids or a count mismatch is an error.
"""
import re
from collections import defaultdict

from sacrebleu.metrics import CHRF

from .documents.tags import split_tags
from .safe_io import text_lines


def read_lines(path):
    return [line.rstrip("\n") for line in text_lines(path)]


def read_generate(path, references=True):
    """``(sources, hypotheses, references)`` in id order from fairseq-generate output; with
    ``references=False`` T- lines are not required (references come from elsewhere)."""
    fields = {"S": {}, "T": {}, "H": {}, "D": {}}
    last = None  # the id of the line before: an n-best list repeats H- and D- lines in one run
    for number, line in enumerate(read_lines(path), start=1):
        kind, _, rest = line.partition("-")
        head, _, text = rest.partition("\t")
        if len(kind) != 1 or not kind.isupper() or not head.isdigit() or "\t" not in rest:
            continue
        i, in_run, last = int(head), last == int(head), int(head)
        if kind not in fields:
            continue
        if i in fields[kind] and (kind in "ST" or not in_run):
            raise ValueError(f"{path} line {number}: a second {kind}-{i} line; the file holds sentence {i} twice "
                             "(outputs of two runs joined?), so which one to score is unknown")
        if kind in "HD":  # id, score, text; keep the best (first) hypothesis of an n-best list
            text = text.partition("\t")[2]
        fields[kind].setdefault(i, text)
    hyps = fields["D"] or fields["H"]
    if not hyps:
        raise ValueError(f"{path} has no H- or D- lines: not fairseq-generate output, or a run that "
                         f"decoded nothing")
    ids = sorted(set(hyps) | set(fields["T"]) | set(fields["S"]))
    no_hyp = [i for i in ids if i not in hyps]
    no_ref = [i for i in ids if i not in fields["T"]] if references else []
    gaps = sorted(set(range(ids[-1] + 1)) - set(ids))
    for what, missing in (("hypothesis", no_hyp), ("reference (T- line)", no_ref), ("output at all", gaps)):
        if missing:
            raise ValueError(f"{path}: {len(missing)} id(s) have no {what}: {missing[:20]}; the output is "
                             f"incomplete (a file cut or filtered, or inputs skipped with "
                             f"--skip-invalid-size-inputs-valid-test)")
    return [fields["S"].get(i) for i in ids], [hyps[i] for i in ids], [fields["T"].get(i) for i in ids]


def inputs_read(path):
    """How many inputs fairseq-generate read, from its log (fairseq.data.data_utils' ``loaded N
    examples from: ...``, one line per side of the --gen-subset, in fairseq's log format or
    Python's default one; the log goes to stderr), or None if ``path`` has no such line.
    fairseq-generate's output alone cannot show that its last inputs are missing."""
    counts = set()
    for line in read_lines(path):
        found = re.search(r"fairseq\.data\.data_utils(?: \| |:)loaded ([\d,]+) examples from: ", line)
        if found:
            counts.add(int(found.group(1).replace(",", "")))
    if len(counts) > 1:
        raise ValueError(f"{path} logs datasets of {sorted(counts)} examples: not the log of one "
                         f"fairseq-generate run")
    return counts.pop() if counts else None


# how a run's log says it skipped inputs longer than max positions: this plugin's tasks
# (tasks/over_long_inputs.py), then fairseq's own (FairseqTask, data_utils)
_SKIPPED = re.compile(r"skipping ([\d,]+) input\(s\) longer than max positions"
                      r"|([\d,]+) samples have invalid sizes and will be skipped")


def inputs_skipped(path):
    """How many inputs fairseq-generate skipped as longer than max positions
    (``--skip-invalid-size-inputs-valid-test``), from its log; 0 when it says of none."""
    counts = [int((found.group(1) or found.group(2)).replace(",", ""))
              for found in map(_SKIPPED.search, read_lines(path)) if found]
    return max(counts, default=0)


def length_bucket(tokens):
    """Power-of-two buckets of reference length in whitespace tokens: <=16, 17-32, 33-64, ..."""
    high = 16
    while tokens > high:
        high *= 2
    return f"<={high}" if high == 16 else f"{high // 2 + 1}-{high}"


def evaluate(hypotheses, references, sources=None):
    """A dict with the signature, overall score and per-bucket and per-pair scores."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if sources is not None and len(sources) != len(references):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    if not references:
        raise ValueError("nothing to score: no segments")
    chrf = CHRF(word_order=2)

    def score(indices):
        result = chrf.corpus_score([hypotheses[i] for i in indices], [[references[i] for i in indices]])
        return {"chrf++": result.score, "segments": len(indices),
                "ref_tokens_max": max(len(references[i].split()) for i in indices)}

    groups = {"length": defaultdict(list), "pair": defaultdict(list)}
    for i, ref in enumerate(references):
        groups["length"][length_bucket(len(ref.split()))].append(i)
        tags = split_tags(sources[i])[0] if sources is not None and sources[i] is not None else None
        if tags:
            groups["pair"]["-".join(tags)].append(i)

    def order(label):
        return int(label.lstrip("<=").split("-")[0])

    overall = score(range(len(references)))
    return {
        "metric": "chrF++",
        "signature": str(chrf.get_signature()),
        "overall": overall,
        "by_length": {k: score(v) for k, v in sorted(groups["length"].items(), key=lambda kv: order(kv[0]))},
        "by_pair": {k: score(v) for k, v in sorted(groups["pair"].items())},
    }


def table(report):
    rows = [("all", report["overall"])]
    rows += [(f"length {k}", v) for k, v in report["by_length"].items()]
    rows += [(k, v) for k, v in report["by_pair"].items()]
    width = max(len(name) for name, _ in rows)
    lines = [f"chrF++ signature: {report['signature']}", f"{'':{width}}  segments  chrF++"]
    lines += [f"{name:{width}}  {v['segments']:8d}  {v['chrf++']:6.2f}" for name, v in rows]
    return "\n".join(lines)
