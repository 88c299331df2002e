"""fairseq's attention masks in the forms ``F.scaled_dot_product_attention`` runs fastest on.

fairseq hands self-attention a (T, S) ``attn_mask`` (its future mask in the decoder) and a (B, S)
``key_padding_mask``. The fused CPU/GPU kernels accept 4-D or 2-D masks only (a 3-D mask drops to
the unfused path, which materialises (B, H, T, S) scores), and ``is_causal`` beats any mask; an
ALiBi bias over reversed keys is a strided view (:meth:`ALiBi.strided_bias`). Boolean masks mean
"may attend" to the kernel and "may not" to fairseq.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def sdpa_mask(q, src_len, offset, attn_mask, key_padding_mask, causal, alibi, alibi_strided
              ) -> Tuple[Optional[Tensor], bool, bool]:
    """(attn_mask, is_causal, flip_keys) for scaled_dot_product_attention, in the cheapest form
    that keeps fairseq's semantics; ``alibi_strided``: the ALiBi bias may be a strided view over
    reversed keys (see :meth:`RelativeSelfAttention._alibi_strided`)."""
    tgt_len = q.size(2)
    if alibi is not None:
        if alibi_strided:
            # The bias depends on i - j only: over reversed keys it is a strided view.
            return alibi.strided_bias(tgt_len, src_len, offset, q.device, q.dtype, mask_future=causal), False, True
        return dense_mask(q, src_len, offset, attn_mask, key_padding_mask, alibi), False, False
    if key_padding_mask is None:
        if attn_mask is None:
            return None, False, False
        if causal:
            return None, True, False
        return as_additive(attn_mask, q.dtype), False, False
    keep = ~key_padding_mask[:, None, None, :]
    if attn_mask is None:
        return keep, False, False
    if causal:
        future = torch.ones(tgt_len, src_len, dtype=torch.bool, device=q.device).triu_(1)
        return keep & ~future, False, False
    return as_additive(attn_mask, q.dtype) + as_additive(~keep, q.dtype), False, False


def dense_mask(q, src_len, offset, attn_mask, key_padding_mask, alibi):
    """One additive float mask broadcastable to (B, H, T, S), always 4-D: fairseq's attn_mask
    and key padding as -inf, plus the ALiBi bias (``alibi`` may be None)."""
    mask = None
    if attn_mask is not None:
        mask = as_additive(attn_mask, q.dtype)[None, None]
    if key_padding_mask is not None:
        pad = as_additive(key_padding_mask, q.dtype)[:, None, None, :]
        mask = pad if mask is None else mask + pad
    if alibi is not None:
        bias = alibi(q.size(2), src_len, offset, q.device, q.dtype)[None]
        mask = bias if mask is None else mask + bias
    return mask


def key_ranges(key_padding_mask: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
    """(start, end) of each row's unpadded keys when they are one contiguous range (fairseq's
    left or right padding), else None."""
    real = ~key_padding_mask
    count = real.sum(1)
    if not bool((count > 0).all()):
        return None
    starts = real.int().argmax(1)
    ends = starts + count
    positions = torch.arange(real.size(1), device=real.device)
    inside = (positions >= starts[:, None]) & (positions < ends[:, None])
    return (starts, ends) if torch.equal(inside, real) else None


def as_additive(mask: Tensor, dtype) -> Tensor:
    """fairseq's mask (True or -inf: may not attend) as an additive float mask."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float("-inf"))
    return mask.to(dtype)


def is_future_mask(mask: Tensor, tgt_len: int, src_len: int) -> bool:
    """Whether ``mask`` is fairseq's future mask (-inf, or True, strictly above the diagonal,
    0 / False elsewhere), so attention may use ``is_causal`` instead.

    fairseq's decoder hands every layer, in every forward pass, a fresh ``[:T, :T]`` view of
    one buffer it keeps, so the O(T^2) check is remembered on that buffer itself (an attribute,
    so it lives and dies with the buffer and no module-level reference keeps a mask alive), keyed
    by the view's place, shape, strides, dtype and version counter (shared with the buffer, so
    any in-place edit is seen): it runs again only when the buffer changes."""
    if tgt_len != src_len or mask.dim() != 2 or mask.shape != (tgt_len, src_len):
        return False
    owner = mask if mask._base is None else mask._base
    key = (mask.data_ptr(), mask.shape, mask.stride(), mask.dtype, mask._version)
    seen = getattr(owner, "_relpos_future_check", None)
    if seen is not None and seen[0] == key:
        return seen[1]
    upper = torch.ones(tgt_len, src_len, dtype=torch.bool, device=mask.device).triu_(1)
    if mask.dtype == torch.bool:
        verdict = bool(torch.equal(mask, upper))
    else:
        verdict = bool(torch.equal(torch.isneginf(mask), upper)) and not bool(mask.masked_fill(upper, 0).any())
    owner._relpos_future_check = (key, verdict)
    return verdict
