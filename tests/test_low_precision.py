"""bf16 (and, on a GPU, fp16) self-attention against the same module in fp32.

Every attention path of the plugin (a whole sequence, a padded batch with the dense mask or by
key ranges, attention weights asked for, step-by-step decoding) for RoPE, ALiBi, NoPE, and
fairseq's own attention as the yardstick, over 300 positions: past 256, where bf16 stops
holding every integer, so a position or distance rounded to the low precision would show. The
outputs must agree with fp32 to within two units of bf16's rounding (2^-7) on average, as
fairseq's attention does; positions rounded to bf16 in RoPE's tables come out near 0.05.
"""
import copy

import pytest
import torch

from fairseq_relpos.modules import relative_attention
from model_builders import build

T, B = 300, 3
KINDS = {  # name: (arch, extra, stack)
    "stock encoder": ("transformer", [], "encoder"),
    "stock decoder": ("transformer", [], "decoder"),
    "rope interleaved": ("transformer_rope", [], "encoder"),
    "rope half, all rotated": ("transformer_rope", ["--rope-layout", "half", "--rope-fraction", "1.0"], "encoder"),
    "rope decoder": ("transformer_rope", [], "decoder"),
    "alibi symmetric": ("transformer_alibi", [], "encoder"),
    "alibi asymmetric": ("transformer_alibi", ["--alibi-encoder", "asymmetric"], "encoder"),
    "alibi half-nearer-ahead": ("transformer_alibi", ["--alibi-encoder", "half-nearer-ahead"], "encoder"),
    "alibi causal": ("transformer_alibi", [], "decoder"),
    "nope decoder": ("transformer_nope", [], "decoder"),
}
PATHS = ["whole", "padded", "padded by key ranges", "weights", "steps"]
# Key ranges are ALiBi's only; step-by-step decoding is the decoder's.
CASES = [(kind, path) for kind, (arch, _, stack) in KINDS.items() for path in PATHS
         if (path != "padded by key ranges" or "alibi" in arch) and (path != "steps" or stack == "decoder")]
DTYPES = [pytest.param("cpu", torch.bfloat16, id="cpu-bf16")] + [
    pytest.param(device, dtype, id=f"{device}-{str(dtype)[6:]}",
                 marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))
    for device, dtype in (("cuda", torch.float16), ("cuda", torch.bfloat16))]


def attention_output(attn, x, pad, path, causal):
    future = torch.triu(torch.full((T, T), float("-inf"), dtype=x.dtype, device=x.device), 1) if causal else None
    with torch.no_grad():
        if path == "steps":
            state = {}
            return torch.cat([attn(x[t:t + 1], x[t:t + 1], x[t:t + 1], incremental_state=state, need_weights=False)[0]
                              for t in range(T)])
        padding = pad if path != "whole" else None
        return attn(x, x, x, key_padding_mask=padding, need_weights=path == "weights", attn_mask=future)[0]


@pytest.mark.parametrize("device,dtype", DTYPES)
@pytest.mark.parametrize("kind,path", CASES)
def test_low_precision_attention_agrees_with_fp32(dicts, monkeypatch, kind, path, device, dtype):
    arch, extra, stack = KINDS[kind]
    causal = stack == "decoder"
    if path == "padded by key ranges":
        monkeypatch.setattr(relative_attention, "DENSE_MASK_LIMIT", 0)
    torch.manual_seed(0)
    _, model, _ = build(dicts, arch, extra)
    attn = getattr(model, stack).layers[0].self_attn.to(device)
    x = torch.randn(T, B, attn.embed_dim, device=device)
    pad = torch.zeros(B, T, dtype=torch.bool, device=device)
    for row, n in ((1, 150), (2, 7)):  # fairseq pads sources on the left, targets on the right
        if causal:
            pad[row, T - n:] = True
        else:
            pad[row, :n] = True
    ref = attention_output(attn, x, pad, path, causal).float()
    low = attention_output(copy.deepcopy(attn).to(dtype), x.to(dtype), pad, path, causal).float()
    real = ~pad.t() if path != "whole" else torch.ones(T, B, dtype=torch.bool, device=device)
    assert torch.isfinite(low[real]).all()
    error = (low - ref)[real].abs().mean() / ref[real].abs().mean()
    assert error < 2 ** -7, f"{kind}, {path}: mean relative error {error:.4f}"
