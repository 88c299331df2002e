"""The incremental (decoding) cache of keys and values, appended in place.

Keys enter it already rotated (RoPE), so a decoding step never re-rotates the past.
:func:`update` keeps fairseq's cache layout (``prev_key``, ``prev_value``,
``prev_key_padding_mask``; (B, H, S, D)) so beam reordering and fairseq's tools work unchanged.
"""
import torch
from fairseq.modules.multihead_attention import MultiheadAttention
from torch import Tensor


def update(attn, incremental_state, cache, k, v, key_padding_mask, offset):
    """Append this step's k, v (and padding) to ``attn``'s cache and store it; returns the
    keys, values and padding mask over the whole cached sequence."""
    bsz = k.size(0)
    if offset:
        k = append(cache["prev_key"], k)
        v = append(cache["prev_value"], v)
    prev_padding = cache.get("prev_key_padding_mask")
    if key_padding_mask is not None or prev_padding is not None:
        key_padding_mask = MultiheadAttention._append_prev_key_padding_mask(
            key_padding_mask=key_padding_mask,
            prev_key_padding_mask=prev_padding,
            batch_size=bsz,
            src_len=k.size(2),
            static_kv=False,
        )
    cache["prev_key"], cache["prev_value"] = k, v
    cache["prev_key_padding_mask"] = key_padding_mask
    attn._set_input_buffer(incremental_state, cache)
    return k, v, key_padding_mask


def append(cache: Tensor, new: Tensor) -> Tensor:
    """``torch.cat([cache, new], dim=2)``, written in place into spare room where there is some.

    fairseq's cache concatenates every step, which copies the whole cache: at 2000 positions
    that copy is most of a step's time. Here a cache that this function made remembers how far
    its buffer is filled; the next append writes into free slots when it is given the whole
    filled part (a second continuation of the same earlier state gets a copy, as before).
    Room is only made when a buffer of ours is outgrown (then an eighth more): a cache that
    beam search has reordered is a fresh tensor, and gets a plain concatenation, since a
    strided buffer would only slow down the next reorder's index_select. Only without
    autograd: an in-place write would break the graph of earlier steps."""
    filled, extra = cache.size(2), new.size(2)
    owner = cache if cache._base is None else cache._base
    ours = (
        getattr(owner, "_relpos_filled", None) == filled
        and cache.data_ptr() == owner.data_ptr()
        and cache.stride() == owner.stride()
        and owner.shape[:2] == new.shape[:2]
        and owner.shape[3:] == new.shape[3:]
        and owner.dtype == new.dtype
        and owner.device == new.device
    )
    if torch.is_grad_enabled() and (cache.requires_grad or new.requires_grad):
        return torch.cat([cache, new], dim=2)
    if ours and owner.size(2) >= filled + extra and (torch.is_inference_mode_enabled() or not owner.is_inference()):
        owner[:, :, filled:filled + extra] = new
        base = owner
    elif ours:
        size = filled + extra
        shape = list(new.shape)
        shape[2] = size + max(16, size // 8)
        base = new.new_empty(shape)
        base[:, :, :filled] = cache
        base[:, :, filled:size] = new
    else:
        base = torch.cat([cache, new], dim=2)
    base._relpos_filled = filled + extra
    return base if base.size(2) == filled + extra else base[:, :, :filled + extra]
