"""Put adapters on a built fairseq model and freeze the rest (the forms of its weights and the
moves between them: ``state.py``).

Frozen parameters get ``requires_grad=False``: fairseq builds its optimizer from trainable
parameters only, and DistributedDataParallel only registers gradient hooks (all-reduce) for
parameters that require gradients, so frozen weights are neither updated nor communicated.
"""
from collections import OrderedDict

from fairseq.models.transformer import TransformerEncoderBase
from torch import nn

from ..modules.unfused_layer import unfuse_encoder
from . import loralib_layers, minlora
from .spec import ALL_LINEAR, describe
from .state import accept_base_state, is_adapter_key


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
    model.register_load_state_dict_pre_hook(accept_base_state)
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


def count(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def summary(model):
    trainable, total = count(model)
    return (f"LoRA {describe(model.lora_spec)}: {len(model.lora_spec['adapted'])} layers adapted; "
            f"trainable parameters {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
