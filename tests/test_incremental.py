"""Step-by-step decoding must reproduce the teacher-forced forward pass exactly."""
from unittest import mock

import pytest
import torch

from fairseq_relpos.modules import RelativeSelfAttention
from fairseq_versions import is_fused_copy
from model_builders import build, random_batch


def decode_steps(model, encoder_out, prev, start, stop):
    """Logits of steps start..stop-1, fed one token at a time after a prefix of ``start``."""
    state = {}
    outs = []
    for t in range(stop):
        logits, _ = model.decoder(prev[:, : t + 1], encoder_out=encoder_out, incremental_state=state)
        if t >= start:
            outs.append(logits[:, -1])
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("arch", ["transformer_rope", "transformer_alibi", "transformer_nope"])
def test_incremental_equals_full_forward(dicts, arch):
    torch.manual_seed(0)
    task, model, _ = build(dicts, arch)
    src, lengths, prev = random_batch(task, bsz=3, src_len=9, tgt_len=12, pad_first_row=3)
    with torch.no_grad():
        enc = model.encoder(src, src_lengths=lengths)
        full, _ = model.decoder(prev, encoder_out=enc)
        steps = decode_steps(model, enc, prev, 0, prev.size(1))
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["transformer_rope", "transformer_alibi"])
def test_incremental_equals_full_forward_past_1000_positions(dicts, arch):
    torch.manual_seed(0)
    task, model, _ = build(dicts, arch, encoder_layers=1, decoder_layers=1)
    src, lengths, prev = random_batch(task, bsz=2, src_len=40, tgt_len=1030, seed=1)
    with torch.no_grad():
        enc = model.encoder(src, src_lengths=lengths)
        full, _ = model.decoder(prev, encoder_out=enc)
        steps = decode_steps(model, enc, prev, 1000, prev.size(1))
    torch.testing.assert_close(steps, full[:, 1000:], rtol=1e-4, atol=1e-5)


def test_cache_holds_rotated_keys(dicts):
    """The cached keys are the rotated projections: a step never re-rotates the past."""
    task, model, _ = build(dicts, "transformer_rope")
    src, lengths, prev = random_batch(task, bsz=1, src_len=5, tgt_len=4)
    attn = model.decoder.layers[0].self_attn
    seen = []
    original = attn.rotary.forward
    attn.rotary.forward = lambda x, offset=0: seen.append(x.size(-2)) or original(x, offset)
    state = {}
    with torch.no_grad():
        enc = model.encoder(src, src_lengths=lengths)
        for t in range(4):
            model.decoder(prev[:, : t + 1], encoder_out=enc, incremental_state=state)
    # q and the new key only, one position each, in each of the layers sharing the module
    assert seen == [1] * (2 * len(model.decoder.layers) * 4)
    cached = attn._get_input_buffer(state)["prev_key"]
    x = model.decoder.embed_scale * model.decoder.embed_tokens(prev)
    if model.decoder.layernorm_embedding is not None:
        x = model.decoder.layernorm_embedding(x)
    if model.decoder.layers[0].normalize_before:
        x = model.decoder.layers[0].self_attn_layer_norm(x)
    k = attn.k_proj(x).view(1, 4, attn.num_heads, attn.head_dim).transpose(1, 2)
    torch.testing.assert_close(cached, original(k, 0), rtol=1e-5, atol=1e-6)


def test_only_self_attention_is_relative(dicts):
    _, model, _ = build(dicts, "transformer_rope")
    for layer in list(model.encoder.layers) + list(model.decoder.layers):
        assert isinstance(layer.self_attn, RelativeSelfAttention)
    for layer in model.decoder.layers:
        assert type(layer.encoder_attn).__name__ == "MultiheadAttention"
    assert model.encoder.embed_positions is None and model.decoder.embed_positions is None


def test_parameters_and_buffers_are_stock(dicts):
    """Same parameter names and shapes as the stock transformer, and no buffer of ours that
    DistributedDataParallel would broadcast or a checkpoint would save."""
    _, stock, _ = build(dicts, "transformer")
    for arch in ("transformer_rope", "transformer_alibi"):
        _, model, _ = build(dicts, arch)
        ours = {k: v.shape for k, v in model.state_dict().items()}
        theirs = {k: v.shape for k, v in stock.state_dict().items()
                  if ".embed_positions." not in k and not is_fused_copy(k)}  # 0.12.2's fused copies
        assert ours == theirs
        assert {n for n, _ in model.named_buffers()} <= {n for n, _ in stock.named_buffers()}


def test_need_weights_path_matches_fast_path(dicts):
    torch.manual_seed(0)
    _, model, _ = build(dicts, "transformer_alibi")
    attn = model.encoder.layers[0].self_attn
    x = torch.randn(6, 2, 32)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, :2] = True
    fast, none = attn(x, x, x, key_padding_mask=pad, need_weights=False)
    slow, weights = attn(x, x, x, key_padding_mask=pad, need_weights=True)
    _, heads = attn(x, x, x, key_padding_mask=pad, need_head_weights=True)
    assert none is None
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    assert weights.shape == (2, 6, 6) and heads.shape == (4, 2, 6, 6)
    assert torch.all(weights[1, :, :2] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 6))


@pytest.mark.parametrize("arch", ["transformer_rope", "transformer_alibi"])
@pytest.mark.parametrize("causal", [False, True])
def test_whole_sequence_paths_match_explicit_attention(dicts, arch, causal):
    """The whole-sequence fast paths (RoPE: q and k projected into one buffer and rotated in one
    call, without autograd; ALiBi: keys and values projected from the reversed input) give what
    the explicit softmax(q k^T + bias) v path gives, and the autograd path too."""
    torch.manual_seed(0)
    _, model, _ = build(dicts, arch)
    attn = (model.decoder if causal else model.encoder).layers[0].self_attn
    x = torch.randn(9, 2, 32)
    mask = torch.triu(torch.full((9, 9), float("-inf")), 1) if causal else None
    calls = []
    if attn.rotary is not None:
        original = attn._rotated_qk
        attn._rotated_qk = lambda q: calls.append(1) or original(q)
    with torch.no_grad():
        fast, _ = attn(x, x, x, attn_mask=mask, need_weights=False)
        explicit, _ = attn(x, x, x, attn_mask=mask, need_weights=True)
    with_grad, _ = attn(x, x, x, attn_mask=mask, need_weights=False)
    assert calls == ([1] if attn.rotary is not None else [])
    torch.testing.assert_close(fast, explicit, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast, with_grad.detach(), rtol=1e-6, atol=1e-7)


def test_future_mask_check_follows_the_buffer_not_the_view():
    """fairseq hands each layer a fresh [:T, :T] view of its buffered future mask: the verdict
    is reused across such views, and an in-place edit of the buffer is still seen."""
    from fairseq_relpos.modules.attention_masks import is_future_mask

    buffer = torch.triu(torch.full((8, 8), float("-inf")), 1)
    assert is_future_mask(buffer[:6, :6], 6, 6)
    with mock.patch.object(torch, "equal", side_effect=AssertionError("checked again")):
        assert is_future_mask(buffer[:6, :6], 6, 6)
    assert is_future_mask(buffer[:5, :5], 5, 5)
    buffer[0, 3] = 0.0
    assert not is_future_mask(buffer[:5, :5], 5, 5)
    buffer[0, 3] = float("-inf")
    assert is_future_mask(buffer[:5, :5], 5, 5)
    buffer[1, 0] = 1.0  # a bias below the diagonal is not a pure future mask
    assert not is_future_mask(buffer[:5, :5], 5, 5)
    assert not is_future_mask(torch.zeros(5, 5), 5, 5)
