"""The scores of the decoding modes, as ``results.json`` carries them under each cell's
``decodes``: per mode, ``scores`` in the layout of a cell's ``scores`` (test set -> group ->
whole-document ChrF++, BLEU, segments, length ratio), each entry also holding the
sentence-aligned ChrF++ (``fairseq_relpos.scoring.align_sentences``: an output cut at its
separators, or again by minimum edit distance where its sentence count is not the reference's),
how many documents it covers and, for every mode but the baseline (``split``), the paired
bootstrap 95% interval of its aligned ChrF++ minus the baseline's (documents drawn whole,
``fairseq_relpos.bootstrap``). Both sides NFKC-normalised, as ``fairseq_relpos.scoring`` does.
"""
from fairseq_relpos.bootstrap import paired_bootstrap
from fairseq_relpos.floors import floors
from fairseq_relpos.scoring import Aligned, align_sentences, aligned_score, normalized

from .decode import score
from .settings import SEPARATOR

BASELINE = "split"


def group_members(langs, data_info):
    """``{group: [document index]}`` as the cells' scores group segments: all, each language
    group, unseen (no document data), each language; empty groups left out."""
    idx = list(range(len(langs)))
    groups = {"all": idx}
    for lang in data_info["languages"]:
        ids = [i for i in idx if langs[i] == lang]
        if ids:
            groups.setdefault(data_info["groups"][lang], []).extend(ids)
    groups["unseen"] = [i for i in idx if langs[i] not in data_info["doc_languages"]]
    for lang in data_info["languages"]:
        groups[lang] = [i for i in idx if langs[i] == lang]
    return {g: sorted(ids) for g, ids in groups.items() if ids}


def joined(sentences):
    """A document's output as one text for the aligned score: its sentences between separators."""
    return f" {SEPARATOR} ".join(sentences)


def subset(aligned, documents):
    """The sentence pairs of ``aligned`` that belong to these documents."""
    keep = set(documents)
    rows = [k for k, d in enumerate(aligned.documents) if d in keep]
    return Aligned([aligned.hypotheses[k] for k in rows], [aligned.references[k] for k in rows],
                   [aligned.documents[k] for k in rows], [d for d in aligned.resegmented if d in keep])


def decodes_layout(langs, references, outputs, data_info, split_name):
    """``{mode: {"scores": {split_name: {group: entry}}}}``. ``langs``: each document's language;
    ``references``: each document's reference sentences; ``outputs``: mode -> each document's
    output sentences (one string for an output without separators)."""
    whole_refs = normalized([" ".join(r) for r in references])
    groups = group_members(langs, data_info)
    aligned = {mode: align_sentences([joined(o) for o in docs], references, SEPARATOR)
               for mode, docs in outputs.items()}
    out = {}
    for mode, docs in outputs.items():
        if len(docs) != len(references):
            raise ValueError(f"mode {mode}: {len(docs)} outputs for {len(references)} documents")
        hyps = normalized([" ".join(o) for o in docs])
        entries = {}
        for group, ids in groups.items():
            entry = score([hyps[i] for i in ids], [whole_refs[i] for i in ids])[0]
            mine = subset(aligned[mode], ids)
            entry["aligned_chrf++"] = round(aligned_score(mine)["chrf++"], 2)
            entry["chapters"] = len(ids)
            entry["resegmented"] = len(mine.resegmented)
            if mode != BASELINE and BASELINE in aligned:
                theirs = subset(aligned[BASELINE], ids)
                ci = paired_bootstrap(mine.hypotheses, theirs.hypotheses, mine.references, groups=mine.documents)
                entry["ci95_vs_split"] = [round(x, 2) for x in ci["ci95"]]
            entries[group] = entry
        out[mode] = {"scores": {split_name: entries}}
    return out


def floors_layout(langs, references, data_info):
    """What the references alone score as whole documents (``fairseq_relpos.floors``), per group."""
    docs = [normalized(r) for r in references]
    return {group: floors([docs[i] for i in ids], [langs[i] for i in ids])
            for group, ids in group_members(langs, data_info).items()}


def context_layout(context, langs, references, outputs):
    """``{mode: {"right", "total", "share"}}`` of ``Corpus.context`` (the toy's pronouns), or {}."""
    if context is None:
        return {}
    out = {}
    for mode, docs in outputs.items():
        right, total = context(langs, [joined(o) for o in docs], [joined(r) for r in references], SEPARATOR)
        out[mode] = {"right": right, "total": total, "share": round(right / total, 3) if total else None}
    return out
