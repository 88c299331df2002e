"""Attention with Linear Biases (Press et al., 2022) for fairseq attention.

Each head adds -slope * distance to its attention logits. The bias is built for the query and
key lengths of the call at hand (no maximum length). The last dense (heads, T, S) bias is kept,
so the layers of one forward pass, which all ask for the same shape, share a single tensor,
but only up to CACHE_LIMIT elements: a long document's dense bias (asked for with attention
weights, or a padded batch) is rebuilt per layer rather than held between calls.

Since the bias depends on i - j only, over keys taken in reverse order it depends on i + j,
and a (T, S) matrix that depends on i + j is a strided view of a T + S - 1 vector.
:meth:`ALiBi.strided_bias` hands attention that view, so long sequences never pay the
O(H T S) memory and time of a dense bias.
"""
import math
from typing import Optional, Tuple

import torch
from torch import nn

from ..positions import ALIBI_MODES as MODES

CACHE_LIMIT = 1 << 20  # elements (4 MiB in fp32) of the largest dense bias kept between calls


def alibi_slopes(num_heads):
    """The geometric slopes of Press et al.: 2^(-8/n), 2^(-16/n), ... for n a power of two;
    otherwise those of the nearest lower power of two followed by every other slope of the
    next power of two."""
    if num_heads < 1:
        raise ValueError(f"ALiBi needs at least one head, got {num_heads}")

    def geometric(n):
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    lower = 2 ** int(math.floor(math.log2(num_heads)))
    if lower == num_heads:
        return geometric(num_heads)
    return geometric(lower) + geometric(2 * lower)[0::2][: num_heads - lower]


class ALiBi(nn.Module):
    """Builds (heads, q_len, k_len) biases for queries at positions offset .. offset+q_len-1
    over keys at 0 .. k_len-1.

    symmetric: -m_h |i - j| (encoder). asymmetric: -m_h (i - j) looking back and
    -m'_h (j - i) looking ahead, where m' is the slope list reversed over heads, so heads
    that see far into the past see little of the future and the other way round (encoder).
    half-nearer-ahead: -m_h |i - j| for keys at or before the query and -m_h (|i - j| - 1/2)
    for keys after it, same slopes (encoder): what the authors' fork calls "asymmetrical"
    (fairseq/utils.py ``alibi`` at f6cd0f72), a key ahead counts as half a position nearer.
    causal: -m_h (i - j) for j <= i (decoder; future keys are masked by the caller).
    """

    def __init__(self, num_heads, mode="symmetric"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ALiBi mode must be one of {MODES}, got {mode!r}")
        self.num_heads, self.mode = num_heads, mode
        self.slopes = alibi_slopes(num_heads)
        self._last: Optional[Tuple[tuple, torch.Tensor]] = None
        self._last_strided: Optional[Tuple[tuple, torch.Tensor]] = None
        self._row: Optional[Tuple[tuple, torch.Tensor]] = None

    def extra_repr(self):
        return f"heads={self.num_heads}, mode={self.mode}"

    def _bias(self, dist, device):
        """The bias of query-minus-key distances ``dist`` for every head: (H, *dist.shape)."""
        slopes = torch.tensor(self.slopes, device=device, dtype=torch.float32).view(-1, *[1] * dist.dim())
        if self.mode == "symmetric":
            bias = -slopes * dist.abs()
        elif self.mode == "causal":
            bias = -slopes * dist.clamp(min=0)
        elif self.mode == "half-nearer-ahead":
            bias = -slopes * torch.where(dist >= 0, dist, -dist - 0.5)
        else:
            ahead = slopes.flip(0)
            bias = torch.where(dist >= 0, -slopes * dist, ahead * dist)
        return bias

    def forward(self, q_len, k_len, offset, device, dtype):
        key = (q_len, k_len, offset, device, dtype)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        if q_len == 1 and k_len == offset + 1:
            # A decoding step: every key is at or before the query, distances offset .. 0,
            # in every mode a slice of one descending row kept from step to step.
            row = self._step_row(k_len, device, dtype)
            bias = row[:, None, row.size(1) - k_len:]
            self._last = (key, bias)
            return bias
        q_pos = torch.arange(offset, offset + q_len, device=device, dtype=torch.float32)
        k_pos = torch.arange(k_len, device=device, dtype=torch.float32)
        bias = self._bias(q_pos[:, None] - k_pos[None, :], device).to(dtype)
        self._last = (key, bias) if bias.numel() <= CACHE_LIMIT else None
        return bias

    def _step_row(self, length, device, dtype):
        """-slope * (n - 1 - j) for j in 0 .. n - 1, n >= length, per head: (H, n)."""
        row = self._row if self._row is not None and self._row[0] == (device, dtype) else None
        if row is None or row[1].size(1) < length:
            n = max(256, 1 << math.ceil(math.log2(length)))
            dist = torch.arange(n - 1, -1, -1, device=device, dtype=torch.float32)
            self._row = ((device, dtype), self._bias(dist, device).to(dtype))
        return self._row[1]

    def strided_bias(self, q_len, k_len, offset, device, dtype, mask_future=False):
        """The bias for keys in reverse order (key k_len - 1 first), shape (1, H, q_len, k_len),
        as a view with strides (., T + S - 1, 1, 1) of an (H, T + S - 1) tensor; -inf on keys
        after the query when ``mask_future``. Attention must be given ``keys.flip(-2)``."""
        key = (q_len, k_len, offset, device, dtype, mask_future)
        if self._last_strided is not None and self._last_strided[0] == key:
            return self._last_strided[1]
        n = q_len + k_len - 1
        # query i meets reversed key r (= key k_len - 1 - r) at distance i + r + offset - (k_len - 1)
        dist = torch.arange(n, device=device, dtype=torch.float32) + (offset - (k_len - 1))
        bias = self._bias(dist, device)
        if mask_future:
            bias = bias.masked_fill(dist < 0, float("-inf"))
        bias = bias.to(dtype).contiguous()
        view = bias.as_strided((1, self.num_heads, q_len, k_len), (bias.numel(), n, 1, 1))
        self._last_strided = (key, view)
        return view
