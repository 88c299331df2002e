"""ALiBi attention on padded batches without a dense (batch, heads, T, S) mask equals the
explicit formula: softmax(q k^T * scale + bias - inf on padding) v, computed here densely; and
with either path each padded row equals its sequence attended alone, in every mode."""
import pytest
import torch

from fairseq_relpos.modules import attention_masks, relative_attention
from model_builders import build, write_dicts


@pytest.fixture(scope="module")
def dicts(tmp_path_factory):
    return write_dicts(tmp_path_factory.mktemp("dicts"))


def explicit(attn, x, key_padding_mask, causal):
    """The formula, with every tensor dense: no code of the module's attention paths."""
    T, B, C = x.shape
    H, D = attn.num_heads, attn.head_dim

    def heads(t):
        return t.view(T, B, H, D).permute(1, 2, 0, 3)

    q, k, v = heads(attn.q_proj(x)), heads(attn.k_proj(x)), heads(attn.v_proj(x))
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    slopes = torch.tensor(attn.alibi.slopes)[:, None, None]
    dist = (i - j).float()
    if attn.alibi.mode == "symmetric":
        bias = -slopes * dist.abs()
    elif attn.alibi.mode == "asymmetric":
        bias = torch.where(dist >= 0, -slopes * dist, slopes.flip(0) * dist)
    elif attn.alibi.mode == "half-nearer-ahead":  # a key ahead counts half a position nearer
        bias = torch.where(dist >= 0, -slopes * dist, -slopes * (dist.abs() - 0.5))
    else:
        bias = (-slopes * dist).masked_fill(j > i, float("-inf"))
    scores = (q * attn.scaling) @ k.transpose(-1, -2) + bias
    scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    out = torch.softmax(scores, -1) @ v
    return attn.out_proj(out.permute(2, 0, 1, 3).reshape(T, B, C))


MODES = [("encoder", "symmetric"), ("encoder", "asymmetric"), ("encoder", "half-nearer-ahead"), ("decoder", "causal")]


@pytest.mark.parametrize("side,mode", MODES)
def test_padded_batch_equals_the_formula(dicts, side, mode, monkeypatch):
    monkeypatch.setattr(relative_attention, "DENSE_MASK_LIMIT", 0)  # long-batch path at test size
    _, model, _ = build(dicts, "transformer_alibi", extra=["--alibi-encoder", mode] if side == "encoder" else [])
    attn = getattr(model, side).layers[0].self_attn
    assert attn.alibi.mode == mode
    T, lengths = 23, [23, 5, 17, 17, 1, 11]
    torch.manual_seed(0)
    x = torch.randn(T, len(lengths), attn.embed_dim)
    pad = torch.ones(len(lengths), T, dtype=torch.bool)
    for b, n in enumerate(lengths):  # the encoder's source is left-padded, the decoder's target right-padded
        pad[b, T - n:] = False if side == "encoder" else True
        if side == "decoder":
            pad[b, :n] = False
    calls = []
    ranges = attn._alibi_over_key_ranges
    monkeypatch.setattr(attn, "_alibi_over_key_ranges", lambda *a: calls.append(1) or ranges(*a))
    future = torch.triu(torch.full((T, T), float("-inf")), 1)
    with torch.no_grad():
        got, _ = attn(x, x, x, key_padding_mask=pad, need_weights=False,
                      attn_mask=future if side == "decoder" else None)
        want = explicit(attn, x, pad, causal=side == "decoder")
    assert calls == [1]
    real = ~pad.t()  # padding positions are ignored downstream; compare where a query is real
    if side == "decoder":  # a padding query of a right-padded row sees real keys: compare it too
        real = torch.ones_like(real)
    torch.testing.assert_close(got[real], want[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("limit", [0, 1 << 24], ids=["key ranges", "dense mask"])
@pytest.mark.parametrize("side,mode", MODES)
def test_padded_rows_equal_each_sequence_alone(dicts, side, mode, limit, monkeypatch):
    """Each row of a padded batch, at its real positions, as the same sequence without padding."""
    monkeypatch.setattr(relative_attention, "DENSE_MASK_LIMIT", limit)
    _, model, _ = build(dicts, "transformer_alibi", extra=["--alibi-encoder", mode] if side == "encoder" else [])
    attn = getattr(model, side).layers[0].self_attn
    T, lengths = 19, [19, 4, 12, 1]
    torch.manual_seed(1)
    x = torch.randn(T, len(lengths), attn.embed_dim)
    pad = torch.ones(len(lengths), T, dtype=torch.bool)
    real = [slice(T - n, T) if side == "encoder" else slice(0, n) for n in lengths]
    for b, where in enumerate(real):
        pad[b, where] = False

    def future(n):
        return torch.triu(torch.full((n, n), float("-inf")), 1) if side == "decoder" else None

    with torch.no_grad():
        batch, _ = attn(x, x, x, key_padding_mask=pad, need_weights=False, attn_mask=future(T))
        for b, where in enumerate(real):
            alone = x[where, b:b + 1]
            want, _ = attn(alone, alone, alone, need_weights=False, attn_mask=future(alone.size(0)))
            torch.testing.assert_close(batch[where, b:b + 1], want, rtol=1e-5, atol=1e-5)


def test_key_ranges_only_for_one_sided_padding():
    pad = torch.tensor([[True, True, False, False], [False, False, False, True], [False, False, False, False]])
    starts, ends = attention_masks.key_ranges(pad)
    assert starts.tolist() == [2, 0, 0] and ends.tolist() == [4, 3, 4]
    assert attention_masks.key_ranges(torch.tensor([[False, True, False, False]])) is None
    assert attention_masks.key_ranges(torch.tensor([[True, True]])) is None
