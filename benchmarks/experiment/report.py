"""``results.md`` and ``results.json``: the tables per metric, the run-on diagnosis and the seed
variance, from the finished cells."""
import json
import statistics
import sys
from pathlib import Path

from .ct2_check import RESULT as CT2_RESULT
from .decode import rescored, run_on
from .plots import plot, plot_base, plot_doc_shares
from .doc_report import attach, lines_for
from .runner import dir_of, key_of, seed_label, write_atomic
from .settings import OPTIM, POSITIONS, REGIMES


def fmt(values, spread=False):
    if not values:
        return "–"
    if len(values) == 1 or not spread:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def doc_share(spec, c):
    """The share of the fine-tuning documents a cell fine-tuned on: 1 for a plain fine-tuning
    cell, the variant's for a document-share cell (``DOC_SHARES``), None for any other."""
    if c["regime"] == "none":
        return None
    if not c.get("variant"):
        return 1.0
    return spec.variants[c["variant"]].get("doc_share")


def doc_share_sweeps(spec, cells, seed, data_info):
    """``{(regime, positions): [(share, documents, cell)]}`` of the given seed, sorted by share,
    for every fine-tuning cell that was also run on a cut share of the documents."""
    sweeps = {}
    for c in cells:
        share = doc_share(spec, c)
        if c["seed"] == seed and share is not None:
            docs = c["ft_docs"]["documents"] if "ft_docs" in c else data_info["ft_docs"]["documents"]
            sweeps.setdefault((c["regime"], c["positions"]), []).append((share, docs, c))
    return {k: sorted(v, key=lambda x: x[0]) for k, v in sweeps.items() if any(share < 1 for share, _, _ in v)}


def ct2_table(cells, splits):
    """The cells decoded again through CTranslate2 (``ct2_check``) beside the plugin's decoding."""
    checked = sorted((c for c in cells if c.get("ct2")), key=lambda c: (c["seed"], REGIMES.index(c["regime"]),
                                                                       c.get("variant") or ""))
    if not checked:
        return []
    lines = ["**Through CTranslate2** (`fairseq-relpos export`, the same beam, length cap and batches): ChrF++ "
             "for all languages, the plugin's generator / CTranslate2, and the share of outputs that are the same "
             f"text; the {splits[-1]} length ratio of each; decoding seconds of the whole evaluation set "
             "(process wall time, measured at different times on a shared machine: a rough ratio).", ""]
    head = ["seed", "regime", "positions"] + splits + [f"{splits[-1]} length ratio", "decode s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in checked:
        x = c["ct2"]
        lines.append("| " + " | ".join(
            [str(c["seed"]), c["regime"], ":".join(key_of(c)[1:])]
            + [f"{c['scores'][s]['all']['chrf++']:.1f} / {x['scores'][s]['all']['chrf++']:.1f} "
               f"({100 * x['identical_to_plugin'][s]:.0f}%)" for s in splits]
            + [f"{c['scores'][splits[-1]]['all']['length_ratio']:.2f} / {x['scores'][splits[-1]]['all']['length_ratio']:.2f}",
               f"{x['plugin_decode_seconds']:.0f} / {x['decode_seconds']:.0f}"]) + " |")
    return lines + [""]


def aligned_table(cells, order, first, splits, groups, slash):
    """Sentence-aligned ChrF++ of the document test sets (seed of ``first``): each output cut again
    against the reference sentences by minimum edit distance (the grid's outputs have no
    separators), beside the whole-document figure above."""
    out = [f"**Sentence-aligned ChrF++** ({slash}) of the document test sets: each output cut into the reference's "
           "sentences by minimum word edit distance (`fairseq_relpos.documents.resegment`), scored sentence by "
           "sentence; NFKC on both sides.", ""]
    out += ["| regime | positions | " + " | ".join(splits) + " |", "|" + "---|" * (2 + len(splits))]
    for key in order:
        c = first(key)
        if c:
            out.append("| " + " | ".join([key[0], ":".join(key[1:])] + [
                " / ".join(f"{c['scores'][s][g]['aligned_chrf++']:.1f}" if "aligned_chrf++" in c["scores"].get(s, {}).get(g, {})
                           else "–" for g in groups) for s in splits]) + " |")
    return out + [""]


def floors_table(floors, splits):
    """What the references alone score as whole documents, per document test set (all languages)."""
    shown = [s for s in splits if s in floors] or list(floors)
    if not shown:
        return []
    names = list(floors[shown[0]]["all"])
    out = ["**Floors**: whole-document ChrF++ of outputs made from the references alone (`fairseq_relpos.floors`: "
           "another document's reference of the same language cut or repeated to the length, the reference cut "
           "at a share of its length, its first 3% then one sentence looped to 1.2x), all languages; a "
           "whole-document figure above means little unless it clears them.", "",
           "| test set | " + " | ".join(names) + " |", "|" + "---|" * (1 + len(names))]
    for s in shown:
        values = floors[s]["all"]
        out.append("| " + " | ".join([s] + [f"{values[n]:.1f}" if values[n] is not None else "–" for n in names]) + " |")
    return out + [""]


def run_on_table(cells, splits, order):
    """Why output runs long, a row per cell of every seed: the share of outputs at the length
    cap, at their own source's cap where counted, and of repeated word 4-grams."""
    ran = [c for c in cells if c.get("run_on")]
    if not ran:
        return []
    own = any("at_own_cap" in r for c in ran for r in c["run_on"].values())
    ref = next(c for c in ran if all(s in c["run_on"] for s in splits)) if any(
        all(s in c["run_on"] for s in splits) for c in ran) else ran[0]
    lines = ["**Why output runs long** (every seed, all languages): share of hypotheses cut at the length cap "
             + ("they had (fairseq's cap is its batch's: `--max-len-a` x the batch's longest source + `--max-len-b`) / "
                "share that reached their own source's cap / " if own else
                "(no end of sentence before `--max-len-a`·source + `--max-len-b`, counted at 98% of the output's own "
                "source's cap, while fairseq caps a batch by its longest source) / ")
             + "share of repeated word 4-grams in the hypotheses (references: "
             + ", ".join(f"{s} {ref['run_on'][s]['repeated_4grams_ref']:.2f}" for s in splits if s in ref["run_on"])
             + ").", ""]
    lines += ["| seed | regime | positions | " + " | ".join(splits) + " |", "|" + "---|" * (3 + len(splits))]
    rank = {k: i for i, k in enumerate(order)}
    for c in sorted(ran, key=lambda c: (c["seed"], c.get("base_seed", c["seed"]), rank.get(key_of(c), len(rank)))):
        def cell(s):
            r = c["run_on"].get(s)
            if r is None:
                return "–"
            parts = [r["at_cap"]] + ([r.get("at_own_cap")] if own else []) + [r["repeated_4grams"]]
            return " / ".join("–" if x is None else f"{x:.2f}" for x in parts)
        lines.append("| " + " | ".join([seed_label(c), c["regime"], ":".join(key_of(c)[1:])]
                                       + [cell(s) for s in splits]) + " |")
    return lines + [""]


def report(spec, work, cells, data_info, cfg, args, outdir, wall_total):
    outdir.mkdir(parents=True, exist_ok=True)
    rescore = getattr(args, "rescore", False)
    for c in cells:
        if rescore:  # the cell's scores made again from its outputs (cell.json keeps those it was made with)
            c["scores"], c["signature"], c["bleu_signature"] = rescored(work, c, data_info)
        c["run_on"] = run_on(work, c, data_info)
        ct2 = dir_of(work, c) / CT2_RESULT
        if ct2.is_file():
            c["ct2"] = json.loads(ct2.read_text())
    splits = list(dict.fromkeys(s["split"] for s in data_info["segments"]))
    groups = [g for g in spec.groups if any(g in c["scores"][splits[0]] for c in cells)]
    members = {g: [lang for lang in data_info["languages"]
                   if data_info["groups"].get(lang) == g or (g == "unseen" and lang not in data_info["doc_languages"])]
               for g in groups}
    first_seed = args.seeds[0]
    by_key = {}
    for c in cells:
        by_key.setdefault(key_of(c), []).append(c)
    order = sorted(by_key, key=lambda k: (REGIMES.index(k[0]), POSITIONS.index(k[1]), k[2:]))
    ref = data_info["ref_tokens"]
    longest = data_info["train_sentence_max_tokens"]
    slash = " / ".join(groups)

    def first(key):
        c = [x for x in by_key[key] if x["seed"] == first_seed]
        return c[0] if c else None

    def row_values(c, split, metric, digits=1):
        scores = c["scores"].get(split, {})
        return " / ".join(f"{scores[g][metric]:.{digits}f}" if g in scores else "–" for g in groups)

    lines = [f"{spec.name}: seed {first_seed}, scores per language group ({slash}; "
             + "; ".join(f"{g}: {', '.join(members[g])}" for g in groups) + "). "
             f"Columns are test sets: `sent` = sentences; the others documents (mean reference length in "
             f"model tokens, and that as a multiple of the longest training sentence the base saw, "
             f"{longest} tokens). Variant cells: " + (", ".join(f"`{n}` = {v['about']}" for n, v in spec.variants.items()
                                                              if any(c.get("variant") == n for c in cells))
                                                    or "none") + ". A cell fine-tuned on separated documents "
             "is scored here on sentences only (its documents: the document evaluation set below). Document "
             "columns are whole-document ChrF++ (each document one segment): read them against the floors below.", "",
             f"ChrF++ signature: `{cells[0]['signature']}`; BLEU signature: `{cells[0].get('bleu_signature', '–')}`.", ""]

    def table(title, metric, digits, extra_cols):
        out = [title, ""]
        head = ["regime", "positions"] + [f"{s} ({ref[s]['mean']:.0f} tok, {ref[s]['mean'] / longest:.1f}x)"
                                         for s in splits] + [h for h, _ in extra_cols]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key in order:
            c = first(key)
            if c:
                out.append("| " + " | ".join([key[0], ":".join(key[1:])] + [row_values(c, s, metric, digits) for s in splits]
                                             + [f(c, key) for _, f in extra_cols]) + " |")
        return out + [""]

    def share(c, key):
        s = c.get("trainable_share")
        return "–" if s is None else f"{100 * s:.1f}%"

    def train_s(c, key):
        return "–" if key[0] == "none" or c["train"].get("reused_from") else f"{c['train']['wall_seconds']:.0f}"

    lines += table(f"**ChrF++** ({slash}); trainable share and fine-tuning wall time (fairseq-train process, "
                   f"{cfg['ft_updates']} updates) per cell.", "chrf++", 1, [("trainable", share), ("train s", train_s)])
    doc_splits = [s for s in splits if any("aligned_chrf++" in c["scores"].get(s, {}).get("all", {}) for c in cells)]
    if doc_splits:
        lines += aligned_table(cells, order, first, doc_splits, groups, slash)
    lines += floors_table(data_info.get("floors", {}), doc_splits)
    lines += table(f"**BLEU** ({slash}).", "bleu", 1, [])
    lines += table(f"**Hypothesis/reference length ratio** (whitespace tokens; {slash}): about 1/N for a model that "
                   f"translates only the first sentence of an N-sentence document, over 1 for one that runs on.",
                   "length_ratio", 2, [])
    lines += run_on_table(cells, splits, order)
    last = splits[-1]
    multi = [k for k in order if len({c["seed"] for c in by_key[k]}) > 1]
    if multi:
        seeds = sorted({c["seed"] for k in multi for c in by_key[k]})
        lines += [f"Seed variance (seeds {', '.join(map(str, seeds))}; each seed re-trains the base and "
                  f"fine-tunes, a seed with \"base N\" fine-tunes seed N's base): ChrF++ as mean ± standard "
                  f"deviation, and the per-seed values.", ""]
        head = ["regime", "positions", "sent all", f"{last} all"] + [f"{last} {g}" for g in groups] + [f"per seed ({last} all)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key in multi:
            cs = sorted(by_key[key], key=lambda c: c["seed"])

            def vals(split, group):
                return [c["scores"][split][group]["chrf++"] for c in cs if group in c["scores"].get(split, {})]
            lines.append("| " + " | ".join([key[0], ":".join(key[1:]), fmt(vals("sent", "all"), True), fmt(vals(last, "all"), True)]
                                           + [fmt(vals(last, g), True) for g in groups]
                                           + [", ".join(f"s{seed_label(c)}: {c['scores'][last]['all']['chrf++']:.1f}"
                                                        for c in cs if last in c["scores"]) or "–"]) + " |")
        lines.append("")
    sweeps = doc_share_sweeps(spec, cells, first_seed, data_info)
    if sweeps:
        lines += [f"**How little document data** (seed {first_seed}): the same {cfg['ft_updates']} updates on every "
                  f"training sentence plus a seeded draw of the fine-tuning documents (all = the plain cell); ChrF++, "
                  f"all languages per test set, then {last} per group.", ""]
        head = ["regime", "positions", "documents"] + [f"{s} all" for s in splits] + [f"{last} {g}" for g in groups]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for (regime, positions), rows in sweeps.items():
            for share, docs, c in rows:
                lines.append("| " + " | ".join([regime, positions, f"{docs:,} ({share:g})"]
                                               + [f"{c['scores'][s]['all']['chrf++']:.1f}" for s in splits]
                                               + [f"{c['scores'][last][g]['chrf++']:.1f}" if g in c["scores"][last] else "–"
                                                  for g in groups]) + " |")
        lines.append("")
    lines += ct2_table(cells, splits)
    doc_eval = attach(spec, work, cfg, data_info, cells, rescore)
    lines += lines_for(spec, cells, doc_eval, groups)
    text = "\n".join(lines) + "\n"
    write_atomic(outdir / "results.md", text)
    summary = {
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "settings": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}, "optim": OPTIM,
                     "doc_budget": args.doc_budget, "doc_min_budget": args.doc_min_budget,
                     "variants": spec.variants},
        "data": {k: v for k, v in data_info.items() if k != "segments"},
        **({"doc_eval": doc_eval} if doc_eval else {}),
        "wall_seconds_this_invocation": round(wall_total, 1),
        "cells": cells,
    }
    write_atomic(outdir / "results.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    plot(spec, [c for c in cells if all(s in c["scores"] for s in splits)], splits, groups, ref, data_info, outdir)
    if sweeps:
        plot_doc_shares(spec, sweeps, splits[-2:], groups, outdir)
    return text


def base_report(spec, bases, curves, data_info, outdir):
    """The bases' learning curves (``--base-only``): ``base.json``, ``base.md`` (validation loss and
    verse ChrF++ per language and group against updates) and ``plot_base.png``."""
    outdir.mkdir(parents=True, exist_ok=True)
    langs = data_info["languages"]
    cols = ["all", *[g for g in spec.groups if any(data_info["groups"][lang] == g for lang in langs)], *langs]
    lines = [f"{spec.name}: the sinusoidal bases' learning curves. Validation loss (label-smoothed, per "
             "target token, base 2) every validation; verse ChrF++ of the sentence test set (beam "
             f"{next((p['beam'] for c in curves.values() for p in c), '-')}) at the checkpoints scored. "
             "Groups: " + "; ".join(f"{g}: {', '.join(l for l in langs if data_info['groups'][l] == g)}"
                                 for g in dict.fromkeys(data_info["groups"][l] for l in langs)) + ".", ""]
    for seed, curve in curves.items():
        info = bases[seed]
        lines += [f"**Seed {seed}**: {info['updates']} updates ({info['train_loop_seconds']:.0f} s of training in all runs, "
                  f"{info['threads']} thread(s)), {info['params_total']:,} parameters.", "",
                  "| checkpoint | updates | valid loss | " + " | ".join(f"ChrF++ {c}" for c in cols) + " |",
                  "|" + "---|" * (3 + len(cols))]
        for p in curve:
            loss = f"{p['valid']['loss']:.3f}" if p.get("valid") else "–"
            lines.append(f"| {p['checkpoint']} | {p['updates']} | {loss} | "
                         + " | ".join(f"{p['scores'][c]['chrf++']:.1f}" if c in p["scores"] else "–" for c in cols) + " |")
        lines += ["", "Validation loss at every validation: "
                  + ", ".join(f"{v['updates']}: {v['loss']:.3f}" for v in info["valid"]) + ".", ""]
    write_atomic(outdir / "base.md", "\n".join(lines) + "\n")
    write_atomic(outdir / "base.json", json.dumps({"bases": bases, "curves": curves}, indent=1) + "\n")
    plot_base(spec, bases, curves, cols, outdir)
    return "\n".join(lines)
