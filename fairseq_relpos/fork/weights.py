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
    """Remove the fork's saved adapters (already merged into the weights); returns how many.
    Each must come as a pair (A and B) on a targeted layer, with the shapes rank ``r`` gives it
    there: anything else is not what the fork's LoRALinear saves."""
    targets = [t for t in str(lora.get("target_modules", "")).split(",") if t]
    rank = lora.get("r")
    keys = sorted(k for k in weights if k.endswith((".lora_A", ".lora_B")))
    if keys and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 1):
        raise ForkWeightsError(f"--lora-args r must be a positive integer (the rank of the saved adapters), "
                               f"got {str(rank)[:40]!r}")
    dropped = 0
    for key in keys:
        module, part = key.rsplit(".", 1)
        base = weights.get(f"{module}.weight")
        if base is None or not any(t in module for t in targets):
            raise ForkWeightsError(f"{key} is not on a layer that --lora-args target_modules "
                                   f"{','.join(targets) or '(none)'} names")
        other = f"{module}.lora_{'B' if part == 'lora_A' else 'A'}"
        if other not in weights:
            raise ForkWeightsError(f"{key} has no {other.rsplit('.', 1)[1]} beside it: the fork saves an adapter "
                                   "as the pair lora_A, lora_B")
        shape, rows_cols = _shape(weights[key]), _shape(base)
        if len(rows_cols) != 2:
            raise ForkWeightsError(f"{module}.weight has shape {rows_cols}, not a matrix that LoRA adapts")
        expected = (rank, rows_cols[1]) if part == "lora_A" else (rows_cols[0], rank)
        if shape != expected:
            raise ForkWeightsError(f"{key} has shape {shape}; rank {rank} (--lora-args r) on {module}.weight "
                                   f"{rows_cols} gives {part} the shape {expected}")
        dropped += 1
    for key in [k for k in weights if k.endswith((".lora_A", ".lora_B"))]:
        del weights[key]
    return dropped


def _check_fused_shape(key, tensor, out_proj, attn, kind, parts):
    """The fused tensor has ``parts`` blocks of the attention's dimension (its out_proj's rows),
    square ones for self-attention: the shape fairseq's q/k/v_proj will need when it loads them."""
    if len(_shape(out_proj)) != 2:
        return  # no out_proj to measure by: the strict load that follows names what is missing
    dim = out_proj.shape[0]
    if kind == "bias":
        expected, ok = f"({parts * dim},)", _shape(tensor) == (parts * dim,)
    elif attn == "self_attn":
        expected, ok = f"({parts * dim}, {dim})", _shape(tensor) == (parts * dim, dim)
    else:  # cross-attention keys and values come from the encoder, of its own dimension
        expected = f"({parts * dim}, the encoder's dimension)"
        ok = len(_shape(tensor)) == 2 and tensor.shape[0] == parts * dim
    if not ok:
        raise ForkWeightsError(f"{key} has shape {_shape(tensor)}; the attention's out_proj.weight "
                               f"{_shape(out_proj)} gives {parts} blocks of {dim}: {expected}")


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
        _check_fused_shape(key, tensor, weights.get(f"{prefix}.{attn}.out_proj.weight"), attn, kind, len(names))
        for name, part in zip(names, tensor.chunk(len(names), dim=0)):
            target = f"{prefix}.{attn}.{name}.{kind}"
            if target in weights:
                raise ForkWeightsError(f"{key} and {target} are both in the checkpoint")
            weights[target] = part
        split += 1
    return split
