"""Self-attention with relative positions, as a drop-in for fairseq's MultiheadAttention.

The swap keeps fairseq's parameters (q/k/v/out projections, same names and shapes) so a
sinusoidal checkpoint loads unchanged; only how queries meet keys changes. RoPE rotates
queries and keys, ALiBi adds a distance bias, NoPE does neither. ``forward`` projects (and
rotates), appends to the decoding cache (``kv_cache.py``), then attends by one of three paths:

* dense: two matmuls over one additive mask, when weights are asked for or for a single query
  on CPU (a decoding step);
* fused: ``F.scaled_dot_product_attention`` with the mask in the form its fused kernels take
  (``attention_masks.py``); an ALiBi bias over a whole sequence is a strided (1, H, T, S) view
  of an (H, T + S - 1) vector (:meth:`ALiBi.strided_bias`), over reversed keys;
* ALiBi by key range: a long padded batch attends over each row's range of real keys with that
  view, so no (B, H, T, S) tensor is built (:meth:`RelativeSelfAttention._alibi_over_key_ranges`).

Speed figures for each choice: benchmarks/speed.py and benchmarks/README.md.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from fairseq.modules.multihead_attention import MultiheadAttention
from torch import Tensor

from . import kv_cache
from .alibi import ALiBi
from .attention_masks import dense_mask, is_future_mask, key_ranges, sdpa_mask
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
        cache = self._get_input_buffer(incremental_state) if incremental_state is not None else None
        offset = cache["prev_key"].size(2) if cache and cache.get("prev_key") is not None else 0
        # one pass over a full sequence, no cache kept and no weights returned
        one_pass = incremental_state is None and not need_weights
        causal = attn_mask is not None and offset == 0 and is_future_mask(attn_mask, tgt_len, tgt_len)
        # ALiBi over a whole sequence attends over reversed keys (see attention_masks.sdpa_mask):
        # projecting the reversed input gives them with one flip instead of a flip of k and one of v
        # (every large op is a fork/join of the thread team: benchmarks/README.md).
        reversed_kv = one_pass and self._alibi_strided(tgt_len, attn_mask, key_padding_mask, causal)
        q, k, v = self._project(query, offset, one_pass, reversed_kv)
        if cache is not None:
            k, v, key_padding_mask = kv_cache.update(self, incremental_state, cache, k, v, key_padding_mask, offset)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.to(torch.bool)
        probs = None
        # A single query (a decoding step) is cheaper on CPU as two matmuls than through the
        # fused kernel, whose tiling is made for many queries (benchmarks/README.md).
        if need_weights or (tgt_len == 1 and q.device.type == "cpu"):
            out, probs = self._attend_dense(q, k, v, offset, attn_mask, key_padding_mask)
        elif self._alibi_by_key_range(q, k.size(2), attn_mask, key_padding_mask, causal):
            out = self._alibi_over_key_ranges(q, k, v, offset, key_padding_mask, causal)
        else:
            out = self._attend_fused(q, k, v, offset, attn_mask, key_padding_mask, causal, reversed_kv)
        out = self.out_proj(out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed_dim))
        if not need_weights:
            return out, None
        weights = probs.transpose(0, 1) if need_head_weights else probs.mean(dim=1)
        return out, weights

    def _split_heads(self, x, bsz):
        return x.view(-1, bsz, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

    def _project(self, query, offset, one_pass, reversed_kv) -> Tuple[Tensor, Tensor, Tensor]:
        """q, k, v as (B, H, T, D), q and k rotated (RoPE) from position ``offset``; k and v
        over the reversed sequence when ``reversed_kv``."""
        bsz = query.size(1)
        kv_input = query.flip(0) if reversed_kv else query
        if one_pass and self.rotary is not None and self._can_project_into(query):
            q, k = self._rotated_qk(query)
        else:
            q, k = self._split_heads(self.q_proj(query), bsz), self._split_heads(self.k_proj(kv_input), bsz)
            if self.rotary is not None:
                q, k = self.rotary(q, offset), self.rotary(k, offset)
        return q, k, self._split_heads(self.v_proj(kv_input), bsz)

    def _attend_dense(self, q, k, v, offset, attn_mask, key_padding_mask) -> Tuple[Tensor, Tensor]:
        """Attention as two matmuls over one dense mask; also returns the (B, H, T, S) weights."""
        mask = dense_mask(q, k.size(2), offset, attn_mask, key_padding_mask, self.alibi)
        scores = torch.matmul(q * self.scaling, k.transpose(-1, -2))
        if mask is not None:
            scores.add_(mask)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).type_as(q)
        return torch.matmul(self.dropout_module(probs), v), probs

    def _attend_fused(self, q, k, v, offset, attn_mask, key_padding_mask, causal, reversed_kv) -> Tensor:
        """Attention through ``F.scaled_dot_product_attention`` with the cheapest mask form."""
        strided = self._alibi_strided(q.size(2), attn_mask, key_padding_mask, causal)
        mask, is_causal, flip = sdpa_mask(q, k.size(2), offset, attn_mask, key_padding_mask, causal, self.alibi, strided)
        if flip and not reversed_kv:
            k, v = k.flip(2), v.flip(2)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, scale=self.scaling, dropout_p=self._dropout_p())

    def _dropout_p(self) -> float:
        dropout = self.training or self.dropout_module.apply_during_inference
        return self.dropout_module.p if dropout else 0.0

    def _alibi_by_key_range(self, q, src_len, attn_mask, key_padding_mask, causal) -> bool:
        """Whether padded ALiBi attention goes through :meth:`_alibi_over_key_ranges`: a padded
        batch of whole sequences whose dense (B, H, T, S) mask would exceed DENSE_MASK_LIMIT
        elements (below it one fused call on the dense mask is cheaper than a call per range)."""
        return (self.alibi is not None and key_padding_mask is not None and (attn_mask is None or causal)
                and q.size(2) > 1 and q.size(0) * q.size(1) * q.size(2) * src_len > DENSE_MASK_LIMIT
                and key_ranges(key_padding_mask) is not None)

    def _alibi_over_key_ranges(self, q, k, v, offset, key_padding_mask, causal) -> Tensor:
        """ALiBi attention of a padded batch without a (B, H, T, S) tensor.

        fairseq pads on one side, so each row's real keys are one range [a, e). Attending over
        only those keys is what the padding mask does (a masked key has weight exactly 0), and
        the bias depends on the distance only, so over the range's keys in reverse order it is
        again a strided view (:meth:`ALiBi.strided_bias`, queries at ``offset - a``). Rows with the
        same range share one fused call; their queries are all the batch's positions, as with the
        dense mask (a padding position's output is computed as before and ignored downstream)."""
        starts, ends = key_ranges(key_padding_mask)
        out = q.new_empty(q.shape[:3] + (v.size(-1),))
        tgt_len = q.size(2)
        for start, end in torch.unique(torch.stack([starts, ends], dim=1), dim=0).tolist():
            rows = ((starts == start) & (ends == end)).nonzero().squeeze(1)
            keys = k.index_select(0, rows)[:, :, start:end].flip(2)
            values = v.index_select(0, rows)[:, :, start:end].flip(2)
            bias = self.alibi.strided_bias(tgt_len, end - start, offset - start, q.device, q.dtype, mask_future=causal)
            out[rows] = F.scaled_dot_product_attention(
                q.index_select(0, rows), keys, values, attn_mask=bias, scale=self.scaling,
                dropout_p=self._dropout_p())
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


# Below this many elements a padded ALiBi batch takes one dense (B, H, T, S) mask (64 MiB in
# fp32): one fused call beats one per key range when sequences are short.
DENSE_MASK_LIMIT = 1 << 24
