"""Checkpoints of the authors' fork of fairseq, read as checkpoints of this plugin.

:func:`translate` rewrites a loaded fork checkpoint in memory (options and parameter names),
so that fairseq-generate, fairseq-train --finetune-from-model/--restore-file, ``inspect``,
``convert`` and ``export`` take it as it is; the model then loads strictly as any other.
"""
import argparse
import functools
import logging

from .options import FORK, FORK_ONLY, ForkOptionError, is_fork, plugin_options
from .weights import ForkWeightsError, drop_merged_adapters, split_fused

NOTES = "fairseq_relpos_fork_notes"  # top-level key of a translated state: what was mapped
logger = logging.getLogger(__name__)

__all__ = ["FORK", "NOTES", "ForkOptionError", "ForkWeightsError", "is_fork", "translate", "translate_on_load"]


def _model_options(state):
    cfg = state.get("cfg")
    model = cfg.get("model") if cfg is not None and hasattr(cfg, "get") else None
    if model is None:
        model = state.get("args")
    return model


def translate(state, path="the checkpoint", overrides=None):
    """Rewrite a fork checkpoint's state in place as this plugin's; any other state is left as
    it is. Returns the state. ``overrides`` (fairseq's ``arg_overrides``: ``--model-overrides``
    and the like, already applied to the state by fairseq) win over the options mapped from
    the fork's, as they win over a plugin checkpoint's own."""
    model = _model_options(state)
    if isinstance(model, argparse.Namespace):
        args = vars(model)
    elif isinstance(model, dict):
        args = model
    else:
        return state  # a structured (hydra) model config: not what the fork saves for a transformer
    if not is_fork(args):
        return state
    try:
        options, lora, fused, notes = plugin_options(args)
        weights = state["model"]
        dropped = drop_merged_adapters(weights, lora) if lora is not None else 0
        split = split_fused(weights) if fused else 0
    except (ForkOptionError, ForkWeightsError) as err:
        raise type(err)(f"{path}: {err}") from None
    if dropped:
        notes.append(f"{dropped} LoRA tensors dropped: the fork saves after eval(), which merged them "
                     "into the weights")
    if split:
        notes.append(f"{split} fused projections split into fairseq's q/k/v_proj")
    if (dropped or split) and state.pop("last_optimizer_state", None) is not None:
        notes.append("optimizer state dropped: it held the fork's own parameters")
    relative = options.get("relative_positions")
    for key in [k for k in args if k in FORK_ONLY]:
        del args[key]
    args.update(options)
    args.update({k: v for k, v in (overrides or {}).items() if k in options})
    if relative is not None:
        from ..models.relative_transformer import relative_architecture
        full = argparse.Namespace(**args)
        relative_architecture(full)  # fills and checks the plugin's defaults
        args.update(vars(full))
    state[NOTES] = notes
    return state


def translate_on_load(loader):
    """Wrap fairseq's ``load_checkpoint_to_cpu`` so that every fairseq command reads a fork
    checkpoint as this plugin's (see :func:`translate`)."""
    if getattr(loader, "_reads_fork_checkpoints", False):
        return loader

    @functools.wraps(loader)
    def load(path, *args, **kwargs):
        state = loader(path, *args, **kwargs)
        if isinstance(state, dict) and NOTES not in state:
            translate(state, path, kwargs.get("arg_overrides", args[0] if args else None))
            if NOTES in state:
                logger.info("%s: %s", path, "; ".join(state[NOTES]))
        return state

    load._reads_fork_checkpoints = True
    return load
