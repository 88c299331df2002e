"""Put adapters on a built fairseq model, freeze the rest, and move between the three forms of
its weights: the wrapped state dict, the plain (merged) state dict, and adapters alone.

Frozen parameters get ``requires_grad=False``: fairseq builds its optimizer from trainable
parameters only, and DistributedDataParallel only registers gradient hooks (all-reduce) for
parameters that require gradients, so frozen weights are neither updated nor communicated.
"""
from collections import OrderedDict

from fairseq.models.transformer import TransformerEncoderBase
from torch import nn

from ..positions import POSITIONS
from ..modules.unfused_layer import unfuse_encoder
from . import loralib_layers, minlora
from .spec import ALL_LINEAR, describe

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


def select(model, targets):
    """{module name: module} for every Linear/Embedding a target names: ``all-linear``, a module
    name (``k_proj``) or a dotted suffix (``decoder.output_projection``)."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))}
    chosen = {}
    for target in targets:
        if target == ALL_LINEAR:
            hits = {n: m for n, m in layers.items() if isinstance(m, nn.Linear)}
        else:
            hits = {n: m for n, m in layers.items() if n == target or n.endswith("." + target)}
            if not hits:
                others = [n for n, _ in model.named_modules() if n == target or n.endswith("." + target)]
                if others:
                    raise ValueError(f"--lora-targets {target!r} names {others[0]}, which is not a "
                                     "Linear or Embedding layer")
                names = sorted({n.rsplit(".", 1)[-1] for n in layers})
                raise ValueError(f"--lora-targets {target!r} matches no layer of this model; "
                                 f"its Linear/Embedding layers are named: {', '.join(names)}")
        chosen.update(hits)
    return chosen


def _tied_groups(model, chosen):
    """Chosen modules grouped by the weight tensor they hold, each group extended with every
    other module holding that tensor (tied embeddings / output projection)."""
    holders = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            holders.setdefault(id(module.weight), {})[name] = module
    groups = {}
    for module in chosen.values():
        groups[id(module.weight)] = holders[id(module.weight)]
    return list(groups.values())


def _replace(model, old, new):
    for parent in model.modules():
        for attr, child in list(parent._modules.items()):
            if child is old:
                setattr(parent, attr, new)


def wrap(model, spec):
    """Add adapters per ``spec`` (see ``spec.resolve``) and freeze everything else, in place."""
    if getattr(model, "lora_spec", None) is not None:
        raise ValueError("the model already has adapters: refusing to apply them twice")
    if isinstance(getattr(model, "encoder", None), TransformerEncoderBase):
        # fairseq 0.12.2's fused encoder fast path would run the base weights without adapters.
        unfuse_encoder(model.encoder)
    base_shapes = OrderedDict((k, list(v.shape)) for k, v in model.state_dict().items())
    rank, alpha, dropout = spec["rank"], spec["alpha"], spec["dropout"]
    adapted = {}
    chosen = select(model, spec["targets"])
    for name, module in chosen.items():  # a larger rank only adds parameters that cannot help
        most = min(module.weight.shape)
        if rank > most:
            raise ValueError(f"--lora-rank {rank} is larger than the layer {name} allows: its weight is "
                             f"{tuple(module.weight.shape)}, so an update of it has rank <= {most}; "
                             f"use --lora-rank {most} or less")
    for group in _tied_groups(model, chosen):
        if spec["style"] == "minlora":
            minlora.add(list(group.values()), rank, alpha, dropout)
        else:
            if len(group) > 1:
                raise ValueError(f"{' and '.join(group)} share one weight (tied embeddings); loralib layers "
                                 "cannot adapt a tied matrix in both places. Use --lora-style minlora, "
                                 "or leave these layers out of --lora-targets")
            (name, module), = group.items()
            _replace(model, module, loralib_layers.replacement(module, rank, alpha, dropout))
        adapted.update({n: "embedding" if isinstance(m, nn.Embedding) else "linear" for n, m in group.items()})
    if spec["style"] == "lora":
        loralib_layers.route_attention_through_modules(model)
    _freeze(model, spec)
    state = model.state_dict()
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    named = dict(model.named_parameters(remove_duplicate=False))
    model.lora_spec = dict(spec, adapted=adapted,
                           trainable=[k for k in state if k in named and id(named[k]) in trainable])
    model.lora_base_shapes = base_shapes
    model.lora_pinned = set()
    model.register_load_state_dict_pre_hook(_accept_base_state)
    return model


def _freeze(model, spec):
    for p in model.parameters():
        p.requires_grad = False
    for name, p in model.named_parameters():
        if is_adapter_key(name):
            p.requires_grad = True
    for module in model.modules():
        if spec["train_layernorms"] and isinstance(module, nn.LayerNorm):
            for p in module.parameters(recurse=False):
                p.requires_grad = True
        if spec["train_biases"] and not isinstance(module, nn.LayerNorm):
            bias = module._parameters.get("bias")
            if bias is not None:
                bias.requires_grad = True


def _accept_base_state(model, state_dict, prefix, *_):
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


def count(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def summary(model):
    trainable, total = count(model)
    return (f"LoRA {describe(model.lora_spec)}: {len(model.lora_spec['adapted'])} layers adapted; "
            f"trainable parameters {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")


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
