"""A translation_lora checkpoint as a plain one: the adapters folded into the weights
(``fairseq-relpos merge``, and ``export`` before it converts)."""
from .state import merged_state


def adapter_spec(state):
    """The adapter spec of a translation_lora checkpoint's state (None for any other)."""
    cfg = state.get("cfg")
    return getattr(cfg["model"] if cfg else None, "lora_spec", None)


def merged_checkpoint(state, path="the checkpoint"):
    """A translation_lora checkpoint's state as a plain one: adapters folded in, no optimizer.
    A checkpoint missing one of its adapters' tensors (a lone lora_A) is refused, naming it."""
    try:
        weights = merged_state(state["model"], adapter_spec(state))
    except KeyError as err:
        raise ValueError(f"{path} has no {err.args[0]}, which its adapters need (saved by --task "
                         "translation_lora, the checkpoint holds every adapter tensor)") from None
    result = {k: v for k, v in state.items() if k != "last_optimizer_state"}
    result.update(model=weights, cfg=_plain_cfg(state["cfg"]))
    return result


def _plain_cfg(cfg):
    """The checkpoint's config as if trained with --task translation on the base arch."""
    model = cfg["model"]
    for key in [k for k in vars(model) if k.startswith("lora_")]:
        delattr(model, key)
    model._name, model.task = model.arch, "translation"
    # only what --task translation knows: the LoRA task's own options (adapters, document
    # decoding) would make fairseq refuse the config as the translation task's
    from fairseq.tasks.translation import TranslationConfig

    task = {k: v for k, v in cfg["task"].items() if k in TranslationConfig.__dataclass_fields__}
    task["_name"] = "translation"
    return dict(cfg, model=model, task=task)

