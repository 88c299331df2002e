"""The scores of the decoding modes, as ``results.json`` carries them under each cell's
``decodes``: per mode, ``scores`` in the layout of a cell's ``scores`` (test set -> group ->
whole-document ChrF++, BLEU, segments, length ratio, and sentence-aligned ChrF++ with the
documents cut again: :func:`.decode.score_segments`), each entry also holding how many documents
it covers (``chapters``) and, for every mode but the baseline (``split``), the paired bootstrap
95% interval of its aligned ChrF++ minus the baseline's (:func:`.decode.ci95_vs_split`). The
document evaluation set is given as an evaluation set of its own (``doc_data``: its segments and
reference files under ``data/raw``), so that it is scored exactly as the older one.
"""
from .decode import ci95_vs_split, score_segments
from .settings import SEPARATOR

BASELINE = "split"


def joined(sentences):
    """A document's output as one text: its sentences between separators."""
    return f" {SEPARATOR} ".join(sentences)


def doc_data(data_info, doc_info):
    """The document evaluation set as ``score_segments`` takes an evaluation set."""
    keep = ("languages", "groups", "doc_languages")
    return {**{k: data_info[k] for k in keep}, **doc_info["evaluation"]}


def decodes_layout(work, data, outputs, baseline=None):
    """``{mode: {"scores": {test set: {group: entry}}}}``. ``data``: :func:`doc_data`;
    ``outputs``: mode -> each document's output sentences (one string for an output without
    separators); ``baseline``: the baseline's outputs where they are not among ``outputs`` (the
    looping searches, compared with their cell's own ``split``)."""
    hyps = {mode: [joined(o) for o in docs] for mode, docs in outputs.items()}
    base = hyps.get(BASELINE) or ([joined(o) for o in baseline] if baseline else None)
    out = {}
    for mode in outputs:
        scores, _ = score_segments(work, data, hyps[mode], f"mode {mode}", SEPARATOR)
        for split, groups in scores.items():
            for group, entry in groups.items():
                entry["chapters"] = entry["segments"]
                if mode != BASELINE and base:
                    entry["ci95_vs_split"] = ci95_vs_split(work, data, hyps[mode], base, split, group, SEPARATOR)
        out[mode] = {"scores": scores}
    return out


def context_layout(context, langs, references, outputs):
    """``{mode: {"right", "total", "share"}}`` of ``Corpus.context`` (the toy's pronouns), or {}."""
    if context is None:
        return {}
    out = {}
    for mode, docs in outputs.items():
        right, total = context(langs, [joined(o) for o in docs], [joined(r) for r in references], SEPARATOR)
        out[mode] = {"right": right, "total": total, "share": round(right / total, 3) if total else None}
    return out
