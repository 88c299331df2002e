"""The same model, parameters and checkpoints on fairseq 0.12.2 and main.

fairseq 0.12.2's encoder layers carry a fused copy of their weights (eight more parameters a
layer, never trained, saved in checkpoints, absent on main); the plugin's models have none, so
their parameter count is the architecture's, every parameter trains, and a checkpoint that
0.12.2 saved with the copies loads anywhere. (Across two installs:
scripts/checkpoints_across_fairseq.py.)
"""
import pytest
import torch

from fairseq_relpos.modules.unfused_layer import FUSED_COPIES
from model_builders import TINY, build, write_dicts
from test_positions_always_used import encode, loaded, position_batch


@pytest.fixture(scope="module")
def dicts(tmp_path_factory):
    return write_dicts(tmp_path_factory.mktemp("dicts"))


def test_parameter_count_is_the_architectures(dicts):
    d, ffn, layers, vocab = (TINY["encoder_embed_dim"], TINY["encoder_ffn_embed_dim"], TINY["encoder_layers"],
                             44)  # 40 words + 4 specials, in each dictionary
    linear = lambda i, o: i * o + o  # noqa: E731
    norm = 2 * d
    encoder_layer = 4 * linear(d, d) + linear(d, ffn) + linear(ffn, d) + 2 * norm
    decoder_layer = 8 * linear(d, d) + linear(d, ffn) + linear(ffn, d) + 3 * norm
    # source and target embeddings, and the decoder's output projection (no bias, not shared)
    expected = layers * (encoder_layer + decoder_layer) + 3 * vocab * d
    for arch in ("transformer_rope", "transformer_alibi", "transformer_nope"):
        _, model, _ = build(dicts, arch)
        assert sum(p.numel() for p in model.parameters()) == expected, arch


@pytest.mark.parametrize("arch", ["transformer_rope", "transformer_alibi"])
def test_every_parameter_gets_a_gradient(dicts, arch):
    """No parameter is a dead copy (0.12.2's fused weights never got one: DDP failed on them)."""
    task, model = loaded(dicts, arch)
    model.train()
    src, lengths, _ = position_batch(task)
    prev = torch.full((src.size(0), 4), task.target_dictionary.eos())
    logits, _ = model(src, lengths, prev)
    logits.float().logsumexp(-1).mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None]
    assert not dead


def test_checkpoint_with_fairseq_0_12_2_fused_copies_loads(dicts):
    """fairseq 0.12.2 saves each encoder layer's fused copy beside q/k/v (stale after training);
    the plugin drops it by name on load, on any fairseq, and saves none."""
    task, model = loaded(dicts, "transformer_rope")
    state = model.state_dict()
    assert not [k for k in state if k.rsplit(".", 1)[-1] in FUSED_COPIES]
    saved = dict(state)
    for i, layer in enumerate(model.encoder.layers):
        prefix = f"encoder.layers.{i}."
        for name in FUSED_COPIES:
            saved[prefix + name] = torch.zeros(3)  # 0.12.2's build-time zeros; never read
    torch.manual_seed(1)
    _, fresh = build(dicts, "transformer_rope")[:2]
    fresh.load_state_dict(saved)
    src, lengths, _ = position_batch(task)
    with torch.no_grad():
        torch.testing.assert_close(encode(fresh.eval(), src, lengths), encode(model, src, lengths))
