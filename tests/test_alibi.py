"""ALiBi slopes and biases against Press et al. (2022), written out here."""
import math

import pytest
import torch

from fairseq_relpos.modules import ALiBi, alibi_slopes


def press_slopes(n):
    """Press et al.: for n a power of two, the geometric sequence starting and stepping at
    2^(-8/n); otherwise the slopes for the closest lower power of two 2^k, then every other
    slope of 2^(k+1) heads."""
    def power_of_two(m):
        return [2 ** (-8 * (i + 1) / m) for i in range(m)]
    k = 2 ** math.floor(math.log2(n))
    return power_of_two(n) if k == n else power_of_two(k) + power_of_two(2 * k)[::2][: n - k]


@pytest.mark.parametrize("heads", [8, 12, 16, 1, 6, 20])
def test_slopes(heads):
    assert alibi_slopes(heads) == pytest.approx(press_slopes(heads), rel=1e-12)


def test_slopes_literal_values():
    assert alibi_slopes(8) == pytest.approx([1 / 2 ** i for i in range(1, 9)])
    assert alibi_slopes(16)[:2] == pytest.approx([2 ** -0.5, 2 ** -1.0])
    assert alibi_slopes(12)[8:] == pytest.approx([2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5])


def test_symmetric_bias():
    bias = ALiBi(4, "symmetric")(3, 5, 1, "cpu", torch.float32)
    slopes = press_slopes(4)
    assert bias.shape == (4, 3, 5)
    for h in range(4):
        for i in range(3):
            for j in range(5):
                assert bias[h, i, j].item() == pytest.approx(-slopes[h] * abs(i + 1 - j))


def test_asymmetric_bias_uses_reversed_slopes_ahead():
    bias = ALiBi(4, "asymmetric")(4, 4, 0, "cpu", torch.float64)
    slopes = press_slopes(4)
    for h in range(4):
        for i in range(4):
            for j in range(4):
                slope = slopes[h] if j <= i else slopes[3 - h]
                assert bias[h, i, j].item() == pytest.approx(-slope * abs(i - j))


def test_causal_bias_and_incremental_row():
    alibi = ALiBi(8, "causal")
    full = alibi(6, 6, 0, "cpu", torch.float32)
    step = alibi(1, 6, 5, "cpu", torch.float32)  # last query alone, as in incremental decoding
    torch.testing.assert_close(step[:, 0], full[:, 5])
    assert torch.all(full[:, 2, :3] == -torch.tensor(press_slopes(8))[:, None] * torch.tensor([2.0, 1.0, 0.0]))


def test_one_bias_per_shape_is_shared():
    alibi = ALiBi(4, "symmetric")
    first = alibi(7, 7, 0, "cpu", torch.float32)
    assert alibi(7, 7, 0, "cpu", torch.float32) is first
    assert alibi(8, 8, 0, "cpu", torch.float32) is not first
    assert not list(alibi.buffers())


def test_bad_mode_and_heads():
    with pytest.raises(ValueError):
        ALiBi(4, "bidirectional")
    with pytest.raises(ValueError):
        alibi_slopes(0)
