"""The grid: cells in order of importance, one cell (fine-tune or switch, decode, score, cache),
and the command line of the thin per-corpus scripts."""
import argparse
import dataclasses
import json
import shutil
import sys
import time
from collections import namedtuple
from pathlib import Path

from .ct2_check import check_cell, checkable
from .data import prepare_data, variant_ft_data
from .decode import base_curve, decode_and_score
from .doc_decode import checkpoint_of, decode_mode, repetition_available
from .doc_eval import eval_sentences, prepare_doc_eval
from .doc_scores import BASELINE
from .looping import diagnose
from .report import base_report, report
from .runner import Lock, cell_dir, cell_name, key_of, log, parse_cell, plugin_fingerprint, threads, wait_for, write_atomic
from .settings import (LOOPING_DECODES, MODES, OPTIM, PLAIN_MODES, POSITIONS, REGIMES, SEP_VARIANTS, changes_training,
                       ft_data_key, looping_variants)

SEP_DATA = SEP_VARIANTS["sep"]
LOOPING_MODES = ("split", "whole", "aligned")  # the looping variants' decodes
STAGE_SETTINGS = ("doc_eval", "looping")  # settings of stages that check their own (added to work dirs later)
from .train import base_updates_of, finetune, train_base


def run_cell(spec, work, cfg, data_info, seed, cell, threads, base_info, base_seed=None):
    """A cell (fine-tuned with fairseq's ``--seed seed`` from the base of ``base_seed``, default
    the same seed), decoded on the evaluation set and scored; cached in its ``cell.json``."""
    directory = cell_dir(work, seed, cell, base_seed)
    meta = directory / "cell.json"
    if meta.is_file():
        return json.loads(meta.read_text())
    lock = Lock(work, directory.relative_to(work).as_posix().replace("/", "-"))
    if not lock.acquire():
        log(f"seed {seed} {cell_name(cell)}: another runner is on it, skipped here")
        return None
    try:
        if meta.is_file():  # finished by another runner meanwhile
            return json.loads(meta.read_text())
        return _run_cell(spec, work, cfg, data_info, seed, cell, threads, base_info, directory, meta, base_seed)
    finally:
        lock.release()


def _run_cell(spec, work, cfg, data_info, seed, cell, threads, base_info, directory, meta, base_seed=None):
    regime, positions, variant = (cell + (None,))[:3]
    decode_only = variant is not None and not changes_training(spec.variants[variant])
    if decode_only:  # a decoding option: the plain cell's checkpoint, decoded again
        source = run_cell(spec, work, cfg, data_info, seed, cell[:2], threads, base_info, base_seed)
        if source is None:
            raise RuntimeError(f"{cell_name(cell[:2])} is being run by another runner; retry later")
    if directory.exists():
        shutil.rmtree(directory)  # an unfinished cell starts again from scratch
    directory.mkdir(parents=True)
    log(f"seed {seed} {cell_name(cell):22s} start")
    plugin = plugin_fingerprint()
    gen_extra = spec.variants[variant].get("gen", ()) if variant else ()
    ft_docs = None
    if regime == "none" and positions == "sinusoidal":  # the base itself
        train = {"params_total": base_info["params_total"], "params_trained": 0, "wall_seconds": 0.0,
                 "train_loop_seconds": 0.0, "updates": 0, "threads": threads}
        ckpt = work / f"seed{seed}" / "base" / "checkpoint_best.pt"
    elif decode_only:
        train = dict(source["train"], reused_from=cell_name(cell[:2]))
        ckpt = cell_dir(work, seed, cell[:2], base_seed) / "checkpoint_last.pt"
    else:
        ft = spec.variants[variant] if variant else {}
        data_key = ft_data_key(variant, ft)
        if data_key is not None and data_key not in data_info["ft_variants"]:  # built on first use
            ft_docs = variant_ft_data(spec, work, data_info, data_key, ft if data_key == variant else SEP_DATA, threads)
        train = finetune(spec, work, cfg, seed, cell, directory, threads, base_seed)
        ckpt = directory / "checkpoint_last.pt"
    # a model fine-tuned on separated documents reads its documents separated: the document
    # evaluation set's modes decode those; here only the sentences
    only_sentences = bool(variant and "separator" in spec.variants[variant])
    result = decode_and_score(spec, work, cfg, data_info, ckpt, directory, threads, gen_extra, only_sentences)
    out = {"seed": seed, "regime": regime, "positions": positions, "variant": variant, "train": train, **result,
           "plugin": plugin}
    if base_seed is not None and base_seed != seed:
        out["base_seed"] = base_seed
    if ft_docs is not None:  # a document-share cell: the documents it fine-tuned on
        out["ft_docs"] = ft_docs
    if regime != "none" and train["params_total"]:
        out["trainable_share"] = round(train["params_trained"] / train["params_total"], 4)
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):  # keep the work dir small
        if (regime == "none" or name == "checkpoint_best.pt") and (directory / name).exists():
            (directory / name).unlink()
    write_atomic(meta, json.dumps(out, indent=1) + "\n")
    last = list(result["scores"])[-1]
    groups = " ".join(f"{g} {result['scores'][last][g]['chrf++']:.1f}" for g in spec.groups
                      if g in result["scores"][last])
    log(f"seed {seed} {cell_name(cell):22s} done: sent {result['scores']['sent']['all']['chrf++']:.1f}, "
        f"{last} {groups} (length ratio {result['scores'][last]['all']['length_ratio']:.2f}); "
        f"train {train['wall_seconds']:.0f}s, decode {result['decode_seconds']:.0f}s")
    return out


def base_cap(work, seeds, seed):
    """The most updates a seed's base may train: a later seed's no more than the first seed's
    finished base did (one stopped by --base-hours), so that the seeds differ in their seed only;
    None for the first seed or while its base is unfinished."""
    return base_updates_of(work, seeds[0]) if seed != seeds[0] else None


def jobs_in_order(spec, args):
    """(seed, cell) in order of importance, so that a time-out loses the least informative:
    the first seed's base and full fine-tuning, the variant cells, the extra seeds' headline
    cells, then the rest, the switch alone last."""
    extra = {parse_cell(c) for c in args.extra_seed_cells}
    first, rest = args.seeds[0], args.seeds[1:]
    grid = [(r, p) for r in args.regimes for p in args.positions]
    priority = [("none", "sinusoidal")] + [c for c in grid if c[0] == "full"]
    jobs = [(first, c) for c in priority]
    jobs += [(first, parse_cell(c)) for c in args.variant_cells]
    for seed in rest:
        chosen = grid if args.all_cells else [c for c in grid if c in extra]
        jobs += [(seed, c) for c in [("none", "sinusoidal")] + chosen]
    jobs += [(first, c) for c in grid if c not in priority and c[0] != "none"]
    jobs += [(first, c) for c in grid if c not in priority and c[0] == "none"]
    return list(dict.fromkeys(jobs))


Job = namedtuple("Job", "seed cell base task")  # base: the base's seed; task: None (the cell), "mode:M",
#                                                  "loop:L" (a looping decode) or "diagnose"


def decodable(spec, cell):
    """Whether a cell keeps a checkpoint of its own to decode in the modes: the base (the switch
    alone keeps none) and every fine-tuned cell but a decoding variant."""
    if cell[0] == "none":
        return cell[1] == "sinusoidal"
    return len(cell) < 3 or changes_training(spec.variants[cell[2]])


def cell_modes(spec, cell, modes, repetition):
    """The modes a cell is decoded in: all of ``modes`` for a cell fine-tuned with separators,
    ``PLAIN_MODES`` for the others (split first: every comparison is against it); a mode that
    needs the repetition controls only where this checkout has them."""
    sep = len(cell) == 3 and "separator" in spec.variants[cell[2]]
    chosen = [m for m in modes if (sep or m in PLAIN_MODES) and (repetition or not MODES[m].get("repetition"))]
    return sorted(chosen, key=lambda m: m != BASELINE)


def study_jobs(spec, args, cfg, repetition):
    """Every job in order of importance (issue 26's order): the grid's cells (:func:`jobs_in_order`),
    the split-and-join baseline of every decodable one on the document evaluation set; the
    separator cells (``--sep-cells``), each with its modes, the headline ones (``--sep-seed-cells``)
    also for the other seeds (their own bases) and ``--ft-seeds`` (the first seed's base); the
    grid's cells in their other modes; with ``--looping``, the looping experiments."""
    first = args.seeds[0]
    grid = [Job(s, c, s, None) for s, c in jobs_in_order(spec, args)]
    if spec.write_separated is None:  # no document evaluation set for this corpus
        return grid
    decodes = [j for j in grid if decodable(spec, j.cell)]
    jobs = list(grid)
    if BASELINE in args.modes:
        jobs += [j._replace(task=f"mode:{BASELINE}") for j in decodes]
    seeded = {parse_cell(c) for c in args.sep_seed_cells}
    for cell in map(parse_cell, args.sep_cells):
        runs = [(first, first)]
        if cell in seeded:
            runs += [(s, s) for s in args.seeds[1:]] + [(k, first) for k in args.ft_seeds]
        for seed, base in runs:
            jobs.append(Job(seed, cell, base, None))
            jobs += [Job(seed, cell, base, f"mode:{m}") for m in cell_modes(spec, cell, args.modes, repetition)]
    for j in decodes:
        jobs += [j._replace(task=f"mode:{m}") for m in cell_modes(spec, j.cell, args.modes, repetition) if m != BASELINE]
    if args.looping:
        for cell in map(parse_cell, args.looping_cells):
            jobs += [Job(first, cell, first, None), Job(first, cell, first, "diagnose")]
            jobs += [Job(first, cell, first, f"loop:{name}") for name, d in LOOPING_DECODES.items()
                     if repetition or not d.get("repetition")]
        for variant in args.looping_variants:
            cell = ("full", "rope", variant)
            jobs.append(Job(first, cell, first, None))
            jobs += [Job(first, cell, first, f"mode:{m}") for m in cell_modes(spec, cell, args.modes, repetition)
                     if m in LOOPING_MODES]
    return list(dict.fromkeys(jobs))


def main(spec, argv=None):
    p = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model and budgets: a smoke test of every step")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="seeds (default 1 2)")
    p.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    p.add_argument("--positions", nargs="+", default=list(spec.positions), choices=POSITIONS)
    p.add_argument("--extra-seed-cells", nargs="+", default=list(spec.extra_seed_cells),
                   metavar="REGIME:POSITIONS", help="cells run for the seeds after the first "
                   f"(default: {' '.join(spec.extra_seed_cells)})")
    p.add_argument("--variant-cells", nargs="*", default=list(spec.variant_cells), metavar="REGIME:POSITIONS:VARIANT",
                   help=f"variant cells of the first seed (variants: {', '.join(spec.variants) or 'none'}; "
                        f"default: {' '.join(spec.variant_cells) or 'none'})")
    p.add_argument("--all-cells", action="store_true", help="run the whole grid for every seed")
    p.add_argument("--workdir", type=Path, help=f"where data, checkpoints and logs go (default {spec.here}/work[-quick])")
    p.add_argument("--outdir", type=Path, help="where results.json/.md and plots go (default: the script's "
                   "directory for the full run, the work directory for --quick)")
    p.add_argument("--threads", default="auto", help="torch threads per fairseq process: a number, or auto "
                   "(2 when the 1-minute load average is under 2.5, else 1; the default)")
    p.add_argument("--doc-budget", type=int, default=spec.doc_budget, help="most tokens of a fine-tuning document")
    p.add_argument("--doc-min-budget", type=int, default=spec.doc_min_budget, help="least budget drawn for a document")
    p.add_argument("--corpus-seed", type=int, default=1, help="corpus seed (default 1)")
    p.add_argument("--base-updates", type=int, help="override the base training updates")
    p.add_argument("--ft-updates", type=int, help="override the fine-tuning updates")
    p.add_argument("--reverse", action="store_true", help="work through the cells from the last: start a "
                   "second runner with this on the same work directory to use a second free core "
                   "(cells are locked, so none runs twice)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from cached cells")
    p.add_argument("--rescore", action="store_true", help="only rebuild the report, every cell's scores made "
                   "again from its cached outputs (NFKC on both sides; documents also scored sentence by sentence, "
                   "cut again by minimum edit distance where an output has no separators)")
    p.add_argument("--modes", nargs="*", default=list(spec.modes), choices=list(MODES), metavar="MODE",
                   help=f"decoding modes of the document evaluation set ({' '.join(MODES)}; models fine-tuned "
                        f"without separators: {' '.join(PLAIN_MODES)} only; default: {' '.join(spec.modes) or 'none'})")
    p.add_argument("--sep-cells", nargs="*", default=list(spec.sep_cells), metavar="REGIME:POSITIONS:VARIANT",
                   help=f"cells fine-tuned on separated documents (variants: {', '.join(SEP_VARIANTS)}; "
                        f"default: {' '.join(spec.sep_cells)})")
    p.add_argument("--sep-seed-cells", nargs="*", default=list(spec.sep_seed_cells), metavar="REGIME:POSITIONS:VARIANT",
                   help="separator cells also run for the later --seeds and every --ft-seeds "
                        f"(default: {' '.join(spec.sep_seed_cells)})")
    p.add_argument("--ft-seeds", nargs="*", type=int, default=[3], metavar="SEED",
                   help="further fine-tuning seeds of --sep-seed-cells on the first seed's base (default 3)")
    p.add_argument("--looping", action="store_true", help="also the looping experiments (issue 26 item 5): "
                   "reference against own-output log-probability, the end symbol at the true end, other searches "
                   "for --looping-cells, and fine-tuning variants of full RoPE sep")
    p.add_argument("--looping-cells", nargs="*", default=["full:rope", "full:rope:sep"], metavar="CELL",
                   help="cells of the first seed the looping diagnosis and searches run on (default full:rope full:rope:sep)")
    p.add_argument("--looping-variants", nargs="*", metavar="VARIANT",
                   help="the looping fine-tuning variants of full RoPE to run (default all: more updates, no label "
                        "smoothing, earlier base checkpoints, as the settings' looping entry counts them)")
    p.add_argument("--ct2", action="store_true", help="after the cells, decode the fine-tuned RoPE cells again "
                   "through CTranslate2 (needs the ct2 extra) and compare them in the report")
    p.add_argument("--base-only", action="store_true", help="only the data, the bases and their learning curves")
    p.add_argument("--base-hours", type=float, help="stop every base's training after this many hours in all "
                   "(fairseq's --stop-time-hours; a re-run resumes it only if its train.json is removed)")
    if spec.add_arguments:
        spec.add_arguments(p)
    args = p.parse_args(argv)
    for c in args.variant_cells:
        cell = parse_cell(c)
        if len(cell) != 3 or cell[0] not in REGIMES or cell[1] not in POSITIONS or cell[2] not in spec.variants:
            p.error(f"--variant-cells: {c!r} is not REGIME:POSITIONS:VARIANT with a variant in {list(spec.variants)}")
    for option in ("sep_cells", "sep_seed_cells"):
        for c in getattr(args, option):
            cell = parse_cell(c)
            if len(cell) != 3 or cell[0] not in REGIMES[1:] or cell[1] not in POSITIONS or cell[2] not in SEP_VARIANTS \
                    or cell[0] not in SEP_VARIANTS[cell[2]].get("regimes", REGIMES):
                p.error(f"--{option.replace('_', '-')}: {c!r} is not REGIME:POSITIONS:VARIANT with a variant in "
                        f"{list(SEP_VARIANTS)} (sep-scale2: minlora only)")
    for c in args.looping_cells:
        if parse_cell(c)[0] not in REGIMES[1:] or len(parse_cell(c)) not in (2, 3):
            p.error(f"--looping-cells: {c!r} is not a fine-tuned REGIME:POSITIONS[:VARIANT]")
    loop_names = list(looping_variants(spec.settings["quick" if args.quick else "full"]))
    if args.looping_variants is None:
        args.looping_variants = loop_names
    elif set(args.looping_variants) - set(loop_names):
        p.error(f"--looping-variants: {sorted(set(args.looping_variants) - set(loop_names))} are not among {loop_names}")

    cfg = dict(spec.settings["quick" if args.quick else "full"])
    if args.base_updates:
        cfg["base_updates"] = args.base_updates
    if args.ft_updates:
        cfg["ft_updates"] = args.ft_updates
    spec = dataclasses.replace(spec, variants={**spec.variants, **SEP_VARIANTS, **looping_variants(cfg)})
    work = args.workdir or spec.here / ("work-quick" if args.quick else "work")
    outdir = args.outdir or (work if args.quick else spec.here)
    work.mkdir(parents=True, exist_ok=True)
    settings_file = work / "settings.json"
    fingerprint = json.loads(json.dumps({k: v for k, v in cfg.items() if k not in STAGE_SETTINGS}))
    fingerprint.update(doc_budget=args.doc_budget, doc_min_budget=args.doc_min_budget,
                       corpus_seed=args.corpus_seed, optim=OPTIM)
    if spec.fingerprint:
        fingerprint.update(spec.fingerprint(args))
    if settings_file.is_file() and json.loads(settings_file.read_text()) != fingerprint:
        sys.exit(f"{work} holds results of other settings ({settings_file}); use another --workdir or delete it")
    settings_file.write_text(json.dumps(fingerprint, indent=1) + "\n")

    start = time.time()
    data_info = wait_for(work, "data", work / "data" / "data.json",
                         lambda: prepare_data(spec, work, cfg, args, threads(args)))
    if spec.write_separated is not None:  # a work directory prepared before the sentences were kept
        data_info = eval_sentences(spec, work, cfg, args, data_info)
    repetition = repetition_available()
    if not repetition:
        log("this checkout has no repetition controls (fairseq_relpos/generation/repetition.py): the modes and "
            "looping searches that need them are left out")
    jobs = study_jobs(spec, args, cfg, repetition)
    log("jobs: " + ", ".join(job_name(j) for j in jobs))
    if args.reverse:  # a second runner (see --reverse) starts from the other end of the list
        jobs = jobs[::-1]
    cell_runs = list(dict.fromkeys((j.seed, j.cell, j.base) for j in jobs))

    def collect():
        found = []
        for seed, cell, base_seed in sorted(cell_runs, key=lambda r: (r[0], r[2], r[1])):
            meta = cell_dir(work, seed, cell, base_seed) / "cell.json"
            if meta.is_file():
                found.append(json.loads(meta.read_text()))
        return found

    bases, failed = {}, []
    doc_info = None

    def base(seed, hours=None):
        return train_base(spec, work, cfg, seed, threads(args), hours, base_cap(work, args.seeds, seed))
    if args.base_only:
        curves = {}
        for seed in args.seeds:
            bases[seed] = base(seed, args.base_hours)
            log(f"seed {seed} base: {bases[seed]['updates']} updates, valid "
                + ", ".join(f"{v['updates']}:{v['loss']:.2f}" for v in bases[seed]["valid"]))
            curves[seed] = base_curve(spec, work, cfg, data_info, seed, threads(args))
        print(base_report(spec, bases, curves, data_info, outdir))
        return
    only_report = args.report_only or args.rescore
    if args.reverse and not only_report:  # the second runner trains the other seeds' bases meanwhile
        for seed in reversed(args.seeds):
            bases[seed] = base(seed, args.base_hours)
    for job in ([] if only_report else jobs):
        if job.base not in bases:
            bases[job.base] = base(job.base, args.base_hours)
            log(f"seed {job.base} base: {bases[job.base]['wall_seconds']:.0f}s, {bases[job.base]['params_total']} parameters")
        try:
            c = run_cell(spec, work, cfg, data_info, job.seed, job.cell, threads(args), bases[job.base], job.base)
            if c is None or job.task is None:
                if c is not None:
                    report(spec, work, collect(), data_info, cfg, args, outdir, time.time() - start)
                continue
            if checkpoint_of(work, c) is None:
                log(f"{job_name(job)}: the cell kept no checkpoint, not decoded")
                continue
            doc_info = doc_info or prepare_doc_eval(spec, work, cfg, args, threads(args))
            kind, _, name = job.task.partition(":")
            if kind == "mode":
                decode_mode(spec, work, cfg, doc_info, c, name, threads(args))
            elif kind == "loop":
                decode_mode(spec, work, cfg, doc_info, c, name, threads(args), LOOPING_DECODES[name]["args"], "looping")
            else:
                diagnose(spec, work, cfg, doc_info, c, threads(args))
        except RuntimeError as err:  # a failed job is reported, the others still run
            log(f"{job_name(job)} FAILED: {err}")
            failed.append(job_name(job))
            continue
        report(spec, work, collect(), data_info, cfg, args, outdir, time.time() - start)  # partial results as they come
    cells = collect()
    for c in (cells if args.ct2 and not only_report else []):
        if checkable(work, c):
            try:
                check_cell(spec, work, cfg, data_info, c, threads(args))
            except RuntimeError as err:
                log(f"seed {c['seed']} {cell_name(key_of(c))} CTranslate2 check FAILED: {err}")
                failed.append(f"seed {c['seed']} {cell_name(key_of(c))} (CTranslate2)")
    missing = [job_name(Job(s, c, b, None)) for s, c, b in cell_runs
               if not (cell_dir(work, s, c, b) / "cell.json").is_file()]
    if failed:
        log(f"FAILED (see their train.log/generate.txt or decodes/): {', '.join(failed)}")
    if missing:
        log(f"cells not finished: {', '.join(missing)}")
    if not cells:
        sys.exit("no finished cells")
    text = report(spec, work, cells, data_info, cfg, args, outdir, time.time() - start)
    print(text)
    log(f"done in {time.time() - start:.0f}s; results in {outdir}")


def job_name(job):
    base = f"(base s{job.base})" if job.base != job.seed else ""
    return f"s{job.seed}{base}:{cell_name(job.cell)}" + (f"[{job.task}]" if job.task else "")
