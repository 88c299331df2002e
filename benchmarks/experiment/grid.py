"""One experiment runner for the paper's grid, shared by two corpora (toy and Bible).

Does switching positions induce long-context ability? Everything runs through fairseq's own
command-line tools (``python -m fairseq_cli.{preprocess,train,generate}``) with
``--user-dir fairseq_relpos``; a corpus is described by a :class:`Corpus` (its settings, how
it is written and tokenised, its language groups), and a thin script per corpus calls
:func:`main`:

1. the corpus is written (document training data only for the *document languages*), the
   document training data is joined into documents with ``make-docs`` (budget
   ``--doc-budget`` model tokens), and everything is binarised with the base's dictionaries;
2. a small sinusoidal base (stock ``--arch transformer``) is trained on sentences only, with
   the corpus's length cap (``base_positions``);
3. the base is fine-tuned, every cell from the same base checkpoint in its own directory,
   under each regime (full fine-tuning; LoRA and minLoRA through ``--task translation_lora``)
   with each position scheme (sinusoidal kept = stock ``transformer``; ``transformer_rope``,
   ``transformer_alibi``, ``transformer_nope``) on sentences of every language plus the
   documents; regime ``none`` is the switch without fine-tuning (the base's weights in the new
   architecture, written by one fairseq-train update at learning rate 1e-9). A *variant* cell
   (``REGIME:POSITIONS:VARIANT``) changes the fine-tuning documents or the decoding options;
4. every model decodes the sentence test set and the document test sets in one
   fairseq-generate run (``--task translation_doc``, raised max positions and max-len-a/b so
   that nothing is truncated), scored per test set (length bucket) and language group with
   sacrebleu's ChrF++ (through ``fairseq_relpos.scoring``) and BLEU, and the
   hypothesis/reference length ratio (whitespace tokens).

Cells are cached (``WORKDIR/seed{S}/{cell}/cell.json``) and locked: a re-run skips finished
cells, and a second runner started with ``--reverse`` on the same work directory works
through the list from the other end. ``results.json``, ``results.md`` and one plot per regime
go to ``--outdir``. Extra seeds (after the first) re-train the base and run only
``--extra-seed-cells`` (the headline cells) unless ``--all-cells``.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fairseq_relpos.scoring import evaluate, read_generate, read_lines  # noqa: E402
from fairseq_relpos.documents.make_docs import make_documents  # noqa: E402

PLUGIN = str(REPO / "fairseq_relpos")
POSITIONS = ("sinusoidal", "rope", "alibi", "nope")
ARCH = {"sinusoidal": "transformer", "rope": "transformer_rope", "alibi": "transformer_alibi",
        "nope": "transformer_nope"}
REGIMES = ("none", "full", "lora", "minlora")
OPTIM = {  # learning rates and warm-up per stage
    "base": dict(lr=3e-3, warmup=150),
    "full": dict(lr=1e-3, warmup=50),
    "lora": dict(lr=3e-3, warmup=50),
    "minlora": dict(lr=3e-3, warmup=50),
}
COMMON_TRAIN = ["--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
                "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
                "--dropout", "0.1", "--weight-decay", "0.0001", "--no-epoch-checkpoints",
                "--num-workers", "0", "--no-progress-bar", "--log-interval", "50",
                "--log-format", "simple"]
GEN_POSITIONS = 8192


@dataclass
class Corpus:
    """What differs between corpora. ``write(root, cfg, args)`` writes the corpus under ``root``
    and returns ``(corpus, encoded)``: ``corpus.files(split)`` are the raw text files (the
    references), ``encoded(split)`` the files the model reads (the same for whitespace-token
    corpora). ``group(lang, doc_languages)`` names a language's group; ``groups`` are the
    report's columns, in order."""
    name: str
    here: Path                      # the thin script's directory: default work and output dirs
    settings: dict                  # "full" and "quick": sizes, updates, test sets
    write: callable
    group: callable
    groups: tuple = ("seen", "unseen")
    model_args: tuple = ()          # extra architecture options of the base (kept by fine-tuning)
    gen_args: tuple = ()            # extra fairseq-generate options
    doc_budget: int = 128
    doc_min_budget: int = 16
    positions: tuple = POSITIONS
    extra_seed_cells: tuple = ("full:sinusoidal", "full:rope")
    variants: dict = field(default_factory=dict)  # name -> dict(doc_budget, doc_min_budget, ft_positions) or dict(gen=[...])
    variant_cells: tuple = ()
    add_arguments: callable = None  # corpus-specific options
    fingerprint: callable = None    # corpus-specific settings that invalidate a work directory


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(tool, args, logfile, threads, append=False):
    """Run a fairseq CLI, output to ``logfile`` (appended to with ``append``, for a resumed
    training); returns wall seconds. Raises on failure."""
    cmd = [sys.executable, "-m", f"fairseq_cli.{tool}", *map(str, args)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONWARNINGS="ignore")
    start = time.time()
    with open(logfile, "a" if append else "w") as out:
        out.write(" ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if proc.returncode != 0:
        tail = Path(logfile).read_text(errors="replace")[-3000:]
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


def wait_for(work, name, done, build):
    """``build()`` under the lock ``name`` unless ``done`` exists; another runner holding the
    lock is waited for. Returns the JSON in ``done``."""
    lock, held = Lock(work, name), False
    while not done.is_file():
        if lock.acquire():
            held = True
            break
        time.sleep(10)
    try:
        if not done.is_file():
            build()
        return json.loads(done.read_text())
    finally:
        if held:
            lock.release()


def plugin_fingerprint():
    """The plugin code a cell ran with: git HEAD and a hash of every plugin source file as it
    was on disk (the working tree may hold uncommitted changes)."""
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


def parse_cell(text):
    """``REGIME:POSITIONS[:VARIANT]`` -> a tuple of two or three names."""
    return tuple(text.split(":"))


def cell_name(cell):
    return "-".join(cell)


# ---------------------------------------------------------------- data

def ft_data_name(variant):
    return "ft-bin" if variant is None else f"ft-{variant}-bin"


def make_ft_data(data, encoded, corpus, budget, min_budget, seed, name, threads):
    """Every training sentence plus documents of the document languages (``make-docs``),
    binarised with the base's dictionaries into ``data/name``; returns the documents' summary."""
    raw = data / "raw"
    stem = name.replace("-bin", "")
    docs = make_documents(*encoded("train-docs"), raw / f"{stem}-docs.src", raw / f"{stem}-docs.tgt",
                          raw / f"{stem}-docs.lines", budget=budget, min_budget=min_budget,
                          ids_path=corpus.root / "train-docs.ids", seed=seed)
    log(docs.report(budget).splitlines()[0])
    for side, path in zip(("src", "tgt"), encoded("train")):
        write_lines(raw / f"{stem}-train.{side}", read_lines(path) + read_lines(raw / f"{stem}-docs.{side}"))
    valid = encoded("valid")[0].with_suffix("")
    run("preprocess", ["--source-lang", "src", "--target-lang", "tgt", "--trainpref", raw / f"{stem}-train",
                       "--validpref", valid, "--srcdict", data / "base-bin" / "dict.src.txt",
                       "--tgtdict", data / "base-bin" / "dict.tgt.txt", "--destdir", data / name,
                       "--workers", "1"], data / f"preprocess-{stem}.log", threads)
    return {"documents": docs.documents_out, "max_tokens": docs.max_tokens,
            "mean_tokens": round(docs.total_tokens / max(1, docs.documents_out), 1),
            "budget": budget, "min_budget": min_budget}


def longest_kept(encoded_pair, cap):
    """The longest side (model tokens) of the training pairs a length cap of ``cap`` positions
    keeps (fairseq counts the end-of-sentence token too)."""
    longest = 0
    for s, t in zip(*(read_lines(p) for p in encoded_pair)):
        n, m = len(s.split()) + 1, len(t.split()) + 1
        if n <= cap and m <= cap:
            longest = max(longest, n - 1, m - 1)
    return longest


def prepare_data(spec, work, cfg, args, threads):
    """Corpus, documents, the evaluation set and binarised data; cached."""
    data = work / "data"
    done = data / "data.json"
    if done.is_file():
        return json.loads(done.read_text())
    if data.exists():
        shutil.rmtree(data)
    raw = data / "raw"
    raw.mkdir(parents=True)
    corpus, encoded = spec.write(raw / "corpus", cfg, args)
    # one evaluation set: sentence test set, then each document test set; segments remembered
    segments, src_lines, tgt_lines, ref_lines = [], [], [], []
    for name, split in cfg["eval_splits"]:
        src, tgt = (read_lines(p) for p in encoded(split))
        ref = read_lines(corpus.files(split)[1])
        keep = list(range(len(src)))
        limit = cfg["test_sentences"] if name == "sent" else cfg["docs_per_split"]
        if limit is not None:  # the first lines of every language
            per_lang = {}
            for i in keep:
                per_lang.setdefault(src[i].split()[1], []).append(i)
            keep = sorted(i for ids in per_lang.values() for i in ids[:max(1, limit // len(per_lang))])
        for i in keep:
            segments.append({"split": name, "lang": src[i].split()[1], "tokens": len(tgt[i].split())})
            src_lines.append(src[i])
            tgt_lines.append(tgt[i])
            ref_lines.append(ref[i])
    write_lines(raw / "eval.src", src_lines)
    write_lines(raw / "eval.tgt", tgt_lines)
    write_lines(raw / "eval.ref", ref_lines)
    sent = sum(seg["split"] == "sent" for seg in segments)  # the sentence test set alone: test1
    for suffix, lines in (("src", src_lines), ("tgt", tgt_lines), ("ref", ref_lines)):
        write_lines(raw / f"eval-sent.{suffix}", lines[:sent])
    train, valid = (encoded(s)[0].with_suffix("") for s in ("train", "valid"))
    run("preprocess", ["--source-lang", "src", "--target-lang", "tgt", "--trainpref", train,
                       "--validpref", valid, "--testpref", f"{raw / 'eval'},{raw / 'eval-sent'}",
                       "--destdir", data / "base-bin",
                       "--workers", "1"], data / "preprocess-base.log", threads)
    info = {
        "segments": segments,
        "doc_languages": list(corpus.doc_targets),
        "languages": list(corpus.targets),
        "groups": {lang: spec.group(lang, corpus.doc_targets) for lang in corpus.targets},
        "train_sentence_max_tokens": longest_kept(encoded("train"), cfg["base_positions"]),
        "ft_docs": make_ft_data(data, encoded, corpus, args.doc_budget, args.doc_min_budget, args.corpus_seed,
                                "ft-bin", threads),
        "ft_variants": {},
        "ft_sentences": len(read_lines(encoded("train")[0])),
        "ref_file": "eval.ref",
        "ref_tokens": {},
        "corpus_manifest": json.loads((corpus.root / "corpus.json").read_text()),
    }
    for name, variant in spec.variants.items():
        if "doc_budget" in variant:
            info["ft_variants"][name] = make_ft_data(data, encoded, corpus, variant["doc_budget"],
                                                     variant["doc_min_budget"], args.corpus_seed,
                                                     ft_data_name(name), threads)
    for seg in segments:
        info["ref_tokens"].setdefault(seg["split"], []).append(seg["tokens"])
    info["ref_tokens"] = {k: {"mean": round(statistics.mean(v), 1), "max": max(v)}
                          for k, v in info["ref_tokens"].items()}
    done.write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return info


# ---------------------------------------------------------------- training

def shape_args(spec, cfg):
    out = []
    for side in ("encoder", "decoder"):
        out += [f"--{side}-layers", cfg["layers"], f"--{side}-embed-dim", cfg["dim"],
                f"--{side}-ffn-embed-dim", cfg["ffn"], f"--{side}-attention-heads", cfg["heads"],
                f"--{side}-normalize-before"]
    return out + ["--share-decoder-input-output-embed", *spec.model_args]


def positions_args(n):
    return ["--max-source-positions", n, "--max-target-positions", n]


def parse_train_log(path):
    text = Path(path).read_text()
    m = re.search(r"num\. (?:shared )?model params: ([\d,]+) \(num\. trained: ([\d,]+)\)", text)
    total, trained = (int(x.replace(",", "")) for x in m.groups()) if m else (None, None)
    d = re.findall(r"done training in ([\d.]+) seconds", text)  # one per (resumed) run
    losses = re.findall(r"\| train \|.*?\| loss ([\d.]+) \|", text)
    return {"params_total": total, "params_trained": trained,
            "train_loop_seconds": round(sum(map(float, d)), 1) if d else None,
            "final_train_loss": float(losses[-1]) if losses else None}


def train_base(spec, work, cfg, seed, threads, hours=None):
    save = work / f"seed{seed}" / "base"
    return wait_for(work, f"seed{seed}-base", save / "train.json",
                    lambda: _train_base(spec, work, cfg, seed, threads, save, hours))


def _train_base(spec, work, cfg, seed, threads, save, hours=None):
    """Train the base to a plateau of its validation loss (fairseq's ``--patience``: no new best
    in that many validations), or ``base_updates``, or ``hours`` of training in all (fairseq's
    ``--stop-time-hours``, counted across resumed runs). A re-run resumes from ``checkpoint_last.pt``;
    the interval checkpoints are kept for the learning curve (:func:`base_curve`)."""
    save.mkdir(parents=True, exist_ok=True)
    o = OPTIM["base"]
    every = cfg.get("base_validate_interval", cfg["base_updates"])
    wall = run("train", [work / "data" / "base-bin", "--user-dir", PLUGIN, "--task", "translation",
                         "--arch", "transformer", *shape_args(spec, cfg), *COMMON_TRAIN,
                         *positions_args(cfg["base_positions"]),
                         "--lr-scheduler", "inverse_sqrt", "--lr", o["lr"], "--warmup-updates", o["warmup"],
                         "--max-tokens", cfg["max_tokens"], "--max-update", cfg["base_updates"], "--seed", seed,
                         "--validate-interval-updates", every, "--save-interval-updates", every,
                         "--validate-interval", 1000, "--save-interval", 1000, "--keep-interval-updates", 1000,
                         "--patience", cfg.get("base_patience", -1), "--stop-time-hours", hours or 0,
                         "--save-dir", save], save / "train.log", threads, append=True)
    info = dict(parse_train_log(save / "train.log"), wall_seconds=round(wall, 1), threads=threads,
                valid=valid_curve(save / "train.log"))
    info["updates"] = info["valid"][-1]["updates"] if info["valid"] else cfg["base_updates"]
    write_atomic(save / "train.json", json.dumps(info, indent=1) + "\n")


def valid_curve(log_path):
    """``[{updates, loss, nll_loss}]`` of every validation in a (possibly resumed) training log."""
    out = {}
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if "| valid on 'valid' subset |" in line:
            fields = dict(re.findall(r"\| (\w+) ([\d.]+)", line))
            out[int(fields["num_updates"])] = {"updates": int(fields["num_updates"]),
                                               "loss": float(fields["loss"]), "nll_loss": float(fields["nll_loss"])}
    return [out[k] for k in sorted(out)]


def base_curve(spec, work, cfg, data_info, seed, threads):
    """The base's learning curve: validation loss (from its training log) and verse ChrF++ (beam
    ``curve_beam``, the sentence test set, per language and group) of every ``curve_every``-th
    interval checkpoint and of the best one; cached per point in ``base/curve.json``."""
    save = work / f"seed{seed}" / "base"
    path = save / "curve.json"
    points = {p["checkpoint"]: p for p in json.loads(path.read_text())} if path.is_file() else {}
    valid = {v["updates"]: v for v in json.loads((save / "train.json").read_text())["valid"]}
    chosen = sorted((int(c.stem.rsplit("_", 1)[1]), c) for c in save.glob("checkpoint_*_*.pt")
                    if int(c.stem.rsplit("_", 1)[1]) % cfg.get("curve_every", cfg["base_updates"]) == 0)
    chosen.append((None, save / "checkpoint_best.pt"))
    segments = [s for s in data_info["segments"] if s["split"] == "sent"]
    refs = read_lines(work / "data" / "raw" / "eval-sent.ref")
    for updates, ckpt in chosen:
        if ckpt.name in points or not ckpt.is_file():
            continue
        gen = save / f"curve-{ckpt.stem}.txt"
        run("generate", [work / "data" / "base-bin", "--user-dir", PLUGIN, "--task", "translation_doc",
                         "--path", ckpt, "--gen-subset", "test1", "--beam", cfg.get("curve_beam", 4), "--batch-size", 64,
                         *spec.gen_args], gen, threads)
        _, hyps, _ = read_generate(gen)
        scores = {}
        for group in ["all", *spec.groups, *data_info["languages"]]:
            ids = [i for i, s in enumerate(segments)
                   if group == "all" or s["lang"] == group or data_info["groups"][s["lang"]] == group]
            if ids:
                scores[group] = score([hyps[i] for i in ids], [refs[i] for i in ids])[0]
        if updates is None:
            updates = torch_free_updates(ckpt)
        points[ckpt.name] = {"checkpoint": ckpt.name, "updates": updates, "valid": valid.get(updates),
                             "beam": cfg.get("curve_beam", 4), "scores": scores}
        write_atomic(path, json.dumps(sorted(points.values(), key=lambda p: (p["updates"], p["checkpoint"])),
                                      indent=1) + "\n")
        log(f"seed {seed} base curve {ckpt.name} ({updates} updates): verse ChrF++ "
            + ", ".join(f"{g} {scores[g]['chrf++']:.1f}" for g in scores if g in ("all", *spec.groups)))
    return sorted(points.values(), key=lambda p: (p["updates"], p["checkpoint"]))


def torch_free_updates(ckpt):
    """The update count saved in a fairseq checkpoint (read in a subprocess: this runner does not
    import torch)."""
    code = ("import sys, torch; s = torch.load(sys.argv[1], map_location='cpu', weights_only=False); "
            "print(s['optimizer_history'][-1]['num_updates'])")
    return int(subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True,
                              check=True).stdout.split()[-1])


def finetune(spec, work, cfg, seed, cell, save, threads):
    """Fine-tune (or, regime none, just switch) the base into ``save``; returns training info."""
    regime, positions, variant = (cell + (None,))[:3]
    ft = spec.variants.get(variant, {})
    base = work / f"seed{seed}" / "base" / "checkpoint_best.pt"
    args = [work / "data" / ft_data_name(variant if "doc_budget" in ft else None), "--user-dir", PLUGIN,
            "--arch", ARCH[positions], "--finetune-from-model", base, *COMMON_TRAIN,
            *positions_args(ft.get("ft_positions", cfg["ft_positions"])),
            "--max-tokens", ft.get("max_tokens", cfg["max_tokens"]), "--seed", seed, "--save-dir", save,
            "--disable-validation"]
    if positions == "sinusoidal":
        args += shape_args(spec, cfg)  # the stock transformer does not read its shape from the checkpoint
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
    return dict(parse_train_log(save / "train.log"), wall_seconds=round(wall, 1), threads=threads,
                updates=0 if regime == "none" else cfg["ft_updates"])


# ---------------------------------------------------------------- decoding and scoring

def score(hyps, refs):
    """ChrF++ (``fairseq_relpos.scoring``), BLEU and the hypothesis/reference length ratio."""
    from sacrebleu.metrics import BLEU
    chrf = evaluate(hyps, refs)
    bleu = BLEU()
    return {"chrf++": round(chrf["overall"]["chrf++"], 2), "bleu": round(bleu.corpus_score(hyps, [refs]).score, 2),
            "segments": len(refs),
            "length_ratio": round(sum(len(h.split()) for h in hyps) / max(1, sum(len(r.split()) for r in refs)), 3)
            }, chrf["signature"], str(bleu.get_signature())


def decode_and_score(spec, work, cfg, data_info, ckpt, outdir, threads, extra=()):
    gen = outdir / "generate.txt"
    wall = run("generate", [work / "data" / "base-bin", "--user-dir", PLUGIN, "--task", "translation_doc",
                            "--path", ckpt, "--gen-subset", "test", "--beam", cfg["beam"],
                            "--batch-size", cfg.get("gen_batch", 16), "--max-len-a", cfg.get("max_len_a", 1.2),
                            "--max-len-b", cfg.get("max_len_b", 10),
                            *positions_args(GEN_POSITIONS), *spec.gen_args, *extra], gen, threads)
    _, hyps, _ = read_generate(gen)
    refs = read_lines(work / "data" / "raw" / data_info.get("ref_file", "eval.tgt"))
    segments = data_info["segments"]
    if len(hyps) != len(refs) or len(refs) != len(segments):
        raise RuntimeError(f"{gen}: {len(hyps)} hypotheses for {len(refs)} references")
    scores, signatures = {}, {}
    for split in dict.fromkeys(s["split"] for s in segments):
        idx = [i for i, s in enumerate(segments) if s["split"] == split]
        by_lang = {lang: [i for i in idx if segments[i]["lang"] == lang] for lang in data_info["languages"]}
        groups = {"all": idx}
        for lang, ids in by_lang.items():
            groups.setdefault(data_info["groups"][lang], []).extend(ids)
        groups.setdefault("unseen", [i for i in idx if segments[i]["lang"] not in data_info["doc_languages"]])
        groups.update(by_lang)
        scores[split] = {}
        for group, ids in groups.items():
            if ids:
                scores[split][group], signatures["chrf++"], signatures["bleu"] = score(
                    [hyps[i] for i in ids], [refs[i] for i in ids])
    return {"scores": scores, "decode_seconds": round(wall, 1), "signature": signatures["chrf++"],
            "bleu_signature": signatures["bleu"]}


def run_cell(spec, work, cfg, data_info, seed, cell, threads, base_info):
    cell_dir = work / f"seed{seed}" / cell_name(cell)
    meta = cell_dir / "cell.json"
    if meta.is_file():
        return json.loads(meta.read_text())
    lock = Lock(work, f"seed{seed}-{cell_name(cell)}")
    if not lock.acquire():
        log(f"seed {seed} {cell_name(cell)}: another runner is on it, skipped here")
        return None
    try:
        if meta.is_file():  # finished by another runner meanwhile
            return json.loads(meta.read_text())
        return _run_cell(spec, work, cfg, data_info, seed, cell, threads, base_info, cell_dir, meta)
    finally:
        lock.release()


def _run_cell(spec, work, cfg, data_info, seed, cell, threads, base_info, cell_dir, meta):
    regime, positions, variant = (cell + (None,))[:3]
    decode_only = variant is not None and "doc_budget" not in spec.variants[variant]
    if decode_only:  # a decoding option: the plain cell's checkpoint, decoded again
        source = run_cell(spec, work, cfg, data_info, seed, cell[:2], threads, base_info)
        if source is None:
            raise RuntimeError(f"{cell_name(cell[:2])} is being run by another runner; retry later")
    if cell_dir.exists():
        shutil.rmtree(cell_dir)  # an unfinished cell starts again from scratch
    cell_dir.mkdir(parents=True)
    log(f"seed {seed} {cell_name(cell):22s} start")
    plugin = plugin_fingerprint()
    gen_extra = spec.variants[variant].get("gen", ()) if variant else ()
    if regime == "none" and positions == "sinusoidal":  # the base itself
        train = {"params_total": base_info["params_total"], "params_trained": 0, "wall_seconds": 0.0,
                 "train_loop_seconds": 0.0, "updates": 0, "threads": threads}
        ckpt = work / f"seed{seed}" / "base" / "checkpoint_best.pt"
    elif decode_only:
        train = dict(source["train"], reused_from=cell_name(cell[:2]))
        ckpt = work / f"seed{seed}" / cell_name(cell[:2]) / "checkpoint_last.pt"
    else:
        train = finetune(spec, work, cfg, seed, cell, cell_dir, threads)
        ckpt = cell_dir / "checkpoint_last.pt"
    result = decode_and_score(spec, work, cfg, data_info, ckpt, cell_dir, threads, gen_extra)
    out = {"seed": seed, "regime": regime, "positions": positions, "variant": variant, "train": train, **result,
           "plugin": plugin}
    if regime != "none" and train["params_total"]:
        out["trainable_share"] = round(train["params_trained"] / train["params_total"], 4)
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):  # keep the work dir small
        if (regime == "none" or name == "checkpoint_best.pt") and (cell_dir / name).exists():
            (cell_dir / name).unlink()
    write_atomic(meta, json.dumps(out, indent=1) + "\n")
    last = list(result["scores"])[-1]
    groups = " ".join(f"{g} {result['scores'][last][g]['chrf++']:.1f}" for g in spec.groups
                      if g in result["scores"][last])
    log(f"seed {seed} {cell_name(cell):22s} done: sent {result['scores']['sent']['all']['chrf++']:.1f}, "
        f"{last} {groups} (length ratio {result['scores'][last]['all']['length_ratio']:.2f}); "
        f"train {train['wall_seconds']:.0f}s, decode {result['decode_seconds']:.0f}s")
    return out


def run_on(work, cell, data_info):
    """Why a model's output is long, per test set, from its ``generate.txt``: the share of
    hypotheses cut at the length cap (``--max-len-a``/``-b`` of that run: no end of sentence
    came) and the share of word 4-grams that repeat one earlier in the same hypothesis (a
    decoder that lost its place loops), beside the same share in the references."""
    gen = work / f"seed{cell['seed']}" / cell_name(key_of(cell)) / "generate.txt"
    if not gen.is_file():
        return None
    command = gen.read_text().split("\n", 1)[0].split()
    a, b = (float(command[len(command) - 1 - command[::-1].index(f"--max-len-{x}") + 1]) for x in "ab")
    sources = [len(line.split()) + 1 for line in read_lines(work / "data" / "raw" / "eval.src")]
    steps = {}
    for line in read_lines(gen):
        if line.startswith("P-"):
            head, _, scores = line.partition("\t")
            steps.setdefault(int(head[2:]), len(scores.split()))
    _, hyps, _ = read_generate(gen)
    refs = read_lines(work / "data" / "raw" / data_info.get("ref_file", "eval.tgt"))

    def repeated(text):
        words = text.split()
        grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
        return len(grams) - len(set(grams)), len(grams)

    out = {}
    for split in dict.fromkeys(seg["split"] for seg in data_info["segments"]):
        idx = [i for i, seg in enumerate(data_info["segments"]) if seg["split"] == split]
        capped = sum(steps[i] >= 0.98 * (a * sources[i] + b) for i in idx)
        rep_h, rep_r = (tuple(map(sum, zip(*(repeated(t[i]) for i in idx)))) for t in (hyps, refs))
        out[split] = {"at_cap": round(capped / len(idx), 3),
                      "repeated_4grams": round(rep_h[0] / max(1, rep_h[1]), 3),
                      "repeated_4grams_ref": round(rep_r[0] / max(1, rep_r[1]), 3)}
    return out


# ---------------------------------------------------------------- report

def fmt(values, spread=False):
    if not values:
        return "–"
    if len(values) == 1 or not spread:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def key_of(c):
    return (c["regime"], c["positions"]) + ((c["variant"],) if c.get("variant") else ())


def report(spec, work, cells, data_info, cfg, args, outdir, wall_total):
    outdir.mkdir(parents=True, exist_ok=True)
    for c in cells:
        c["run_on"] = run_on(work, c, data_info)
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
        return " / ".join(f"{c['scores'][split][g][metric]:.{digits}f}" if g in c["scores"][split] else "–"
                          for g in groups)

    lines = [f"{spec.name}: seed {first_seed}, scores per language group ({slash}; "
             + "; ".join(f"{g}: {', '.join(members[g])}" for g in groups) + "). "
             f"Columns are test sets: `sent` = sentences; the others documents (mean reference length in "
             f"model tokens, and that as a multiple of the longest training sentence the base saw, "
             f"{longest} tokens). Variant cells: " + (", ".join(f"`{n}` = {v['about']}" for n, v in spec.variants.items())
                                                    or "none") + ".", "",
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
    lines += table(f"**BLEU** ({slash}).", "bleu", 1, [])
    lines += table(f"**Hypothesis/reference length ratio** (whitespace tokens; {slash}): about 1/N for a model that "
                   f"translates only the first sentence of an N-sentence document, over 1 for one that runs on.",
                   "length_ratio", 2, [])
    lines += [f"**Why output runs long** (seed {first_seed}, all languages): share of hypotheses cut at the length "
              f"cap (no end of sentence before `--max-len-a`·source + `--max-len-b`) / share of repeated word "
              f"4-grams in the hypotheses (references: "
              + ", ".join(f"{s} {c0['run_on'][s]['repeated_4grams_ref']:.2f}" for s in splits
                          for c0 in [next(c for c in cells if c.get("run_on"))]) + ").", ""]
    lines += ["| regime | positions | " + " | ".join(splits) + " |", "|" + "---|" * (2 + len(splits))]
    for key in order:
        c = first(key)
        if c and c.get("run_on"):
            lines.append("| " + " | ".join([key[0], ":".join(key[1:])] + [
                f"{c['run_on'][s]['at_cap']:.2f} / {c['run_on'][s]['repeated_4grams']:.2f}" for s in splits]) + " |")
    lines.append("")
    last = splits[-1]
    multi = [k for k in order if len({c["seed"] for c in by_key[k]}) > 1]
    if multi:
        seeds = sorted({c["seed"] for k in multi for c in by_key[k]})
        lines += [f"Seed variance (seeds {', '.join(map(str, seeds))}; each seed re-trains the base and "
                  f"fine-tunes): ChrF++ as mean ± standard deviation, and the per-seed values.", ""]
        head = ["regime", "positions", "sent all", f"{last} all"] + [f"{last} {g}" for g in groups] + [f"per seed ({last} all)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key in multi:
            cs = sorted(by_key[key], key=lambda c: c["seed"])

            def vals(split, group):
                return [c["scores"][split][group]["chrf++"] for c in cs if group in c["scores"][split]]
            lines.append("| " + " | ".join([key[0], ":".join(key[1:]), fmt(vals("sent", "all"), True), fmt(vals(last, "all"), True)]
                                           + [fmt(vals(last, g), True) for g in groups]
                                           + [", ".join(f"s{c['seed']}: {c['scores'][last]['all']['chrf++']:.1f}" for c in cs)]) + " |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    write_atomic(outdir / "results.md", text)
    summary = {
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "settings": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}, "optim": OPTIM,
                     "doc_budget": args.doc_budget, "doc_min_budget": args.doc_min_budget,
                     "variants": spec.variants},
        "data": {k: v for k, v in data_info.items() if k != "segments"},
        "wall_seconds_this_invocation": round(wall_total, 1),
        "cells": cells,
    }
    write_atomic(outdir / "results.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    plot(spec, cells, splits, groups, ref, data_info, outdir)
    return text


def plot(spec, cells, splits, groups, ref, data_info, outdir):
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
    styles = dict(zip(groups, ("-", "--", ":", "-.")))
    x = [ref[s]["mean"] for s in splits]
    for regime in REGIMES:
        mine = [c for c in cells if c["regime"] == regime]
        if not mine:
            continue
        fig, ax = plt.subplots(figsize=(8.4, 4.2))
        for key in dict.fromkeys(key_of(c) for c in mine):
            cs = [c for c in mine if key_of(c) == key]
            colour = colours[key[1]]
            for group in groups:
                if group not in cs[0]["scores"][splits[0]]:
                    continue
                ys = [statistics.mean(c["scores"][s][group]["chrf++"] for c in cs) for s in splits]
                label = f"{':'.join(key[1:])} ({group})" + (f", mean of {len(cs)} seeds" if len(cs) > 1 and group == groups[0] else "")
                ax.plot(x, ys, styles[group], marker="s" if key[2:] else "o", ms=3, color=colour, label=label,
                        alpha=0.6 if key[2:] else 1.0)
                if len(cs) > 1:
                    lo = [min(c["scores"][s][group]["chrf++"] for c in cs) for s in splits]
                    hi = [max(c["scores"][s][group]["chrf++"] for c in cs) for s in splits]
                    ax.fill_between(x, lo, hi, color=colour, alpha=0.12, lw=0)
        ax.set_ylim(bottom=0)
        top = ax.get_ylim()[1]
        ax.axvline(data_info["train_sentence_max_tokens"], color="k", lw=0.6, ls=":")
        ax.text(data_info["train_sentence_max_tokens"], top, " longest\n training\n sentence", fontsize=7, va="top")
        if regime != "none":
            ax.axvline(data_info["ft_docs"]["max_tokens"], color="k", lw=0.6, ls="-.")
            ax.text(data_info["ft_docs"]["max_tokens"], top, " longest\n fine-tuning\n document", fontsize=7, va="top")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{s}\n{v:.0f}" for s, v in zip(splits, x)], fontsize=7)
        ax.set_xlabel("test set (mean reference tokens)")
        ax.set_ylabel("ChrF++")
        title = {"none": "switch only, no fine-tuning", "full": "full fine-tuning", "lora": "LoRA",
                 "minlora": "minLoRA"}[regime]
        ax.set_title(f"{spec.name}, {title}: " + ", ".join(f"{g} ({styles[g]})" for g in groups), fontsize=9)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(outdir / f"plot_{regime}.png", dpi=110)
        plt.close(fig)


# ---------------------------------------------------------------- main

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
            meta = work / f"seed{seed}" / cell_name(cell) / "cell.json"
            if meta.is_file():
                found.append(json.loads(meta.read_text()))
        return found

    bases, failed = {}, []
    if args.base_only:
        for seed in args.seeds:
            bases[seed] = train_base(spec, work, cfg, seed, threads(args), args.base_hours)
            log(f"seed {seed} base: {bases[seed]['updates']} updates, valid "
                + ", ".join(f"{v['updates']}:{v['loss']:.2f}" for v in bases[seed]["valid"]))
            base_curve(spec, work, cfg, data_info, seed, threads(args))
        return
    if args.reverse and not args.report_only:  # the second runner trains the other seeds' bases meanwhile
        for seed in reversed(args.seeds):
            bases[seed] = train_base(spec, work, cfg, seed, threads(args))
    for seed, cell in ([] if args.report_only else jobs):
        if seed not in bases:
            bases[seed] = train_base(spec, work, cfg, seed, threads(args))
            log(f"seed {seed} base: {bases[seed]['wall_seconds']:.0f}s, {bases[seed]['params_total']} parameters")
        try:
            run_cell(spec, work, cfg, data_info, seed, cell, threads(args), bases[seed])
        except RuntimeError as err:  # a failed cell is reported, the others still run
            log(f"seed {seed} {cell_name(cell)} FAILED: {err}")
            failed.append(f"seed {seed} {cell_name(cell)}")
            continue
        report(spec, work, collect(), data_info, cfg, args, outdir, time.time() - start)  # partial results as they come
    cells = collect()
    missing = [f"s{s}:{cell_name(c)}" for s, c in jobs
               if not (work / f"seed{s}" / cell_name(c) / "cell.json").is_file()]
    if failed:
        log(f"FAILED cells (see their train.log/generate.txt): {', '.join(failed)}")
    if missing:
        log(f"cells not finished: {', '.join(missing)}")
    if not cells:
        sys.exit("no finished cells")
    text = report(spec, work, cells, data_info, cfg, args, outdir, time.time() - start)
    print(text)
    log(f"done in {time.time() - start:.0f}s; results in {outdir}")
