"""Self-attention with relative positions, as a drop-in for fairseq's MultiheadAttention.

The swap keeps fairseq's parameters (q/k/v/out projections, same names and shapes) so a
sinusoidal checkpoint loads unchanged; only how queries meet keys changes. RoPE rotates
queries and keys, ALiBi adds a distance bias, NoPE does neither. Keys enter the
incremental cache already rotated, so a decoding step never re-rotates the past.

Speed notes (measured with benchmarks/speed.py): attention goes through
``F.scaled_dot_product_attention`` whenever no weights are asked for, and every mask is
handed to it in a shape its fused CPU/GPU kernels accept (4-D or 2-D; a 3-D mask silently
drops to the unfused path, which materialises (B, H, T, S) scores). fairseq's causal mask
becomes ``is_causal``; key padding stays a (B, 1, 1, S) boolean; the ALiBi bias of a whole
sequence is a strided (1, H, T, S) view of an (H, T + S - 1) vector (see
:meth:`ALiBi.strided_bias`), so no (H, T, S) tensor is ever built for it; a long padded batch
attends over each row's range of real keys with that view, so no (B, H, T, S) tensor either
(:meth:`RelativeSelfAttention._alibi_over_key_ranges`).
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from fairseq.modules.multihead_attention import MultiheadAttention
from torch import Tensor

from .alibi import ALiBi
from .rotary import RotaryEmbedding


class RelativeSelfAttention(MultiheadAttention):
    """fairseq self-attention whose positions come from ``rotary`` or ``alibi`` (or neither).

    Built by :meth:`adopt` from the stock module fairseq constructed, so that construction,
    initialisation and parameter names stay exactly fairseq's.
    """

    rotary: Optional[RotaryEmbedding]
    alibi: Optional[ALiBi]

    @classmethod
    def adopt(cls, attn: MultiheadAttention, rotary=None, alibi=None):
        if not isinstance(attn, MultiheadAttention) or not attn.self_attention:
            raise TypeError(f"relative positions go into fairseq self-attention, got {type(attn).__name__}")
        if attn.bias_k is not None or attn.add_zero_attn or getattr(attn, "use_xformers", False):
            raise ValueError("relative positions do not support add_bias_kv, add_zero_attn or xformers attention")
        attn.__class__ = cls
        # Registered as submodules for printing; they hold no parameters or buffers.
        attn.rotary, attn.alibi = rotary, alibi
        return attn

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor],
        value: Optional[Tensor],
        key_padding_mask: Optional[Tensor] = None,
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        need_weights: bool = True,
        static_kv: bool = False,
        attn_mask: Optional[Tensor] = None,
        before_softmax: bool = False,
        need_head_weights: bool = False,
    ):
        if before_softmax:
            raise NotImplementedError("before_softmax is not supported with relative positions")
        need_weights = need_weights or need_head_weights
        tgt_len, bsz, embed_dim = query.size()

        def split_heads(x):
            return x.view(-1, bsz, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

        saved = self._get_input_buffer(incremental_state) if incremental_state is not None else None
        offset = saved["prev_key"].size(2) if saved and saved.get("prev_key") is not None else 0
        whole = incremental_state is None and not need_weights
        causal = attn_mask is not None and offset == 0 and _is_future_mask(attn_mask, tgt_len, tgt_len)
        # ALiBi over a whole sequence attends over reversed keys (see _sdpa_mask): projecting
        # the reversed input gives them with one flip instead of a flip of k and one of v
        # (every large op is a fork/join of the thread team: benchmarks/README.md).
        reversed_kv = whole and self._alibi_strided(tgt_len, attn_mask, key_padding_mask, causal)
        kv_input = query.flip(0) if reversed_kv else query
        if whole and self.rotary is not None and self._can_project_into(query):
            q, k = self._rotated_qk(query)
        else:
            q, k = split_heads(self.q_proj(query)), split_heads(self.k_proj(kv_input))
            if self.rotary is not None:
                q, k = self.rotary(q, offset), self.rotary(k, offset)
        v = split_heads(self.v_proj(kv_input))
        if saved is not None:
            if offset:
                k = _append(saved["prev_key"], k)
                v = _append(saved["prev_value"], v)
            prev_padding = saved.get("prev_key_padding_mask")
            if key_padding_mask is not None or prev_padding is not None:
                key_padding_mask = MultiheadAttention._append_prev_key_padding_mask(
                    key_padding_mask=key_padding_mask,
                    prev_key_padding_mask=prev_padding,
                    batch_size=bsz,
                    src_len=k.size(2),
                    static_kv=False,
                )
            saved["prev_key"], saved["prev_value"] = k, v
            saved["prev_key_padding_mask"] = key_padding_mask
            self._set_input_buffer(incremental_state, saved)

        src_len = k.size(2)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.to(torch.bool)
        # A single query (a decoding step) is cheaper on CPU as two matmuls than through the
        # fused kernel, whose tiling is made for many queries (benchmarks/README.md).
        if need_weights or (tgt_len == 1 and q.device.type == "cpu"):
            mask = self._dense_mask(q, src_len, offset, attn_mask, key_padding_mask)
            scores = torch.matmul(q * self.scaling, k.transpose(-1, -2))
            if mask is not None:
                scores.add_(mask)
            probs = F.softmax(scores, dim=-1, dtype=torch.float32).type_as(q)
            out = torch.matmul(self.dropout_module(probs), v)
        elif self._alibi_by_key_range(q, src_len, attn_mask, key_padding_mask, causal):
            out = self._alibi_over_key_ranges(q, k, v, offset, key_padding_mask, causal)
        else:
            mask, is_causal, flip = self._sdpa_mask(q, src_len, offset, attn_mask, key_padding_mask, causal)
            if flip and not reversed_kv:
                k, v = k.flip(2), v.flip(2)
            dropout = self.training or self.dropout_module.apply_during_inference
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal, scale=self.scaling,
                dropout_p=self.dropout_module.p if dropout else 0.0)
        out = self.out_proj(out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed_dim))
        if not need_weights:
            return out, None
        weights = probs.transpose(0, 1) if need_head_weights else probs.mean(dim=1)
        return out, weights

    def _sdpa_mask(self, q, src_len, offset, attn_mask, key_padding_mask, causal
                   ) -> Tuple[Optional[Tensor], bool, bool]:
        """(attn_mask, is_causal, flip_keys) for scaled_dot_product_attention, in the cheapest
        form that keeps fairseq's semantics. Boolean masks there mean "may attend"."""
        tgt_len = q.size(2)
        if self.alibi is not None:
            if self._alibi_strided(tgt_len, attn_mask, key_padding_mask, causal):
                # The bias depends on i - j only: over reversed keys it is a strided view.
                return self.alibi.strided_bias(tgt_len, src_len, offset, q.device, q.dtype, mask_future=causal), False, True
            return self._dense_mask(q, src_len, offset, attn_mask, key_padding_mask), False, False
        if key_padding_mask is None:
            if attn_mask is None:
                return None, False, False
            if causal:
                return None, True, False
            return _as_additive(attn_mask, q.dtype), False, False
        keep = ~key_padding_mask[:, None, None, :]
        if attn_mask is None:
            return keep, False, False
        if causal:
            future = torch.ones(tgt_len, src_len, dtype=torch.bool, device=q.device).triu_(1)
            return keep & ~future, False, False
        return _as_additive(attn_mask, q.dtype) + _as_additive(~keep, q.dtype), False, False

    def _alibi_by_key_range(self, q, src_len, attn_mask, key_padding_mask, causal) -> bool:
        """Whether padded ALiBi attention goes through :meth:`_alibi_over_key_ranges`: a padded
        batch of whole sequences whose dense (B, H, T, S) mask would exceed DENSE_MASK_LIMIT
        elements (below it one fused call on the dense mask is cheaper than a call per range)."""
        return (self.alibi is not None and key_padding_mask is not None and (attn_mask is None or causal)
                and q.size(2) > 1 and q.size(0) * q.size(1) * q.size(2) * src_len > DENSE_MASK_LIMIT
                and _key_ranges(key_padding_mask) is not None)

    def _alibi_over_key_ranges(self, q, k, v, offset, key_padding_mask, causal) -> Tensor:
        """ALiBi attention of a padded batch without a (B, H, T, S) tensor.

        fairseq pads on one side, so each row's real keys are one range [a, e). Attending over
        only those keys is what the padding mask does (a masked key has weight exactly 0), and
        the bias depends on the distance only, so over the range's keys in reverse order it is
        again a strided view (:meth:`ALiBi.strided_bias`, queries at ``offset - a``). Rows with the
        same range share one fused call; their queries are all the batch's positions, as with the
        dense mask (a padding position's output is computed as before and ignored downstream)."""
        starts, ends = _key_ranges(key_padding_mask)
        out = q.new_empty(q.shape[:3] + (v.size(-1),))
        tgt_len = q.size(2)
        for start, end in torch.unique(torch.stack([starts, ends], dim=1), dim=0).tolist():
            rows = ((starts == start) & (ends == end)).nonzero().squeeze(1)
            keys = k.index_select(0, rows)[:, :, start:end].flip(2)
            values = v.index_select(0, rows)[:, :, start:end].flip(2)
            bias = self.alibi.strided_bias(tgt_len, end - start, offset - start, q.device, q.dtype, mask_future=causal)
            dropout = self.training or self.dropout_module.apply_during_inference
            out[rows] = F.scaled_dot_product_attention(
                q.index_select(0, rows), keys, values, attn_mask=bias, scale=self.scaling,
                dropout_p=self.dropout_module.p if dropout else 0.0)
        return out

    def _alibi_strided(self, tgt_len, attn_mask, key_padding_mask, causal) -> bool:
        """Whether attention takes the ALiBi bias as a strided view over reversed keys."""
        return (self.alibi is not None and key_padding_mask is None and (attn_mask is None or causal)
                and tgt_len > 1)

    def _can_project_into(self, query) -> bool:
        """Whether q and k may be computed by ``addmm(out=...)`` exactly as their modules would:
        plain ``nn.Linear`` with a bias and no hooks (LoRA layers, minLoRA parametrizations and
        quant-noise hooks are not), no autograd (``out=`` has none), and a contiguous input,
        which ``F.linear`` also flattens into one ``addmm``."""
        return (not torch.is_grad_enabled() and query.is_contiguous()
                and all(type(m) is torch.nn.Linear and m.bias is not None
                        and not m._forward_hooks and not m._forward_pre_hooks
                        for m in (self.q_proj, self.k_proj)))

    def _rotated_qk(self, query) -> Tuple[Tensor, Tensor]:
        """Rotated q and k of a whole sequence, projected side by side into one buffer and
        rotated by one call. With several threads every large op is a fork/join of the thread
        team, and on a loaded machine each can wait for a descheduled thread: one rotation
        instead of two per layer (benchmarks/README.md, "Long documents with 2 threads")."""
        x = query.reshape(-1, query.size(-1))
        qk = query.new_empty((2,) + x.shape)
        torch.addmm(self.q_proj.bias, x, self.q_proj.weight.t(), out=qk[0])
        torch.addmm(self.k_proj.bias, x, self.k_proj.weight.t(), out=qk[1])
        tgt_len, bsz = query.shape[:2]
        qk = self.rotary(qk.view(2, tgt_len, bsz, self.num_heads, self.head_dim).permute(0, 2, 3, 1, 4))
        return qk[0], qk[1]

    def _dense_mask(self, q, src_len, offset, attn_mask, key_padding_mask):
        """One additive float mask broadcastable to (B, H, T, S), always 4-D: fairseq's
        attn_mask and key padding as -inf, plus the ALiBi bias."""
        mask = None
        if attn_mask is not None:
            mask = _as_additive(attn_mask, q.dtype)[None, None]
        if key_padding_mask is not None:
            pad = _as_additive(key_padding_mask, q.dtype)[:, None, None, :]
            mask = pad if mask is None else mask + pad
        if self.alibi is not None:
            bias = self.alibi(q.size(2), src_len, offset, q.device, q.dtype)[None]
            mask = bias if mask is None else mask + bias
        return mask


# Below this many elements a padded ALiBi batch takes one dense (B, H, T, S) mask (64 MiB in
# fp32): one fused call beats one per key range when sequences are short.
DENSE_MASK_LIMIT = 1 << 24


def _key_ranges(key_padding_mask: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
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


def _append(cache: Tensor, new: Tensor) -> Tensor:
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


def _as_additive(mask: Tensor, dtype) -> Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float("-inf"))
    return mask.to(dtype)


def _is_future_mask(mask: Tensor, tgt_len: int, src_len: int) -> bool:
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
