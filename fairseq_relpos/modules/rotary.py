"""Rotary position embedding (Su et al., 2021) for fairseq attention.

Queries and keys of a head are rotated pair by pair by an angle proportional to their
position, so that q_m . k_n depends only on m - n. Only the first ``fraction`` of the head
dimension is rotated (the authors' fork rotates half); the rest passes through unchanged.
"""
import math
from typing import Dict, Tuple

import torch
from torch import nn

from ..positions import ROPE_LAYOUTS as LAYOUTS
from ..positions import ROPE_SCALINGS as SCALINGS
from ..positions import ntk_theta, rotated_dims


class RotaryEmbedding(nn.Module):
    """Rotates (..., T, head_dim) tensors; tables are grown on demand per device and dtype.

    layout: ``interleaved`` rotates pairs (0,1), (2,3), ... as in the authors' fork and
    GPT-J; ``half`` rotates (i, i + d/2) as in fairseq's own rotary module and GPT-NeoX.
    scaling: ``linear`` divides positions by ``factor`` (position interpolation);
    ``ntk`` raises theta to theta * factor^(d/(d-2)) (NTK-aware scaling), which stretches
    the low frequencies and keeps the high ones.

    The tables are plain attributes, not buffers: they are derived state that must not be
    saved, moved by ``.to()`` or broadcast by DistributedDataParallel.
    """

    def __init__(self, head_dim, fraction=0.5, theta=10000.0, layout="interleaved",
                 scaling="none", factor=1.0):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"rotary layout must be one of {LAYOUTS}, got {layout!r}")
        if scaling not in SCALINGS:
            raise ValueError(f"rotary scaling must be one of {SCALINGS}, got {scaling!r}")
        self.dim = rotated_dims(head_dim, fraction, theta, scaling, factor)
        self.layout, self.scaling, self.factor = layout, scaling, float(factor)
        if scaling == "ntk":
            theta = ntk_theta(theta, self.factor, self.dim)
        self.theta = float(theta)
        self._tables: Dict[Tuple[torch.device, torch.dtype], Tuple[torch.Tensor, torch.Tensor]] = {}
        self._complex: Dict[Tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def extra_repr(self):
        return (f"dim={self.dim}, theta={self.theta:g}, layout={self.layout}, "
                f"scaling={self.scaling}, factor={self.factor:g}")

    def _build(self, length, device):
        inv_freq = 1.0 / self.theta ** (
            torch.arange(0, self.dim, 2, device=device, dtype=torch.float64) / self.dim)
        pos = torch.arange(length, device=device, dtype=torch.float64)
        if self.scaling == "linear":
            pos = pos / self.factor
        angles = torch.outer(pos, inv_freq)
        return angles.cos(), angles.sin()

    def tables(self, length, device, dtype):
        """cos and sin of shape (length', dim/2), length' >= length, for this device and dtype."""
        key = (device, dtype)
        cached = self._tables.get(key)
        if cached is None or cached[0].size(0) < length:
            size = max(256, 1 << math.ceil(math.log2(max(length, 1))))
            cos, sin = self._build(size, device)
            cached = (cos.to(dtype), sin.to(dtype))
            self._tables[key] = cached
        return cached

    def complex_table(self, length, device, dtype, width=None):
        """cos + i sin as one complex tensor (length', width) for float32/float64 ``dtype``, made
        from the same rounded cos and sin as :meth:`tables`; pairs past dim/2 (up to ``width``)
        get 1 + 0i, which leaves them exactly as they are."""
        width = width or self.dim // 2
        key = (device, dtype, width)
        cached = self._complex.get(key)
        if cached is not None and cached.size(0) >= length:
            return cached
        cos, sin = self.tables(length, device, dtype)
        if cached is None or cached.size(0) != cos.size(0):
            table = torch.complex(cos, sin)
            if width > table.size(1):
                table = torch.cat([table, table.new_ones(table.size(0), width - table.size(1))], dim=1)
            cached = self._complex[key] = table
        return cached

    def forward(self, x, offset=0):
        """Rotate x of shape (..., T, head_dim) as positions offset .. offset + T - 1."""
        length = x.size(-2)
        if self.layout == "interleaved" and x.size(-1) >= self.dim and _complex_viewable(x):
            # Interleaved pairs are complex numbers: one complex product rotates them all (and
            # multiplies the unrotated ones by 1), one kernel instead of nine and no copy of
            # the unrotated part.
            table = self.complex_table(offset + length, x.device, x.dtype, x.size(-1) // 2)
            pairs = torch.view_as_complex(x.view(x.shape[:-1] + (-1, 2)))
            return torch.view_as_real(pairs * table[offset:offset + length]).flatten(-2)
        rot, rest = x[..., :self.dim], x[..., self.dim:]
        cos, sin = self.tables(offset + length, x.device, x.dtype)
        cos, sin = cos[offset:offset + length], sin[offset:offset + length]
        if self.layout == "interleaved":
            x1, x2 = rot[..., 0::2], rot[..., 1::2]
            rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
        else:
            x1, x2 = rot.chunk(2, dim=-1)
            rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return torch.cat((rotated, rest), dim=-1) if rest.size(-1) else rotated


def _complex_viewable(x):
    """Whether the last dimension of ``x`` can be viewed as complex pairs without a copy."""
    return (x.dtype in (torch.float32, torch.float64) and x.size(-1) % 2 == 0 and x.stride(-1) == 1
            and x.storage_offset() % 2 == 0
            and all(s % 2 == 0 for s in x.stride()[:-1]))
