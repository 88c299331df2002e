"""``fairseq-relpos convert``'s switch: a saved checkpoint rewritten to other positions."""
from argparse import Namespace

from ..checkpoints import model_args
from ..modules.unfused_layer import drop_fused_copies
from ..positions import DEFAULTS, applies
from . import lora_transformer
from .checkpoint_surgery import RELATIVE_OPTIONS, CheckpointMismatchError, drop_absolute_positions, position_kind
from .relative_transformer import relative_architecture


def switch_positions(state, positions, options, max_positions=None):
    """Rewrite a loaded checkpoint in place to ``positions`` ('rope', 'alibi', 'nope' or
    'sinusoidal'). ``options`` are relative-position options to set (None = keep the
    checkpoint's if they apply to ``positions``, else the default). Weights are untouched but for sinusoidal buffers and the fused
    copies fairseq 0.12.2 saves (``modules.unfused_layer``), both derived. A LoRA
    checkpoint keeps its adapters, their spec and the model name that re-wraps them
    (``models.lora_transformer``); only ``arch`` changes, so it still loads without --task."""
    args = model_args(state)
    adapted = args.get("_name") == lora_transformer.NAME
    current = position_kind(args, state["model"])
    if current == "learned":
        raise CheckpointMismatchError("the checkpoint has learned positional embeddings; only "
                                      "sinusoidal or relative checkpoints can be converted")
    if positions == "sinusoidal":
        if current == "sinusoidal":
            raise ValueError("the checkpoint already has sinusoidal positions")
        for key in RELATIVE_OPTIONS:
            args.pop(key, None)
        args.update(_name=lora_transformer.NAME if adapted else "transformer", arch="transformer",
                    no_token_positional_embeddings=False)
    else:
        drop_absolute_positions(state["model"])
        drop_fused_copies(state["model"])
        # The old scheme's options (a RoPE theta in a checkpoint switched to ALiBi) do not follow
        # it: they would mean nothing there and be refused as options the user never gave.
        new = Namespace(**{k: v for k, v in args.items() if k not in DEFAULTS or applies(k, positions)})
        new.relative_positions = positions
        for key, value in options.items():
            if value is not None:
                setattr(new, key, value)
        relative_architecture(new)
        args.clear()
        # fairseq keys cfg.model._name by architecture, not by model.
        args.update(vars(new), _name=lora_transformer.NAME if adapted else f"transformer_{positions}",
                    arch=f"transformer_{positions}")
    if max_positions is not None:
        task = state["cfg"].get("task") if isinstance(state.get("cfg"), dict) else None
        for where in (args, task):
            if where is not None:
                where["max_source_positions"] = where["max_target_positions"] = max_positions
    return current
