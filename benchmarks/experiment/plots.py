"""One plot per regime: ChrF++ by test set length, a line per position scheme and language group;
one of the document-share sweep; the bases' learning curves."""
import itertools
import statistics

from .runner import key_of, log
from .settings import REGIMES


COLOURS = {"sinusoidal": "tab:gray", "rope": "tab:blue", "alibi": "tab:orange", "nope": "tab:green"}
SWEEP_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:brown", "tab:olive")


def group_styles(groups):
    """A line style per language group, in order: the first (seen) solid."""
    return dict(zip(groups, ("-", "--", ":", "-.")))


def pyplot():
    """matplotlib's pyplot without a display, or None (with a log line) when it is not installed."""
    try:
        import logging

        logging.getLogger("matplotlib").setLevel(logging.WARNING)
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install matplotlib): no plots")
        return None
    return plt


def plot(spec, cells, splits, groups, ref, data_info, outdir):
    plt = pyplot()
    if plt is None:
        return
    styles = group_styles(groups)
    x = [ref[s]["mean"] for s in splits]
    for regime in REGIMES:
        mine = [c for c in cells if c["regime"] == regime]
        if not mine:
            continue
        fig, ax = plt.subplots(figsize=(8.4, 4.2))
        for key in dict.fromkeys(key_of(c) for c in mine):
            cs = [c for c in mine if key_of(c) == key]
            colour = COLOURS[key[1]]
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


def plot_doc_shares(spec, sweeps, splits, groups, outdir):
    """ChrF++ against the share of fine-tuning documents (``plot_doc_shares.png``), a panel per
    test set in ``splits``, a colour and marker per swept cell (regime and position scheme), a
    line style per language group (seen solid)."""
    plt = pyplot()
    if plt is None:
        return
    styles = group_styles(groups)
    markers = {"full": "o", "lora": "^", "minlora": "s"}
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits) + 2, 3.8), squeeze=False)
    shares = sorted({share for rows in sweeps.values() for share, _, _ in rows})
    for ax, split in zip(axes[0], splits):
        for ((regime, positions), rows), colour in zip(sweeps.items(), itertools.cycle(SWEEP_COLOURS)):
            for group in groups:
                points = [(share, c["scores"][split][group]["chrf++"]) for share, _, c in rows
                          if group in c["scores"][split]]
                ax.plot(*zip(*points), styles[group], marker=markers.get(regime, "o"), ms=4,
                        color=colour, label=f"{regime} {positions} ({group})")
        ax.set_xticks(shares)
        ax.set_xticklabels(["all" if s == 1 else f"{s:g}" for s in shares])
        ax.set(xlabel="share of the fine-tuning documents", ylabel="ChrF++", title=f"test set {split}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"{spec.name}: how little document data (" + ", ".join(f"{g} {styles[g]}" for g in groups) + ")",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(outdir / "plot_doc_shares.png", dpi=110)
    plt.close(fig)


def plot_base(spec, bases, curves, cols, outdir):
    """Validation loss (left) and verse ChrF++ per language group (right) against updates."""
    plt = pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for seed, info in bases.items():
        left.plot([v["updates"] for v in info["valid"]], [v["loss"] for v in info["valid"]], marker="o", ms=3,
                  label=f"seed {seed}")
        for col in cols:
            points = [p for p in curves[seed] if col in p["scores"]]
            right.plot([p["updates"] for p in points], [p["scores"][col]["chrf++"] for p in points], marker="o",
                       ms=3, ls="-" if col in ("all", *spec.groups) else ":", label=f"{col} (seed {seed})")
    left.set(xlabel="updates", ylabel="validation loss", title="validation loss")
    right.set(xlabel="updates", ylabel="verse ChrF++", title="verse ChrF++ (test books)")
    right.set_ylim(bottom=0)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    right.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"{spec.name}: the sinusoidal base", fontsize=9)
    fig.tight_layout()
    fig.savefig(outdir / "plot_base.png", dpi=110)
    plt.close(fig)
