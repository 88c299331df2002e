"""What gets adapters and how: one plain dict (saved in checkpoints, so only plain types).

Each style brings its source's defaults; an option left unset takes the chosen style's
default, never the other style's.
"""
STYLE_DEFAULTS = {
    # the authors' fork (loralib on attention projections)
    "lora": dict(rank=8, alpha=16.0, dropout=0.05, targets=["k_proj", "v_proj"]),
    # minLoRA: every linear weight
    "minlora": dict(rank=4, alpha=1.0, dropout=0.0, targets=["all-linear"]),
}
ALL_LINEAR = "all-linear"


def resolve(style, rank=None, alpha=None, dropout=None, targets=None,
            train_biases=False, train_layernorms=False):
    if style not in STYLE_DEFAULTS:
        raise ValueError(f"unknown LoRA style {style!r}; use one of {', '.join(STYLE_DEFAULTS)}")
    defaults = STYLE_DEFAULTS[style]
    rank = defaults["rank"] if rank is None else rank
    alpha = defaults["alpha"] if alpha is None else alpha
    dropout = defaults["dropout"] if dropout is None else dropout
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",")]
    targets = list(defaults["targets"]) if targets is None else [t for t in targets if t]
    if int(rank) != rank or rank <= 0:
        raise ValueError(f"--lora-rank must be a positive integer, got {rank}")
    if alpha <= 0:
        raise ValueError(f"--lora-alpha must be positive, got {alpha}")
    if not 0 <= dropout < 1:
        raise ValueError(f"--lora-dropout must be in [0, 1), got {dropout}")
    if not targets:
        # the authors' fork wraps every layer when given an empty list; say so instead
        raise ValueError("--lora-targets is empty: name modules (e.g. k_proj,v_proj) or all-linear")
    return dict(style=style, rank=int(rank), alpha=float(alpha), dropout=float(dropout), targets=targets,
                train_biases=bool(train_biases), train_layernorms=bool(train_layernorms))


def describe(spec):
    return (f"{spec['style']} rank {spec['rank']} alpha {spec['alpha']:g} dropout {spec['dropout']:g} "
            f"on {','.join(spec['targets'])}")
