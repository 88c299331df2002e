"""The fork's parameter names, rewritten to fairseq's.

Two things differ from a stock fairseq state dict, both decided by the saved options:

- ``attn_implementation`` ``fast_fused``/``fast_gqa_fused`` keeps one ``qkv_proj`` per
  self-attention (rows: query, key, value) and one ``kv_proj`` per cross-attention (key,
  value); they are split into fairseq's ``q_proj``/``k_proj``/``v_proj`` rows unchanged.
- ``lora_args``: the fork's ``LoRALinear`` adds ``scale * B @ A`` to its weight on ``eval()``
  and its ``save_checkpoint`` calls ``model.eval()`` first, so every saved weight already holds
  the merged product; the ``lora_A``/``lora_B`` tensors saved beside it are the record of the
  adapters, not a part of the model to apply again. They are dropped, after checking that each
  pair sits on a layer named by ``target_modules`` and fits it.
"""
import re

FUSED = {"self_attn.qkv_proj": ("q_proj", "k_proj", "v_proj"), "encoder_attn.kv_proj": ("k_proj", "v_proj")}


class ForkWeightsError(ValueError):
    pass


def _shape(tensor):
    return tuple(getattr(tensor, "shape", None) or ())


def drop_merged_adapters(weights, lora):
    """Remove the fork's saved adapters (already merged into the weights); returns how many."""
    targets = [t for t in str(lora.get("target_modules", "")).split(",") if t]
    rank = lora.get("r")
    dropped = 0
    for key in sorted(k for k in weights if k.endswith((".lora_A", ".lora_B"))):
        module = key.rsplit(".", 1)[0]
        base = weights.get(f"{module}.weight")
        if base is None or not any(t in module for t in targets):
            raise ForkWeightsError(f"{key} is not on a layer that --lora-args target_modules "
                                   f"{','.join(targets) or '(none)'} names")
        tensor = weights[key]
        fits = (tensor.shape == (rank, base.shape[1]) if key.endswith("lora_A")
                else tensor.shape == (base.shape[0], rank))
        if not fits:
            raise ForkWeightsError(f"{key} has shape {tuple(tensor.shape)}, which does not fit rank {rank} on "
                                   f"{module}.weight {tuple(base.shape)}")
        dropped += 1
    for key in [k for k in weights if k.endswith((".lora_A", ".lora_B"))]:
        del weights[key]
    return dropped


def split_fused(weights):
    """Split fused projections into fairseq's; returns how many were split. Refuses a fused
    tensor whose rows do not divide evenly, and a fused layer that also has unfused weights."""
    split = 0
    pattern = re.compile(r"(.*)\.(self_attn\.qkv_proj|encoder_attn\.kv_proj)\.(weight|bias)$")
    for key in [k for k in weights if pattern.match(k)]:
        prefix, fused, kind = pattern.match(key).groups()
        attn = fused.split(".")[0]
        names = FUSED[fused]
        tensor = weights.pop(key)
        if not _shape(tensor) or not hasattr(tensor, "chunk"):
            raise ForkWeightsError(f"{key} is {'a 0-d tensor' if hasattr(tensor, 'chunk') else type(tensor).__name__}, "
                                   f"not a fused projection with rows for {', '.join(names)}")
        if tensor.shape[0] % len(names):
            raise ForkWeightsError(f"{key} has {tensor.shape[0]} rows, not a multiple of {len(names)}")
        for name, part in zip(names, tensor.chunk(len(names), dim=0)):
            target = f"{prefix}.{attn}.{name}.{kind}"
            if target in weights:
                raise ForkWeightsError(f"{key} and {target} are both in the checkpoint")
            weights[target] = part
        split += 1
    return split
