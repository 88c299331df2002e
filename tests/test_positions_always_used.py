"""No fast path runs a relative model without its positions, on any fairseq.

fairseq 0.12.2's encoder layer has a BetterTransformer fast path that, in eval mode after a
checkpoint load, skips ``self_attn``: the model then encodes without RoPE/ALiBi (silently on an
unpadded batch) or fails on a padded one. These tests hold on every fairseq version: every
layer's relative attention is the module that ran, and a token's encoder state depends on
where it stands, in train and eval mode, padded or not.
"""
import pytest
import torch

from fairseq_relpos.modules import RelativeSelfAttention
from model_builders import build, write_dicts


@pytest.fixture(scope="module")
def dicts(tmp_path_factory):
    return write_dicts(tmp_path_factory.mktemp("dicts"))


def loaded(dicts, arch):
    """A model as fairseq-generate has it: built, then loaded from a checkpoint (0.12.2 turns
    its fast path on at load), in eval mode."""
    torch.manual_seed(0)
    task, model, _ = build(dicts, arch)
    model.load_state_dict(model.state_dict())
    return task, model.eval()


def position_batch(task):
    """Three sources, left-padded as fairseq pads them: a full-length row, then one sentence
    and its reversal, so the same token stands first in one row and fifth in the other."""
    d = task.source_dictionary
    t = [d.nspecial + i for i in range(7)]
    rows = [t + [d.eos()],
            [d.pad()] * 2 + t[:5] + [d.eos()],
            [d.pad()] * 2 + t[:5][::-1] + [d.eos()]]
    src = torch.tensor(rows)
    return src, src.ne(d.pad()).sum(1), t[0]


def count_calls(model):
    """{module name: calls} for every self-attention, which must all be the plugin's."""
    calls = {}
    for stack in (model.encoder, model.decoder):
        for i, layer in enumerate(stack.layers):
            name = f"{'encoder' if stack is model.encoder else 'decoder'}.layers.{i}.self_attn"
            assert isinstance(layer.self_attn, RelativeSelfAttention), name
            calls[name] = 0
            layer.self_attn.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    return calls


def encode(model, src, lengths):
    return model.encoder(src, src_lengths=lengths)["encoder_out"][0]  # T x B x C


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("arch", ["transformer_rope", "transformer_alibi"])
def test_every_layer_runs_its_relative_attention(dicts, arch, padded, mode):
    task, model = loaded(dicts, arch)
    model.train(mode == "train")
    src, lengths, _ = position_batch(task)
    if not padded:
        src, lengths = src[:1], lengths[:1]
    prev = torch.full((src.size(0), 4), task.target_dictionary.eos())
    calls = count_calls(model)
    with torch.set_grad_enabled(mode == "train"):
        model(src, lengths, prev)
    assert calls == {name: 1 for name in calls}


@pytest.mark.parametrize("arch", ["transformer_rope", "transformer_alibi", "transformer_nope"])
def test_encoder_state_depends_on_position_at_inference(dicts, arch):
    """The same token, first in a sentence and fifth in its reversal, in one padded batch:
    with NoPE (the control) its state is the same, with RoPE or ALiBi it is not."""
    task, model = loaded(dicts, arch)
    src, lengths, _ = position_batch(task)
    with torch.no_grad():
        out = encode(model, src, lengths)
        alone = encode(model, src[1:2, 2:], lengths[1:2])  # the sentence unpadded, on its own
    first, fifth = out[2, 1], out[6, 2]
    gap = (first - fifth).abs().max().item()
    if arch == "transformer_nope":
        assert gap < 1e-5
    else:
        assert gap > 1e-2, f"{arch}: a token is encoded the same at two positions (gap {gap:.2e})"
    # padding changes nothing: the padded row equals the sentence encoded alone
    torch.testing.assert_close(out[2:, 1], alone[:, 0], atol=1e-5, rtol=1e-5)
