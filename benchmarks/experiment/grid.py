"""The grid: cells in order of importance, one cell (fine-tune or switch, decode, score, cache),
and the command line of the thin per-corpus scripts."""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from .ct2_check import check_cell, checkable
from .data import prepare_data, share_ft_data
from .decode import base_curve, decode_and_score
from .report import base_report, report
from .runner import Lock, cell_dir, cell_name, key_of, log, parse_cell, plugin_fingerprint, threads, wait_for, write_atomic
from .settings import OPTIM, POSITIONS, REGIMES, changes_training
from .train import base_updates_of, finetune, train_base


def run_cell(spec, work, cfg, data_info, seed, cell, threads, base_info):
    directory = cell_dir(work, seed, cell)
    meta = directory / "cell.json"
    if meta.is_file():
        return json.loads(meta.read_text())
    lock = Lock(work, f"seed{seed}-{cell_name(cell)}")
    if not lock.acquire():
        log(f"seed {seed} {cell_name(cell)}: another runner is on it, skipped here")
        return None
    try:
        if meta.is_file():  # finished by another runner meanwhile
            return json.loads(meta.read_text())
        return _run_cell(spec, work, cfg, data_info, seed, cell, threads, base_info, directory, meta)
    finally:
        lock.release()


def _run_cell(spec, work, cfg, data_info, seed, cell, threads, base_info, directory, meta):
    regime, positions, variant = (cell + (None,))[:3]
    decode_only = variant is not None and not changes_training(spec.variants[variant])
    if decode_only:  # a decoding option: the plain cell's checkpoint, decoded again
        source = run_cell(spec, work, cfg, data_info, seed, cell[:2], threads, base_info)
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
        ckpt = cell_dir(work, seed, cell[:2]) / "checkpoint_last.pt"
    else:
        share = spec.variants[variant].get("doc_share") if variant else None
        if share is not None:
            ft_docs = share_ft_data(work, data_info, variant, share, threads)
        train = finetune(spec, work, cfg, seed, cell, directory, threads)
        ckpt = directory / "checkpoint_last.pt"
    result = decode_and_score(spec, work, cfg, data_info, ckpt, directory, threads, gen_extra)
    out = {"seed": seed, "regime": regime, "positions": positions, "variant": variant, "train": train, **result,
           "plugin": plugin}
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
    p.add_argument("--ct2", action="store_true", help="after the cells, decode the fine-tuned RoPE cells again "
                   "through CTranslate2 (needs the ct2 extra) and compare them in the report")
    p.add_argument("--base-only", action="store_true", help="only the data, the bases and their learning curves")
    p.add_argument("--base-hours", type=float, help="stop a base's training after this many hours in all "
                   "(fairseq's --stop-time-hours; a re-run resumes it only if its train.json is removed)")
    if spec.add_arguments:
        spec.add_arguments(p)
    args = p.parse_args(argv)
    for c in args.variant_cells:
        cell = parse_cell(c)
        if len(cell) != 3 or cell[0] not in REGIMES or cell[1] not in POSITIONS or cell[2] not in spec.variants:
            p.error(f"--variant-cells: {c!r} is not REGIME:POSITIONS:VARIANT with a variant in {list(spec.variants)}")

    cfg = dict(spec.settings["quick" if args.quick else "full"])
    if args.base_updates:
        cfg["base_updates"] = args.base_updates
    if args.ft_updates:
        cfg["ft_updates"] = args.ft_updates
    work = args.workdir or spec.here / ("work-quick" if args.quick else "work")
    outdir = args.outdir or (work if args.quick else spec.here)
    work.mkdir(parents=True, exist_ok=True)
    settings_file = work / "settings.json"
    fingerprint = json.loads(json.dumps(cfg))
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
    jobs = jobs_in_order(spec, args)
    log("jobs: " + ", ".join(f"s{s}:{cell_name(c)}" for s, c in jobs))
    if args.reverse:  # a second runner (see --reverse) starts from the other end of the list
        jobs = jobs[::-1]

    def collect():
        found = []
        for seed, cell in sorted(jobs):
            meta = cell_dir(work, seed, cell) / "cell.json"
            if meta.is_file():
                found.append(json.loads(meta.read_text()))
        return found

    bases, failed = {}, []

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
    if args.reverse and not args.report_only:  # the second runner trains the other seeds' bases meanwhile
        for seed in reversed(args.seeds):
            bases[seed] = base(seed)
    for seed, cell in ([] if args.report_only else jobs):
        if seed not in bases:
            bases[seed] = base(seed)
            log(f"seed {seed} base: {bases[seed]['wall_seconds']:.0f}s, {bases[seed]['params_total']} parameters")
        try:
            run_cell(spec, work, cfg, data_info, seed, cell, threads(args), bases[seed])
        except RuntimeError as err:  # a failed cell is reported, the others still run
            log(f"seed {seed} {cell_name(cell)} FAILED: {err}")
            failed.append(f"seed {seed} {cell_name(cell)}")
            continue
        report(spec, work, collect(), data_info, cfg, args, outdir, time.time() - start)  # partial results as they come
    cells = collect()
    for c in (cells if args.ct2 and not args.report_only else []):
        if checkable(work, c):
            try:
                check_cell(spec, work, cfg, data_info, c, threads(args))
            except RuntimeError as err:
                log(f"seed {c['seed']} {cell_name(key_of(c))} CTranslate2 check FAILED: {err}")
                failed.append(f"seed {c['seed']} {cell_name(key_of(c))} (CTranslate2)")
    missing = [f"s{s}:{cell_name(c)}" for s, c in jobs
               if not (cell_dir(work, s, c) / "cell.json").is_file()]
    if failed:
        log(f"FAILED cells (see their train.log/generate.txt): {', '.join(failed)}")
    if missing:
        log(f"cells not finished: {', '.join(missing)}")
    if not cells:
        sys.exit("no finished cells")
    text = report(spec, work, cells, data_info, cfg, args, outdir, time.time() - start)
    print(text)
    log(f"done in {time.time() - start:.0f}s; results in {outdir}")
