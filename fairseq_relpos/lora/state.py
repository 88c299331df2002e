"""The three forms of a wrapped model's weights: the wrapped state dict, the plain (merged) state
dict of its base, and the adapters alone (``merge --adapters-only``), and the moves between them.

Names: loralib keeps a layer's weight as ``weight`` beside ``lora_A``/``lora_B``; minLoRA's
parametrization moves it to ``parametrizations.weight.original``. :func:`base_key` maps either
back to the plain model's name, so a plain checkpoint loads into a wrapped model strictly.
"""
from collections import OrderedDict

from torch import nn

from ..positions import POSITIONS
from . import loralib_layers, minlora
from .spec import describe

ADAPTER_NAMES = ("lora_A", "lora_B")


def is_adapter_key(key):
    return key.rsplit(".", 1)[-1] in ADAPTER_NAMES


def base_key(key):
    """The plain model's name for a wrapped state-dict key (None for adapters)."""
    if is_adapter_key(key):
        return None
    if key.endswith(minlora.ORIGINAL):
        return key[: -len(minlora.ORIGINAL)] + ".weight"
    return key


def accept_base_state(model, state_dict, prefix, *_):
    """Let the wrapped model load a plain checkpoint of its base (to start fine-tuning, or to
    decode base + adapters file): exactly the base's keys are renamed to the wrapped ones and
    the adapters keep their current values. Any other key set is left for strict loading to
    refuse; nothing is ever loaded non-strictly."""
    if prefix or set(state_dict) != set(model.lora_base_shapes):
        return
    current = model.state_dict()
    for key in current:
        plain = base_key(key)
        if plain is None or key in model.lora_pinned:
            state_dict[key] = current[key]
        elif plain != key:
            state_dict[key] = state_dict[plain]
    for key in set(state_dict) - set(current):
        del state_dict[key]


def merged_state(state, spec):
    """The plain model's state dict: adapters folded into their weights (fp32 arithmetic,
    original dtype), adapter tensors dropped, names back to the base's."""
    scaling = spec["alpha"] / spec["rank"]
    merged = OrderedDict()
    for key, value in state.items():
        plain = base_key(key)
        if plain is None:
            continue
        module = plain[: -len(".weight")] if plain.endswith(".weight") else None
        if spec["style"] == "minlora" and key.endswith(minlora.ORIGINAL):
            value = minlora.merge_state(state, module + ".", scaling)
        elif spec["style"] == "lora" and module in spec["adapted"]:
            value = loralib_layers.merged_weight(value, state[module + ".lora_A"], state[module + ".lora_B"],
                                                 scaling, spec["adapted"][module] == "embedding")
        merged[plain] = value
    return merged


def adapters_payload(state, spec, arch):
    """Everything that trained (adapters, and biases/LayerNorms if they trained), plus what
    identifies the base they belong to."""
    base = merged_state(state, spec)
    return {"lora_spec": spec, "arch": arch,
            "base_shapes": {k: list(v.shape) for k, v in base.items()},
            "tensors": OrderedDict((k, state[k]) for k in spec["trainable"])}


def check_same_base(payload, arch, base_shapes, path):
    problems = []
    if payload["arch"] != arch:
        problems.append(f"architecture {payload['arch']} vs {arch}")
    theirs, ours = payload["base_shapes"], {k: list(v) for k, v in base_shapes.items()}
    problems += [f"{k} missing from this model" for k in theirs if k not in ours][:5]
    problems += [f"{k} not in the adapters' base" for k in ours if k not in theirs][:5]
    problems += [f"{k}: {theirs[k]} vs {ours[k]}" for k in theirs if k in ours and theirs[k] != ours[k]][:5]
    if problems:
        raise ValueError(f"{path} was made for a different base model:\n  " + "\n  ".join(problems)
                         + _switch_advice(payload["arch"], arch))


def _switch_advice(theirs, ours):
    """How to give a base the relative positions the adapters were trained with."""
    pe = next((p for p in POSITIONS if theirs == f"transformer_{p}"), None)
    if pe is None or ours == theirs:
        return ""
    return (f"\nthe adapters were trained with {pe} positions: switch the base to them first, with "
            f"`fairseq-relpos convert --pe {pe} BASE.pt BASE-{pe}.pt` to decode (--path BASE-{pe}.pt), "
            f"or --arch {theirs} to fine-tune")


def load_adapters(model, payload, arch, path):
    """Apply a ``merge --adapters-only`` file to a freshly wrapped model (strictly)."""
    check_same_base(payload, arch, model.lora_base_shapes, path)
    spec = model.lora_spec
    ours = {k: v for k, v in spec.items() if k not in ("adapted", "trainable")}
    theirs = {k: v for k, v in payload["lora_spec"].items() if k not in ("adapted", "trainable")}
    if ours != theirs or payload["lora_spec"]["adapted"] != spec["adapted"]:
        raise ValueError(f"{path} holds adapters ({describe(payload['lora_spec'])}) that do not match "
                         f"the ones configured ({describe(spec)})")
    state = model.state_dict()
    if set(payload["tensors"]) != set(spec["trainable"]):
        raise ValueError(f"{path} does not hold exactly this configuration's trainable tensors")
    state.update(payload["tensors"])
    nn.Module.load_state_dict(model, state, strict=True)  # already in wrapped names: no fairseq upgrade
    model.lora_pinned = set(payload["tensors"])
