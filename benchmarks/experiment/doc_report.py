"""The document evaluation set in the report: each cell's ``decodes`` (and ``context``,
``looping``) attached from its cache, and the tables of ``results.md``: aligned ChrF++ per mode
with its interval against ``split``, whole-document ChrF++ beside it, the run-on figures of
every seed, the reference-only floors and the looping experiments."""
import json
import statistics

from .doc_decode import cell_decodes
from .doc_eval import doc_eval_dir
from .doc_scores import BASELINE
from .looping import DIAGNOSIS
from .runner import dir_of, key_of, seed_label
from .settings import MODES, REGIMES, POSITIONS


def doc_eval_info(work):
    """The document evaluation set's description, or None before it was built."""
    path = doc_eval_dir(work) / "doc-eval.json"
    return json.loads(path.read_text()) if path.is_file() else None


def attach(spec, work, cfg, data_info, cells, rescore=False):
    """Each cell's ``decodes`` and ``context`` (and ``looping`` where run) from its cached outputs;
    returns the set's summary for ``results.json`` (documents, floors), or None."""
    doc_info = doc_eval_info(work)
    if doc_info is None:
        return None
    for c in cells:
        found = cell_decodes(spec, work, cfg, data_info, doc_info, c, rescore)
        if found:
            c["decodes"] = found["decodes"]
            if found["context"]:
                c["context"] = found["context"]
        looping = {}
        diagnosis = dir_of(work, c) / DIAGNOSIS
        if diagnosis.is_file():
            looping["diagnosis"] = json.loads(diagnosis.read_text())
        searched = cell_decodes(spec, work, cfg, data_info, doc_info, c, rescore, directory="looping")
        if searched:
            looping["decodes"] = searched["decodes"]
        if looping:
            c["looping"] = looping
    return {"settings": doc_info["settings"], "documents": doc_info["documents"], "floors": doc_info["floors"]}


def order_key(c):
    key = key_of(c)
    return (REGIMES.index(key[0]), POSITIONS.index(key[1]), key[2:], c["seed"], c.get("base_seed", c["seed"]))


def lines_for(spec, cells, summary, groups):
    """The results.md section of the document evaluation set."""
    decoded = sorted((c for c in cells if c.get("decodes")), key=order_key)
    if not decoded or summary is None:
        return []
    name = summary["settings"]["name"]
    modes = [m for m in MODES if any(m in c["decodes"] for c in decoded)]
    docs = summary["documents"]
    out = [f"**Document evaluation set** ({len(docs)} documents of `{summary['settings']['split']}`, "
           f"{sum(d['sentences'] for d in docs)} sentences, `<s>` between them on both sides): per mode, sentence-aligned "
           f"ChrF++ of all languages (each output cut at its separators, or again by minimum edit distance where its "
           f"sentence count is not the reference's; NFKC on both sides), then whole-document ChrF++ in brackets, "
           f"then the paired bootstrap 95% interval of aligned ChrF++ minus `{BASELINE}`'s (documents drawn whole). "
           "Length caps: per document (`aligned`, `window`, `split`: per sentence), `whole`'s per batch.", ""]
    out += ["| seed | regime | positions | " + " | ".join(modes) + " |", "|" + "---|" * (3 + len(modes))]
    for c in decoded:
        def entry(mode):
            e = c["decodes"].get(mode, {}).get("scores", {}).get(name, {}).get("all")
            if e is None or "aligned_chrf++" not in e:
                return "–"
            ci = e.get("ci95_vs_split")
            return f"{e['aligned_chrf++']:.1f} ({e['chrf++']:.1f})" + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")
        out.append("| " + " | ".join([seed_label(c), c["regime"], ":".join(key_of(c)[1:])] + [entry(m) for m in modes])
                   + " |")
    out += ["", f"Per group ({' / '.join(groups)}), aligned ChrF++ of each mode, seed by seed:", ""]
    out += ["| seed | regime | positions | " + " | ".join(modes) + " |", "|" + "---|" * (3 + len(modes))]
    for c in decoded:
        def by_group(mode):
            scores = c["decodes"].get(mode, {}).get("scores", {}).get(name)
            if not scores:
                return "–"
            return " / ".join(f"{scores[g]['aligned_chrf++']:.1f}" if "aligned_chrf++" in scores.get(g, {}) else "–"
                              for g in groups)
        out.append("| " + " | ".join([seed_label(c), c["regime"], ":".join(key_of(c)[1:])] + [by_group(m) for m in modes])
                   + " |")
    out += ["", "Why output runs long, per mode (every seed): share of documents at their length cap (`split`, "
            "`window`: a sentence of it at its own) / share of repeated word 4-grams / share of documents with the "
            "source's number of sentences (references repeat "
            + ", ".join(sorted({f"{c['decodes'][m]['run_on'][name]['repeated_4grams_ref']:.3f}" for c in decoded
                                for m in c["decodes"]})) + ").", ""]
    out += ["| seed | regime | positions | " + " | ".join(modes) + " |", "|" + "---|" * (3 + len(modes))]
    for c in decoded:
        def run_on(mode):
            r = c["decodes"].get(mode, {}).get("run_on", {}).get(name)
            if r is None:
                return "–"
            return f"{r['at_cap']:.2f} / {r['repeated_4grams']:.2f} / {r['sentence_count_right']:.2f}"
        out.append("| " + " | ".join([seed_label(c), c["regime"], ":".join(key_of(c)[1:])] + [run_on(m) for m in modes])
                   + " |")
    out += [""] + seed_lines(decoded, modes, name) + context_lines(decoded) + floor_lines(summary["floors"].get(name))
    out += looping_lines(cells, name)
    return out


def seed_lines(decoded, modes, name):
    """Aligned ChrF++ (all languages) as mean ± standard deviation over the runs of a cell."""
    runs = {}
    for c in decoded:
        runs.setdefault(key_of(c), []).append(c)
    multi = {k: v for k, v in runs.items() if len(v) > 1}
    if not multi:
        return []
    out = ["Over the runs of a cell (fine-tuning seeds; a later seed's own base, or the first seed's where named): "
           "aligned ChrF++, all languages, mean ± standard deviation (runs).", "",
           "| regime | positions | " + " | ".join(modes) + " |", "|" + "---|" * (2 + len(modes))]
    for key, cs in multi.items():
        def cell(mode):
            vals = [c["decodes"][mode]["scores"][name]["all"]["aligned_chrf++"] for c in cs if mode in c["decodes"]]
            if len(vals) < 2:
                return "–" if not vals else f"{vals[0]:.1f} (1)"
            return f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f} ({len(vals)})"
        out.append("| " + " | ".join([key[0], ":".join(key[1:])] + [cell(m) for m in modes]) + " |")
    return out + [""]


def context_lines(decoded):
    with_context = [c for c in decoded if c.get("context")]
    if not with_context:
        return []
    modes = [m for m in MODES if any(m in c["context"] for c in with_context)]
    out = ["Context words translated right (the toy corpus's pronoun `it`, whose form only the previous sentence "
           "tells), share of those in the references:", "",
           "| seed | regime | positions | " + " | ".join(modes) + " |", "|" + "---|" * (3 + len(modes))]
    for c in with_context:
        out.append("| " + " | ".join([seed_label(c), c["regime"], ":".join(key_of(c)[1:])] + [
            f"{c['context'][m]['share']:.2f}" if m in c["context"] and c["context"][m]["share"] is not None else "–"
            for m in modes]) + " |")
    return out + [""]


def floor_lines(floors):
    """What the references alone score (``data.reference_floors``: all documents, each language)."""
    if not floors or "all" not in floors:
        return []
    names = list(floors["all"])
    out = ["What the references alone score as whole documents (`fairseq_relpos.floors`; whole-document ChrF++: "
           "the bar any whole-document figure above has to clear):", "",
           "| documents | " + " | ".join(names) + " |", "|" + "---|" * (1 + len(names))]
    for part, values in floors.items():
        out.append("| " + " | ".join([part] + [f"{values[n]:.1f}" if values[n] is not None else "–" for n in names])
                   + " |")
    return out + [""]


def looping_lines(cells, name):
    looped = sorted((c for c in cells if c.get("looping")), key=order_key)
    if not looped:
        return []
    out = ["**Why the models loop** (`--looping`): the reference's length-normalised log-probability against the "
           "model's own `whole` output (more references scoring higher = search errors; fewer = model errors), the "
           "end symbol's median rank at the true end (and how often it ranks first), and the whole document searched "
           "otherwise: aligned ChrF++ (whole-document) / at cap / repeated 4-grams.", ""]
    searches = sorted({s for c in looped for s in c["looping"].get("decodes", {})})
    out += ["| seed | regime | positions | search errors | model errors | end rank (median; first) | "
            + " | ".join(searches) + " |", "|" + "---|" * (6 + len(searches))]
    for c in looped:
        d = c["looping"].get("diagnosis", {}).get("summary")
        row = [seed_label(c), c["regime"], ":".join(key_of(c)[1:])]
        row += ([f"{d['search_errors']} of {d['documents']}", f"{d['model_errors']} of {d['documents']}",
                 f"{d['end_rank_median']:g}; {d['end_rank_1']}"] if d else ["–", "–", "–"])
        for s in searches:
            e = c["looping"].get("decodes", {}).get(s)
            if e is None:
                row.append("–")
                continue
            a, r = e["scores"][name]["all"], e["run_on"][name]
            row.append(f"{a['aligned_chrf++']:.1f} ({a['chrf++']:.1f}) / {r['at_cap']:.2f} / {r['repeated_4grams']:.2f}")
        out.append("| " + " | ".join(row) + " |")
    return out + [""]
