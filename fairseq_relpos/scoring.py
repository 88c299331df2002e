"""ChrF++ (sacrebleu's ``CHRF(word_order=2)``) overall, by document length and by language pair,
and sentence by sentence within documents.

Every score is sacrebleu's own corpus score on the selected segments, so the overall number is
exactly what ``sacrebleu -m chrf --chrf-word-order 2`` gives on the same files (after the same
normalisation). Inputs are either fairseq-generate output (``S-``/``T-``/``H-``/``D-`` lines;
``D-``, the detokenised hypothesis, is used when present) or plain hypothesis/reference files.
Segments are never dropped: a missing hypothesis, a gap in the ids or a count mismatch is an error.

Both sides are NFKC-normalised by default: hypotheses come out of a SentencePiece model that
normalised its input (IndicTrans2's and the study's use NFKC), references do not, and NFKC
decomposes some precomposed characters (Bengali U+09DC, U+09DF), so a perfect Bengali output
would otherwise score about 85.
"""
import re
import unicodedata
from collections import defaultdict, namedtuple

from sacrebleu.metrics import CHRF

from .documents.resegment import resegment
from .documents.sentences import split_sentences
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


def normalized(texts, normalize=True):
    """``texts`` in NFKC (Unicode compatibility composition), or as they are."""
    return [unicodedata.normalize("NFKC", t) for t in texts] if normalize else list(texts)


def signature(chrf, normalize=True):
    """sacrebleu's signature with the normalisation applied before it."""
    return f"{chrf.get_signature()}|nfkc:{'yes' if normalize else 'no'}"


def evaluate(hypotheses, references, sources=None, normalize=True):
    """A dict with the signature, overall score and per-bucket and per-pair scores."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if sources is not None and len(sources) != len(references):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    if not references:
        raise ValueError("nothing to score: no segments")
    hypotheses, references = normalized(hypotheses, normalize), normalized(references, normalize)
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
        "signature": signature(chrf, normalize),
        "normalize": "nfkc" if normalize else "none",
        "overall": overall,
        "by_length": {k: score(v) for k, v in sorted(groups["length"].items(), key=lambda kv: order(kv[0]))},
        "by_pair": {k: score(v) for k, v in sorted(groups["pair"].items())},
    }


Aligned = namedtuple("Aligned", "hypotheses references documents resegmented")


def align_sentences(hyp_documents, ref_documents, separator=None, normalize=True):
    """The sentence pairs of documents, for scoring sentence by sentence. ``ref_documents``: each
    a list of reference sentences. A hypothesis is cut at ``separator`` (None: it is one
    sentence); one whose sentence count differs from its reference's is cut again by minimum
    edit distance against the reference sentences (:mod:`documents.resegment`). Returns the
    sentences of both sides, each sentence's document number and the numbers of the documents
    cut again."""
    if len(hyp_documents) != len(ref_documents):
        raise ValueError(f"{len(hyp_documents)} hypothesis documents but {len(ref_documents)} reference documents")
    out = Aligned([], [], [], [])
    for i, (hyp, refs) in enumerate(zip(hyp_documents, ref_documents)):
        refs = normalized(refs, normalize)
        sentences = normalized(split_sentences(hyp, separator) if separator else [hyp], normalize)
        if len(sentences) != len(refs):
            sentences = resegment(" ".join(sentences), refs)
            out.resegmented.append(i)
        out.hypotheses.extend(sentences)
        out.references.extend(refs)
        out.documents.extend([i] * len(refs))
    return out


def aligned_score(aligned):
    """Corpus ChrF++ over all sentences of :func:`align_sentences`' pairs."""
    if not aligned.references:
        raise ValueError("nothing to score: no sentences")
    score = CHRF(word_order=2).corpus_score(aligned.hypotheses, [aligned.references]).score
    return {"chrf++": score, "sentences": len(aligned.references), "documents": len(set(aligned.documents)),
            "resegmented": len(aligned.resegmented), "resegmented_documents": aligned.resegmented}


def whole_document(sentences):
    """A document's sentences joined by single spaces (empty ones left out), to score it whole."""
    return " ".join(s for s in sentences if s)


def table(report):
    rows = [("all", report["overall"])]
    rows += [(f"length {k}", v) for k, v in report["by_length"].items()]
    rows += [(k, v) for k, v in report["by_pair"].items()]
    width = max(len(name) for name, _ in rows)
    lines = [f"chrF++ signature: {report['signature']}", f"{'':{width}}  segments  chrF++"]
    lines += [f"{name:{width}}  {v['segments']:8d}  {v['chrf++']:6.2f}" for name, v in rows]
    if "aligned" in report:
        a = report["aligned"]
        lines.append(f"sentence-aligned: chrF++ {a['chrf++']:.2f} over {a['sentences']} sentences of "
                     f"{a['documents']} documents ({a['resegmented']} cut again by minimum edit distance: "
                     f"sentence count not the reference's); whole documents above")
    if "floors" in report:
        lines.append("whole-document floors, from the references alone (documents, chrF++):")
        lines += [f"  {name:15s} {v['documents']:8d}  " + (f"{v['chrf++']:6.2f}" if v["chrf++"] is not None else "     -")
                  for name, v in report["floors"].items()]
    if "comparison" in report:
        c = report["comparison"]
        lines.append(f"against {c['baseline']} (this minus it; paired bootstrap 95% interval, {c['resamples']} "
                     f"resamples of documents, seed {c['seed']}):")
        lines += [f"  {name:15s} {v['difference']:+6.2f}  [{v['ci95'][0]:+.2f}, {v['ci95'][1]:+.2f}]"
                  for name, v in c["scores"].items()]
    return "\n".join(lines)
