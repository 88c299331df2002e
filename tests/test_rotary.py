"""RotaryEmbedding against the rotation written out with complex numbers."""
import math

import pytest
import torch

from fairseq_relpos.modules import RotaryEmbedding


def reference_rope(x, positions, dim, theta, layout):
    """Rotate pair i of each vector by position * theta^(-2i/dim), via complex multiplication."""
    out = x.clone().double()
    half = dim // 2
    for t, pos in enumerate(positions):
        for i in range(half):
            angle = pos * theta ** (-2.0 * i / dim)
            a, b = (2 * i, 2 * i + 1) if layout == "interleaved" else (i, i + half)
            z = complex(x[..., t, a].item(), x[..., t, b].item()) * complex(math.cos(angle), math.sin(angle))
            out[..., t, a], out[..., t, b] = z.real, z.imag
    return out


@pytest.mark.parametrize("layout", ["interleaved", "half"])
@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_rotation_matches_formula(layout, fraction):
    torch.manual_seed(0)
    head_dim, length, offset = 16, 7, 5
    rope = RotaryEmbedding(head_dim, fraction=fraction, theta=100.0, layout=layout)
    x = torch.randn(length, head_dim, dtype=torch.float64)
    got = rope(x, offset=offset)
    want = reference_rope(x, range(offset, offset + length), int(head_dim * fraction), 100.0, layout)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    # the unrotated share of the head passes through untouched
    assert torch.equal(got[:, rope.dim:], x[:, rope.dim:])


@pytest.mark.parametrize("layout", ["interleaved", "half"])
def test_scores_depend_only_on_distance(layout):
    torch.manual_seed(1)
    rope = RotaryEmbedding(8, fraction=1.0, layout=layout)
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    qs = rope(q.expand(3000, 8).clone())
    ks = rope(k.expand(3000, 8).clone())
    for distance in (0, 3, 17):
        scores = [float(qs[m] @ ks[m - distance]) for m in (distance, 100 + distance, 2900)]
        assert scores == pytest.approx([scores[0]] * 3, abs=1e-9)
    # and it does depend on the distance
    assert float(qs[10] @ ks[0]) != pytest.approx(float(qs[10] @ ks[9]), abs=1e-6)


def test_linear_scaling_interpolates_positions():
    x = torch.randn(5, 8, dtype=torch.float64)
    scaled = RotaryEmbedding(8, fraction=1.0, scaling="linear", factor=4.0)(x, offset=8)
    want = reference_rope(x, [p / 4.0 for p in range(8, 13)], 8, 10000.0, "interleaved")
    torch.testing.assert_close(scaled, want, rtol=1e-9, atol=1e-9)


def test_ntk_scaling_raises_theta():
    dim, factor = 8, 8.0
    x = torch.randn(5, dim, dtype=torch.float64)
    ntk = RotaryEmbedding(dim, fraction=1.0, scaling="ntk", factor=factor)(x, offset=3)
    theta = 10000.0 * factor ** (dim / (dim - 2))
    torch.testing.assert_close(ntk, reference_rope(x, range(3, 8), dim, theta, "interleaved"),
                               rtol=1e-9, atol=1e-9)
    # the highest frequency pair is (almost) unchanged, the lowest one is slowed down
    plain = RotaryEmbedding(dim, fraction=1.0)
    assert plain.theta < RotaryEmbedding(dim, fraction=1.0, scaling="ntk", factor=factor).theta


def test_tables_grow_on_demand_and_follow_dtype():
    rope = RotaryEmbedding(8, fraction=1.0)
    short = rope(torch.randn(1, 2, 10, 8))
    assert rope.tables(10, short.device, torch.float32)[0].size(0) < 5000
    far = rope(torch.randn(1, 2, 3, 8, dtype=torch.float64), offset=5117)  # past the fork's 5120 cap
    assert far.dtype == torch.float64
    assert rope.tables(5120, far.device, torch.float64)[0].size(0) >= 5120
    assert rope(torch.randn(4, 8).to(torch.bfloat16)).dtype == torch.bfloat16
    assert not list(rope.buffers()) and not list(rope.parameters())


@pytest.mark.parametrize("kwargs", [dict(layout="diagonal"), dict(scaling="yarn"), dict(fraction=0.0),
                                    dict(fraction=0.1), dict(theta=1.0), dict(factor=2.0),
                                    dict(scaling="linear", factor=0.5)])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        RotaryEmbedding(8, **kwargs)
