"""Training commands: the sinusoidal base (to a plateau of its validation loss) and, per cell,
the fine-tuning or the switch alone."""
import json
import re
from pathlib import Path

from .data import ft_data_name
from .runner import PLUGIN, relpos, relpos_json, run, wait_for, write_atomic
from .settings import ARCH, COMMON_TRAIN, OPTIM, ft_data_key


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


def train_base(spec, work, cfg, seed, threads, hours=None, updates=None):
    save = work / f"seed{seed}" / "base"
    return wait_for(work, f"seed{seed}-base", save / "train.json",
                    lambda: _train_base(spec, work, cfg, seed, threads, save, hours, updates))


def base_updates_of(work, seed):
    """The updates a finished base trained, or None."""
    done = work / f"seed{seed}" / "base" / "train.json"
    return json.loads(done.read_text())["updates"] if done.is_file() else None


def _train_base(spec, work, cfg, seed, threads, save, hours=None, updates=None):
    """Train the base to a plateau of its validation loss (fairseq's ``--patience``: no new best
    in that many validations), or ``base_updates`` (``updates`` if fewer), or ``hours`` of training
    in all (fairseq's ``--stop-time-hours``, counted across resumed runs). A re-run resumes from
    ``checkpoint_last.pt``; the interval checkpoints are kept for the learning curve
    (:func:`base_curve`)."""
    save.mkdir(parents=True, exist_ok=True)
    o = OPTIM["base"]
    every = cfg.get("base_validate_interval", cfg["base_updates"])
    wall = run("train", [work / "data" / "base-bin", "--user-dir", PLUGIN, "--task", "translation",
                         "--arch", "transformer", *shape_args(spec, cfg), *COMMON_TRAIN,
                         *positions_args(cfg["base_positions"]),
                         "--lr-scheduler", "inverse_sqrt", "--lr", o["lr"], "--warmup-updates", o["warmup"],
                         "--max-tokens", cfg["max_tokens"], "--max-update", min(cfg["base_updates"], updates) if updates else cfg["base_updates"],
                         "--seed", seed,
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


def finetune(spec, work, cfg, seed, cell, save, threads, base_seed=None):
    """Fine-tune (or, regime none, just switch) the base of seed ``base_seed`` (default: ``seed``)
    into ``save`` with fairseq's ``--seed seed``; returns training info."""
    regime, positions, variant = (cell + (None,))[:3]
    if regime == "none":
        return switch_only(spec, work, cfg, seed, cell, save, threads)
    ft = spec.variants.get(variant, {})
    base = base_checkpoint(work, base_seed or seed, ft.get("base_checkpoint"))
    updates = ft.get("ft_updates", cfg["ft_updates"])
    args = [work / "data" / ft_data_name(ft_data_key(variant, ft)), "--user-dir", PLUGIN,
            "--arch", ARCH[positions], "--finetune-from-model", base, *COMMON_TRAIN,
            *positions_args(ft.get("ft_positions", cfg["ft_positions"])),
            "--max-tokens", ft.get("max_tokens", cfg["max_tokens"]), "--seed", seed, "--save-dir", save,
            "--disable-validation"]
    if positions == "sinusoidal":
        args += shape_args(spec, cfg)  # the stock transformer does not read its shape from the checkpoint
    o = OPTIM[regime]
    args += ["--lr-scheduler", "inverse_sqrt", "--lr", o["lr"], "--warmup-updates", o["warmup"],
             "--max-update", updates]
    if regime == "full":
        args += ["--task", "translation"]
    else:
        # each style with its own defaults (lora: k_proj,v_proj rank 8 alpha 16, the authors'
        # fork; minlora: every linear weight, rank 4 alpha 1)
        args += ["--task", "translation_lora", "--lora-style", regime]
    args += list(ft.get("train", ()))  # last, so that a variant's option overrides the grid's
    wall = run("train", args, save / "train.log", threads)
    info = dict(parse_train_log(save / "train.log"), wall_seconds=round(wall, 1), threads=threads, updates=updates)
    if base_seed is not None and base_seed != seed or ft.get("base_checkpoint"):
        info["base"] = str(base.relative_to(work))
    return info


def base_checkpoint(work, seed, updates=None):
    """The base a cell fine-tunes: the best checkpoint, or the one saved at ``updates``."""
    base = work / f"seed{seed}" / "base"
    if updates is None:
        return base / "checkpoint_best.pt"
    found = sorted(base.glob(f"checkpoint_*_{updates}.pt"))
    if not found:
        raise RuntimeError(f"{base} has no checkpoint_*_{updates}.pt (the base's checkpoint at {updates} updates)")
    return found[0]


def switch_only(spec, work, cfg, seed, cell, save, threads):
    """Regime none: the base's weights, exactly, in the new architecture, written by the
    product's own ``fairseq-relpos convert`` (log in ``train.log``) with the fine-tuning cells'
    length limit; nothing trains. Returns the keys :func:`finetune` returns."""
    _, positions, variant = (cell + (None,))[:3]
    ft = spec.variants.get(variant, {})
    base = work / f"seed{seed}" / "base" / "checkpoint_best.pt"
    ckpt = save / "checkpoint_last.pt"
    wall = relpos("convert", ["--pe", positions, "--max-positions", ft.get("ft_positions", cfg["ft_positions"]),
                              base, ckpt], save / "train.log", threads)
    params = relpos_json("inspect", ["--json", ckpt], threads)["parameters"]
    return {"params_total": params, "params_trained": 0, "train_loop_seconds": 0.0, "final_train_loss": None,
            "wall_seconds": round(wall, 1), "threads": threads, "updates": 0}
