#!/usr/bin/env python
"""The paper's experiment in miniature: does switching positions induce long-context ability?

    python benchmarks/length_generalization/run.py                # full grid, seeds 1 and 2
    python benchmarks/length_generalization/run.py --quick        # smoke test, a few minutes
    python benchmarks/length_generalization/run.py --seeds 1 2 3  # more seeds

Everything runs through fairseq's own command-line tools (fairseq-preprocess, fairseq-train,
fairseq-generate as ``python -m fairseq_cli.*``) with ``--user-dir fairseq_relpos``:

1. the shipped toy corpus (``fairseq_relpos.toydata``: eng_Toyl into four toy languages;
   document training data only for the *document languages* toya/toyb) is written, the
   document training data is joined into pseudo-documents with ``make-docs`` (budget
   ``--doc-budget`` tokens), and everything is binarised with the base's dictionaries;
2. a small sinusoidal base (stock ``--arch transformer``) is trained on sentences only;
3. the base is fine-tuned, every cell from the same base checkpoint in its own directory,
   under each regime (full fine-tuning; LoRA and minLoRA through ``--task translation_lora``
   when the plugin has it) with each position scheme (sinusoidal kept = stock
   ``transformer``; ``transformer_rope``, ``transformer_alibi``, ``transformer_nope``), on
   sentences of all four languages plus pseudo-documents of toya/toyb;
   regime ``none`` is the switch without fine-tuning (the base's weights in the new
   architecture, written by one fairseq-train update at learning rate 1e-9);
4. every model decodes the sentence test set and the document test sets of 2..32 sentences
   (up to ~20x the longest training sentence) in one fairseq-generate run
   (``--task translation_doc``, raised max positions and max-len-a/b so that nothing is
   truncated), and ChrF++ is scored with ``fairseq_relpos.evaluate`` per test set
   (length bucket) for all languages, the document languages (seen) and the others (unseen).

Results are cached per cell (``WORKDIR/seed{S}/{regime}-{positions}/cell.json``): a re-run
skips finished cells, so a crash or time-out loses at most the cell in progress. The
aggregate (``results.json``), a markdown table (``results.md``) and one plot per regime
(``plot_{regime}.png``) are written to ``--outdir`` (by default next to this script for the
full run, inside the work directory for ``--quick``). Extra seeds (after the first) re-train
the base and run only ``--extra-seed-cells`` (the headline cells) unless ``--all-cells``.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from fairseq_relpos.evaluate import evaluate, read_generate, read_lines  # noqa: E402
from fairseq_relpos.make_docs import make_documents  # noqa: E402
from fairseq_relpos.toydata import DOC_SENTENCES, write_toy_corpus  # noqa: E402

PLUGIN = str(REPO / "fairseq_relpos")
POSITIONS = ("sinusoidal", "rope", "alibi", "nope")
ARCH = {"sinusoidal": "transformer", "rope": "transformer_rope", "alibi": "transformer_alibi",
        "nope": "transformer_nope"}
REGIMES = ("none", "full", "lora", "minlora")
LORA_REGIMES = ("lora", "minlora")

# Sizes. "full" is sized for well under an hour on 2 shared CPU cores (see benchmarks/README.md).
SETTINGS = {
    "full": dict(layers=3, dim=128, ffn=256, heads=4, base_updates=500, ft_updates=150,
                 max_tokens=4096, beam=1, docs_per_split=32, test_sentences=200,
                 doc_splits=DOC_SENTENCES),
    "quick": dict(layers=2, dim=64, ffn=128, heads=4, base_updates=60, ft_updates=10,
                  max_tokens=2048, beam=1, docs_per_split=4, test_sentences=8,
                  doc_splits=(2, 32)),
}
OPTIM = {  # learning rates and warm-up per stage
    "base": dict(lr=3e-3, warmup=150),
    "full": dict(lr=1e-3, warmup=50),
    "lora": dict(lr=3e-3, warmup=50),
    "minlora": dict(lr=3e-3, warmup=50),
}
COMMON_TRAIN = ["--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
                "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
                "--dropout", "0.1", "--weight-decay", "0.0001", "--no-epoch-checkpoints",
                "--disable-validation", "--num-workers", "0", "--no-progress-bar", "--log-interval", "50",
                "--log-format", "simple", "--max-source-positions", "1024", "--max-target-positions", "1024"]
GEN_POSITIONS = 4096


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(tool, args, logfile, threads):
    """Run a fairseq CLI, output to ``logfile``; returns wall seconds. Raises on failure."""
    cmd = [sys.executable, "-m", f"fairseq_cli.{tool}", *map(str, args)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONWARNINGS="ignore")
    start = time.time()
    with open(logfile, "w") as out:
        out.write(" ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if proc.returncode != 0:
        tail = Path(logfile).read_text()[-3000:]
        raise RuntimeError(f"fairseq-{tool} failed ({proc.returncode}), log {logfile}:\n{tail}")
    return time.time() - start


class Lock:
    """An exclusive lock file holding our pid, so that two runners on one work directory (e.g.
    one per core once the machine is free) never work on the same cell; stale locks are taken over."""

    def __init__(self, work, name):
        (work / "locks").mkdir(exist_ok=True)
        self.path = work / "locks" / f"{name}.lock"

    def acquire(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text() or 0)
                    os.kill(pid, 0)
                    return False  # held by a live runner
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    self.path.unlink(missing_ok=True)  # stale
                    continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return True
        return False

    def release(self):
        self.path.unlink(missing_ok=True)


def plugin_fingerprint():
    """The plugin code a cell ran with: git HEAD and a hash of every plugin source file as it
    was on disk (the working tree may hold uncommitted changes)."""
    import hashlib
    digest = hashlib.sha256()
    for path in sorted((REPO / "fairseq_relpos").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True).stdout.strip() or None
    except OSError:
        head = None
    return {"git_head": head, "sources_sha256": digest.hexdigest()[:16]}


def write_atomic(path, text):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def threads(args):
    if args.threads != "auto":
        return int(args.threads)
    return 2 if os.getloadavg()[0] < 2.5 else 1


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def lora_available():
    """Whether the plugin registers --task translation_lora (being added in parallel)."""
    path = REPO / "fairseq_relpos" / "tasks" / "translation_lora.py"
    return path.is_file() and '"translation_lora"' in path.read_text()


# ---------------------------------------------------------------- data

def prepare_data(work, cfg, args, threads):
    """Toy corpus, pseudo-documents, the evaluation set and binarised data; cached."""
    data = work / "data"
    done = data / "data.json"
    if done.is_file():
        return json.loads(done.read_text())
    if data.exists():
        shutil.rmtree(data)
    raw = data / "raw"
    corpus = write_toy_corpus(raw / "corpus", seed=args.corpus_seed)
    # pseudo-documents of the document languages, of every length up to the budget
    docs = make_documents(*corpus.files("train-docs"), raw / "docs.src", raw / "docs.tgt", raw / "docs.lines",
                          budget=args.doc_budget, min_budget=args.doc_min_budget,
                          ids_path=corpus.root / "train-docs.ids", seed=args.corpus_seed)
    log(docs.report(args.doc_budget).splitlines()[0])
    # fine-tuning data: every sentence (all languages) plus the pseudo-documents
    for side in ("src", "tgt"):
        sents = read_lines(corpus.root / f"train.{side}")
        write_lines(raw / f"ft-train.{side}", sents + read_lines(raw / f"docs.{side}"))
    # one evaluation set: sentence test set, then each document test set; segments remembered
    segments, src_lines, tgt_lines = [], [], []
    splits = [("sent", "test")] + [(f"doc{n}", f"test-doc{n}") for n in cfg["doc_splits"]]
    for name, split in splits:
        src, tgt = (read_lines(p) for p in corpus.files(split))
        keep = list(range(len(src)))
        limit = cfg["test_sentences"] if name == "sent" else cfg["docs_per_split"]
        if limit is not None:  # quick: the first lines of every language
            per_lang = {}
            for i in keep:
                per_lang.setdefault(src[i].split()[1], []).append(i)
            keep = sorted(i for ids in per_lang.values() for i in ids[:max(1, limit // len(per_lang))])
        for i in keep:
            segments.append({"split": name, "lang": src[i].split()[1]})
            src_lines.append(src[i])
            tgt_lines.append(tgt[i])
    write_lines(raw / "eval.src", src_lines)
    write_lines(raw / "eval.tgt", tgt_lines)
    c = corpus.root
    run("preprocess", ["--source-lang", "src", "--target-lang", "tgt", "--trainpref", c / "train",
                       "--validpref", c / "valid", "--testpref", raw / "eval", "--destdir", data / "base-bin",
                       "--workers", "1"], data / "preprocess-base.log", threads)
    run("preprocess", ["--source-lang", "src", "--target-lang", "tgt", "--trainpref", raw / "ft-train",
                       "--validpref", c / "valid", "--srcdict", data / "base-bin" / "dict.src.txt",
                       "--tgtdict", data / "base-bin" / "dict.tgt.txt", "--destdir", data / "ft-bin",
                       "--workers", "1"], data / "preprocess-ft.log", threads)
    manifest = json.loads((c / "corpus.json").read_text())
    info = {
        "segments": segments,
        "doc_languages": list(corpus.doc_targets),
        "languages": list(corpus.targets),
        "train_sentence_max_tokens": max(manifest["splits"]["train"]["source_tokens"]["max"],
                                         manifest["splits"]["train"]["target_tokens"]["max"]),
        "ft_docs": {"documents": docs.documents_out, "max_tokens": docs.max_tokens,
                    "mean_tokens": round(docs.total_tokens / max(1, docs.documents_out), 1),
                    "budget": args.doc_budget, "min_budget": args.doc_min_budget},
        "ft_sentences": manifest["splits"]["train"]["lines"],
        "ref_tokens": {},
    }
    for seg, ref in zip(segments, tgt_lines):
        info["ref_tokens"].setdefault(seg["split"], []).append(len(ref.split()))
    info["ref_tokens"] = {k: {"mean": round(statistics.mean(v), 1), "max": max(v)}
                          for k, v in info["ref_tokens"].items()}
    done.write_text(json.dumps(info, indent=1) + "\n")
    return info


# ---------------------------------------------------------------- training

def shape_args(cfg):
    out = []
    for side in ("encoder", "decoder"):
        out += [f"--{side}-layers", cfg["layers"], f"--{side}-embed-dim", cfg["dim"],
                f"--{side}-ffn-embed-dim", cfg["ffn"], f"--{side}-attention-heads", cfg["heads"],
                f"--{side}-normalize-before"]
    return out + ["--share-decoder-input-output-embed"]


def parse_train_log(path):
    text = Path(path).read_text()
    m = re.search(r"num\. (?:shared )?model params: ([\d,]+) \(num\. trained: ([\d,]+)\)", text)
    total, trained = (int(x.replace(",", "")) for x in m.groups()) if m else (None, None)
    d = re.search(r"done training in ([\d.]+) seconds", text)
    losses = re.findall(r"\| train \|.*?\| loss ([\d.]+) \|", text)
    return {"params_total": total, "params_trained": trained,
            "train_loop_seconds": float(d.group(1)) if d else None,
            "final_train_loss": float(losses[-1]) if losses else None}


def train_base(work, cfg, seed, threads):
    save = work / f"seed{seed}" / "base"
    meta = save / "train.json"
    lock, held = Lock(work, f"seed{seed}-base"), False
    while not meta.is_file():
        if lock.acquire():
            held = True
            break
        time.sleep(10)  # another runner trains this base
    try:
        if meta.is_file():
            return json.loads(meta.read_text())
        return _train_base(work, cfg, seed, threads, save, meta)
    finally:
        if held:
            lock.release()


def _train_base(work, cfg, seed, threads, save, meta):
    if save.exists():
        shutil.rmtree(save)
    save.mkdir(parents=True)
    o = OPTIM["base"]
    wall = run("train", [work / "data" / "base-bin", "--user-dir", PLUGIN, "--task", "translation",
                         "--arch", "transformer", *shape_args(cfg), *COMMON_TRAIN,
                         "--lr-scheduler", "inverse_sqrt", "--lr", o["lr"], "--warmup-updates", o["warmup"], "--max-tokens", cfg["max_tokens"],
                         "--max-update", cfg["base_updates"], "--seed", seed, "--save-dir", save],
               save / "train.log", threads)
    info = dict(parse_train_log(save / "train.log"), wall_seconds=round(wall, 1),
                updates=cfg["base_updates"], threads=threads)
    write_atomic(meta, json.dumps(info, indent=1) + "\n")
    return info


def finetune(work, cfg, seed, regime, positions, save, threads):
    """Fine-tune (or, regime none, just switch) the base into ``save``; returns training info."""
    base = work / f"seed{seed}" / "base" / "checkpoint_last.pt"
    args = [work / "data" / "ft-bin", "--user-dir", PLUGIN, "--arch", ARCH[positions],
            "--finetune-from-model", base, *COMMON_TRAIN, "--max-tokens", cfg["max_tokens"],
            "--seed", seed, "--save-dir", save]
    if positions == "sinusoidal":
        args += shape_args(cfg)  # the stock transformer does not read its shape from the checkpoint
    if regime == "none":
        # the switch alone: one update at a negligible learning rate writes the base's weights
        # into a checkpoint of the new architecture through fairseq's own (strict) loading path
        args += ["--task", "translation", "--lr-scheduler", "fixed", "--lr", "1e-9", "--max-update", "1"]
    else:
        o = OPTIM[regime]
        args += ["--lr-scheduler", "inverse_sqrt", "--lr", o["lr"], "--warmup-updates", o["warmup"],
                 "--max-update", cfg["ft_updates"]]
        if regime == "full":
            args += ["--task", "translation"]
        else:
            # each style with its own defaults (lora: k_proj,v_proj rank 8 alpha 16, the authors'
            # fork; minlora: every linear weight, rank 4 alpha 1)
            args += ["--task", "translation_lora", "--lora-style", regime]
    wall = run("train", args, save / "train.log", threads)
    info = dict(parse_train_log(save / "train.log"), wall_seconds=round(wall, 1), threads=threads,
                updates=0 if regime == "none" else cfg["ft_updates"])
    return info


# ---------------------------------------------------------------- decoding and scoring

def decode_and_score(work, cfg, data_info, ckpt, outdir, threads, extra=()):
    gen = outdir / "generate.txt"
    wall = run("generate", [work / "data" / "base-bin", "--user-dir", PLUGIN, "--task", "translation_doc",
                            "--path", ckpt, "--gen-subset", "test", "--beam", cfg["beam"],
                            "--batch-size", 16, "--max-len-a", 1.2, "--max-len-b", 10,
                            "--max-source-positions", GEN_POSITIONS, "--max-target-positions", GEN_POSITIONS,
                            *extra], gen, threads)
    _, hyps, _ = read_generate(gen)
    refs = read_lines(work / "data" / "raw" / "eval.tgt")
    segments = data_info["segments"]
    if len(hyps) != len(refs) or len(refs) != len(segments):
        raise RuntimeError(f"{gen}: {len(hyps)} hypotheses for {len(refs)} references")
    seen = set(data_info["doc_languages"])
    scores = {}
    for split in dict.fromkeys(s["split"] for s in segments):
        idx = [i for i, s in enumerate(segments) if s["split"] == split]
        groups = {"all": idx, "seen": [i for i in idx if segments[i]["lang"] in seen],
                  "unseen": [i for i in idx if segments[i]["lang"] not in seen]}
        for lang in data_info["languages"]:
            groups[lang] = [i for i in idx if segments[i]["lang"] == lang]
        scores[split] = {}
        for group, ids in groups.items():
            if not ids:
                continue
            report = evaluate([hyps[i] for i in ids], [refs[i] for i in ids])
            hyp_tokens = sum(len(hyps[i].split()) for i in ids)
            ref_tokens = sum(len(refs[i].split()) for i in ids)
            scores[split][group] = {"chrf++": round(report["overall"]["chrf++"], 2),
                                    "segments": len(ids),
                                    "length_ratio": round(hyp_tokens / ref_tokens, 3)}
    return {"scores": scores, "decode_seconds": round(wall, 1), "signature": report["signature"]}


def run_cell(work, cfg, data_info, seed, regime, positions, threads, base_info):
    cell_dir = work / f"seed{seed}" / f"{regime}-{positions}"
    meta = cell_dir / "cell.json"
    if meta.is_file():
        return json.loads(meta.read_text())
    lock = Lock(work, f"seed{seed}-{regime}-{positions}")
    if not lock.acquire():
        log(f"seed {seed} {regime}-{positions}: another runner is on it, skipped here")
        return None
    try:
        if meta.is_file():  # finished by another runner meanwhile
            return json.loads(meta.read_text())
        return _run_cell(work, cfg, data_info, seed, regime, positions, threads, base_info, cell_dir, meta)
    finally:
        lock.release()


def _run_cell(work, cfg, data_info, seed, regime, positions, threads, base_info, cell_dir, meta):
    if cell_dir.exists():
        shutil.rmtree(cell_dir)  # an unfinished cell starts again from scratch
    cell_dir.mkdir(parents=True)
    log(f"seed {seed} {regime:8s} {positions:10s} start")
    plugin = plugin_fingerprint()
    if regime == "none" and positions == "sinusoidal":  # the base itself
        train = {"params_total": base_info["params_total"], "params_trained": 0, "wall_seconds": 0.0,
                 "train_loop_seconds": 0.0, "updates": 0, "threads": threads}
        ckpt = work / f"seed{seed}" / "base" / "checkpoint_last.pt"
    else:
        train = finetune(work, cfg, seed, regime, positions, cell_dir, threads)
        ckpt = cell_dir / "checkpoint_last.pt"
    result = decode_and_score(work, cfg, data_info, ckpt, cell_dir, threads)
    cell = {"seed": seed, "regime": regime, "positions": positions, "train": train, **result,
            "plugin": plugin}
    if regime != "none" and train["params_total"]:
        cell["trainable_share"] = round(train["params_trained"] / train["params_total"], 4)
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):  # keep the work dir small
        if regime == "none" and (cell_dir / name).exists():
            (cell_dir / name).unlink()
    write_atomic(meta, json.dumps(cell, indent=1) + "\n")
    last = list(result["scores"])[-1]
    log(f"seed {seed} {regime:8s} {positions:10s} done: sent {result['scores']['sent']['all']['chrf++']:.1f}, "
        f"{last} seen {result['scores'][last]['seen']['chrf++']:.1f} "
        f"unseen {result['scores'][last]['unseen']['chrf++']:.1f}; train {train['wall_seconds']:.0f}s, "
        f"decode {result['decode_seconds']:.0f}s")
    return cell


# ---------------------------------------------------------------- report

def fmt(values, spread=False):
    if not values:
        return "–"
    if len(values) == 1 or not spread:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def report(cells, data_info, cfg, args, outdir, wall_total):
    outdir.mkdir(parents=True, exist_ok=True)
    splits = list(dict.fromkeys(s["split"] for s in data_info["segments"]))
    seen = ", ".join(data_info["doc_languages"])
    unseen = ", ".join(l for l in data_info["languages"] if l not in data_info["doc_languages"])
    first_seed = args.seeds[0]
    by_key = {}
    for c in cells:
        by_key.setdefault((c["regime"], c["positions"]), []).append(c)
    order = [(r, p) for r in REGIMES for p in POSITIONS if (r, p) in by_key]
    ref = data_info["ref_tokens"]
    longest = data_info["train_sentence_max_tokens"]

    lines = [f"ChrF++ (sacrebleu, {cells[0]['signature']}) of seed {first_seed}, "
             f"seen / unseen long-context languages (seen: {seen}; unseen: {unseen}). "
             f"Columns are test sets: `sent` = sentences; `docN` = documents of N sentences "
             f"(mean reference length in tokens, and that as a multiple of the longest training "
             f"sentence, {longest} tokens). Trainable share and fine-tuning wall time "
             f"(fairseq-train process, {cfg['ft_updates']} updates) are per cell.", ""]
    head = ["regime", "positions"]
    for s in splits:
        head.append(f"{s} ({ref[s]['mean']:.0f} tok, {ref[s]['mean'] / longest:.1f}x)")
    head += ["trainable", "train s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for key in order:
        c = [x for x in by_key[key] if x["seed"] == first_seed]
        if not c:
            continue
        c = c[0]
        row = [key[0], key[1]]
        for s in splits:
            sc = c["scores"][s]
            row.append(f"{sc['seen']['chrf++']:.1f} / {sc['unseen']['chrf++']:.1f}")
        share = c.get("trainable_share")
        row.append("–" if share is None else f"{100 * share:.1f}%")
        row.append("–" if key[0] == "none" else f"{c['train']['wall_seconds']:.0f}")
        lines.append("| " + " | ".join(row) + " |")

    # length ratios: where a model stops after the first sentence (ratio ~ 1/N) or runs on (> 1)
    lines += ["", f"Hypothesis/reference length ratio (tokens, seed {first_seed}), seen / unseen languages: "
              f"about 1/N for a model that translates only the first sentence of an N-sentence document.", ""]
    doc_splits = [s for s in splits if s != "sent"]
    lines.append("| regime | positions | " + " | ".join(doc_splits) + " |")
    lines.append("|" + "---|" * (2 + len(doc_splits)))
    for key in order:
        c = [x for x in by_key[key] if x["seed"] == first_seed]
        if c:
            lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(
                f"{c[0]['scores'][s]['seen']['length_ratio']:.2f} / {c[0]['scores'][s]['unseen']['length_ratio']:.2f}"
                for s in doc_splits) + " |")
    lines.append("")
    last = splits[-1]

    multi = [k for k in order if len({c["seed"] for c in by_key[k]}) > 1]
    if multi:
        seeds = sorted({c["seed"] for k in multi for c in by_key[k]})
        lines += [f"Seed variance (seeds {', '.join(map(str, seeds))}; each seed re-trains the base and "
                  f"fine-tunes): ChrF++ as mean ± standard deviation, all languages, and the per-seed values.", ""]
        lines.append(f"| regime | positions | sent | {last} all | {last} seen | {last} unseen | per seed ({last} all) |")
        lines.append("|---|---|---|---|---|---|---|")
        for key in multi:
            cs = sorted(by_key[key], key=lambda c: c["seed"])

            def vals(split, group):
                return [c["scores"][split][group]["chrf++"] for c in cs]
            lines.append(f"| {key[0]} | {key[1]} | {fmt(vals('sent', 'all'), True)} | {fmt(vals(last, 'all'), True)} | "
                         f"{fmt(vals(last, 'seen'), True)} | {fmt(vals(last, 'unseen'), True)} | "
                         + ", ".join(f"s{c['seed']}: {c['scores'][last]['all']['chrf++']:.1f}" for c in cs) + " |")
    text = "\n".join(lines) + "\n"
    write_atomic(outdir / "results.md", text)
    summary = {
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "settings": {**cfg, "doc_splits": list(cfg["doc_splits"]), "optim": OPTIM,
                     "doc_budget": args.doc_budget, "doc_min_budget": args.doc_min_budget},
        "data": {k: v for k, v in data_info.items() if k != "segments"},
        "wall_seconds_this_invocation": round(wall_total, 1),
        "cells": cells,
    }
    write_atomic(outdir / "results.json", json.dumps(summary, indent=1) + "\n")
    plot(cells, splits, ref, data_info, cfg, outdir)
    return text


def plot(cells, splits, ref, data_info, cfg, outdir):
    try:
        import logging

        logging.getLogger("matplotlib").setLevel(logging.WARNING)
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install matplotlib): no plots")
        return
    colours = {"sinusoidal": "tab:gray", "rope": "tab:blue", "alibi": "tab:orange", "nope": "tab:green"}
    x = [ref[s]["mean"] for s in splits]
    for regime in REGIMES:
        mine = [c for c in cells if c["regime"] == regime]
        if not mine:
            continue
        fig, ax = plt.subplots(figsize=(8.4, 4.2))
        for positions in POSITIONS:
            cs = [c for c in mine if c["positions"] == positions]
            if not cs:
                continue
            for group, style in (("seen", "-"), ("unseen", "--")):
                ys = [statistics.mean(c["scores"][s][group]["chrf++"] for c in cs) for s in splits]
                label = f"{positions} ({group})" + (f", mean of {len(cs)} seeds" if len(cs) > 1 and group == "seen" else "")
                ax.plot(x, ys, style, marker="o", ms=3, color=colours[positions], label=label)
                if len(cs) > 1:
                    lo = [min(c["scores"][s][group]["chrf++"] for c in cs) for s in splits]
                    hi = [max(c["scores"][s][group]["chrf++"] for c in cs) for s in splits]
                    ax.fill_between(x, lo, hi, color=colours[positions], alpha=0.12, lw=0)
        ax.axvline(data_info["train_sentence_max_tokens"], color="k", lw=0.6, ls=":")
        ax.axvline(data_info["ft_docs"]["max_tokens"], color="k", lw=0.6, ls="-.")
        ax.text(data_info["train_sentence_max_tokens"], 97, " longest\n training\n sentence", fontsize=7, va="top")
        if regime != "none":
            ax.text(data_info["ft_docs"]["max_tokens"], 97, " longest\n fine-tuning\n document", fontsize=7, va="top")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{s}\n{v:.0f}" for s, v in zip(splits, x)], fontsize=7)
        ax.set_xlabel("test set (mean reference tokens)")
        ax.set_ylabel("ChrF++")
        ax.set_ylim(0, 100)
        title = {"none": "switch only, no fine-tuning", "full": "full fine-tuning", "lora": "LoRA",
                 "minlora": "minLoRA"}[regime]
        ax.set_title(f"{title}: seen (—) and unseen (- -) long-context languages", fontsize=9)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(outdir / f"plot_{regime}.png", dpi=110)
        plt.close(fig)


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model and budgets: a smoke test of every step")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="seeds (default 1 2)")
    p.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    p.add_argument("--positions", nargs="+", default=list(POSITIONS), choices=POSITIONS)
    p.add_argument("--extra-seed-cells", nargs="+", default=["full:sinusoidal", "full:rope"],
                   metavar="REGIME:POSITIONS", help="cells run for the seeds after the first "
                   "(default: the headline cells, full fine-tuning with sinusoidal kept and RoPE)")
    p.add_argument("--all-cells", action="store_true", help="run the whole grid for every seed")
    p.add_argument("--workdir", type=Path, help="where data, checkpoints and logs go "
                   "(default benchmarks/length_generalization/work[-quick])")
    p.add_argument("--outdir", type=Path, help="where results.json/.md and plots go (default: this "
                   "script's directory for the full run, the work directory for --quick)")
    p.add_argument("--threads", default="auto", help="torch threads per fairseq process: a number, or auto "
                   "(2 when the 1-minute load average is under 2.5, else 1; the default)")
    p.add_argument("--doc-budget", type=int, default=128, help="most tokens of a fine-tuning document")
    p.add_argument("--doc-min-budget", type=int, default=16, help="least budget drawn for a document")
    p.add_argument("--corpus-seed", type=int, default=1, help="toy corpus seed (default 1)")
    p.add_argument("--base-updates", type=int, help="override the base training updates")
    p.add_argument("--ft-updates", type=int, help="override the fine-tuning updates")
    p.add_argument("--reverse", action="store_true", help="work through the cells from the last: start a "
                   "second runner with this on the same work directory to use a second free core "
                   "(cells are locked, so none runs twice)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from cached cells")
    args = p.parse_args()

    cfg = dict(SETTINGS["quick" if args.quick else "full"])
    if args.base_updates:
        cfg["base_updates"] = args.base_updates
    if args.ft_updates:
        cfg["ft_updates"] = args.ft_updates
    work = args.workdir or HERE / ("work-quick" if args.quick else "work")
    outdir = args.outdir or (work if args.quick else HERE)
    work.mkdir(parents=True, exist_ok=True)
    settings_file = work / "settings.json"
    fingerprint = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
    fingerprint.update(doc_budget=args.doc_budget, doc_min_budget=args.doc_min_budget,
                       corpus_seed=args.corpus_seed, optim=OPTIM)
    if settings_file.is_file() and json.loads(settings_file.read_text()) != fingerprint:
        sys.exit(f"{work} holds results of other settings ({settings_file}); use another --workdir or delete it")
    settings_file.write_text(json.dumps(fingerprint, indent=1) + "\n")

    start = time.time()
    data_info = prepare_data(work, cfg, args, threads(args))
    have_lora = lora_available()
    extra = {tuple(c.split(":")) for c in args.extra_seed_cells}
    cells, skipped, failed = [], [], []
    # jobs in order of importance, so that a time-out loses the least informative cells: the first
    # seed's base and full fine-tuning, then the extra seeds' headline cells, then the rest
    first, rest = args.seeds[0], args.seeds[1:]
    grid = [(r, p) for r in args.regimes for p in args.positions]
    priority = [("none", "sinusoidal")] + [c for c in grid if c[0] == "full"]
    jobs = [(first, c) for c in priority if c in grid or c == ("none", "sinusoidal")]
    for seed in rest:
        chosen = grid if args.all_cells else [c for c in grid if c in extra]
        jobs += [(seed, c) for c in [("none", "sinusoidal")] + chosen]
    jobs += [(first, c) for c in grid if c not in priority and c[0] != "none"]
    jobs += [(first, c) for c in grid if c not in priority and c[0] == "none"]  # the switch alone last
    jobs = list(dict.fromkeys(jobs))
    log("jobs: " + ", ".join(f"s{s}:{r}-{p}" for s, (r, p) in jobs))
    if args.reverse:  # a second runner (see --reverse) starts from the other end of the list
        jobs = jobs[::-1]

    def collect():
        found = []
        for seed, (regime, positions) in sorted(jobs):
            meta = work / f"seed{seed}" / f"{regime}-{positions}" / "cell.json"
            if meta.is_file():
                found.append(json.loads(meta.read_text()))
        return found

    bases = {}
    for seed, (regime, positions) in ([] if args.report_only else jobs):
        if regime in LORA_REGIMES and not have_lora:
            skipped.append(f"seed {seed} {regime}-{positions}")
            continue
        if seed not in bases:
            bases[seed] = train_base(work, cfg, seed, threads(args))
            log(f"seed {seed} base: {bases[seed]['wall_seconds']:.0f}s, {bases[seed]['params_total']} parameters")
        try:
            run_cell(work, cfg, data_info, seed, regime, positions, threads(args), bases[seed])
        except RuntimeError as err:  # a failed cell is reported, the others still run
            log(f"seed {seed} {regime}-{positions} FAILED: {err}")
            failed.append(f"seed {seed} {regime}-{positions}")
            continue
        report(collect(), data_info, cfg, args, outdir, time.time() - start)  # partial results as they come
    cells = collect()
    if skipped:
        log(f"skipped (no --task translation_lora in the plugin yet): {', '.join(skipped)}")
    if failed:
        log(f"FAILED cells (see their train.log/generate.txt): {', '.join(failed)}")
    if not cells:
        sys.exit("no finished cells")
    text = report(cells, data_info, cfg, args, outdir, time.time() - start)
    print(text)
    log(f"done in {time.time() - start:.0f}s; results in {outdir}")


if __name__ == "__main__":
    main()
