"""Checkpoints of the authors' fork (VarunGumma/fairseq at f6cd0f72) read by this plugin.

The fork's formulas are restated here from its code (rotary_embedding.py, utils.alibi); the
fork-style checkpoints are this plugin's models saved with the fork's options and parameter
names (tests/fork_fixtures.py), so a fork checkpoint must compute exactly its source model.
"""
import json
import math

import pytest
import torch

import fairseq_helpers as h  # noqa: E402
from fork_fixtures import forkify, load_like_generate, scores, source_model  # noqa: E402
from fairseq_versions import STOCK_FAST_PATH, is_fused_copy, stock_fast_path_bug  # noqa: E402

from fairseq_relpos.cli import main as cli  # noqa: E402
from fairseq_relpos.fork import options as fork_options  # noqa: E402
from fairseq_relpos.modules import ALiBi, RotaryEmbedding  # noqa: E402


def relpos(*argv):
    return cli.main([str(a) for a in argv])


# --- the fork's formulas, restated -------------------------------------------------------------

def fork_rotary(x, theta, scaling_factor, offset=0):
    """The fork's RotaryEmbedding(dim=head_dim // 2, theta, scaling_factor) on (..., T, head_dim):
    inv_freq = 1 / theta^(arange(0, d, 2) / d), angles (offset + t) / scaling_factor * inv_freq,
    each repeated for the two members of a pair; pair (2i, 2i+1) -> (x cos - y sin, y cos + x sin);
    dimensions from d on unchanged."""
    d = x.shape[-1] // 2
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    pos = (torch.arange(x.shape[-2], dtype=torch.float64) + offset) / scaling_factor
    angles = (pos[:, None] * inv[None, :]).repeat_interleave(2, dim=-1)
    rot = x[..., :d]
    half = torch.stack((-rot[..., 1::2], rot[..., 0::2]), dim=-1).flatten(-2)
    return torch.cat((rot * angles.cos() + half * angles.sin(), x[..., d:]), dim=-1)


def fork_slopes(n):
    """get_alibi_slopes: 2^(-(2^-(log2 n - 3))) to the powers 1..n; for n not a power of two,
    those of the lower power of two, then every other slope of twice that many heads."""
    def power(m):
        start = 2 ** (-(2 ** -(math.log2(m) - 3)))
        return [start * start ** i for i in range(m)]
    if math.log2(n).is_integer():
        return power(n)
    low = 2 ** math.floor(math.log2(n))
    return power(low) + fork_slopes(2 * low)[0::2][: n - low]


def fork_alibi(heads, length, asymmetrical):
    """utils.alibi: -slope * |j - i|, minus 0.5 from the distance above the diagonal when asymmetrical."""
    i = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    rel = (j - i).abs().double()
    if asymmetrical:
        rel = rel - 0.5 * (j > i).double()
    return -torch.tensor(fork_slopes(heads), dtype=torch.float64)[:, None, None] * rel


@pytest.mark.parametrize("theta,factor", [(10000, 1.0), (10000, 4.0), (500, 2.5)])
@pytest.mark.parametrize("head_dim", [16, 64])
def test_rope_options_mapped_from_rope_args_compute_the_forks_rotary(theta, factor, head_dim):
    rope_args = json.dumps({"theta": theta, "scaling_factor": factor} if factor != 1 else {"theta": theta})
    args = dict(attn_implementation="fast", rope_args=rope_args, no_token_positional_embeddings=True,
                encoder_embed_dim=head_dim * 4, decoder_embed_dim=head_dim * 4, encoder_attention_heads=4,
                decoder_attention_heads=4)
    options = fork_options.plugin_options(args)[0]
    rotary = RotaryEmbedding(head_dim, fraction=options["rope_fraction"], theta=options["rope_theta"],
                             layout=options["rope_layout"], scaling=options["rope_scaling"],
                             factor=options["rope_scaling_factor"])
    x = torch.randn(2, 4, 300, head_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for offset in (0, 17):
        got = rotary(x, offset=offset)
        assert torch.allclose(got, fork_rotary(x, theta, factor, offset), atol=1e-9, rtol=0)
    # float32, the dtype models run in: the same within float32 rounding
    got32 = rotary(x.float())
    assert torch.allclose(got32.double(), fork_rotary(x, theta, factor), atol=2e-5, rtol=0)


@pytest.mark.parametrize("heads", [4, 6, 16])
def test_half_nearer_ahead_is_the_forks_asymmetrical_alibi(heads):
    T = 11
    expected = fork_alibi(heads, T, asymmetrical=True)
    alibi = ALiBi(heads, "half-nearer-ahead")
    assert torch.allclose(alibi(T, T, 0, "cpu", torch.float64).double(), expected, atol=1e-6)
    # the strided view attention uses (keys reversed) holds the same numbers
    strided = alibi.strided_bias(T, T, 0, "cpu", torch.float32)[0].flip(-1)
    assert torch.allclose(strided.double(), expected, atol=1e-6)
    assert torch.allclose(ALiBi(heads, "symmetric")(T, T, 0, "cpu", torch.float32).double(),
                          fork_alibi(heads, T, asymmetrical=False), atol=1e-6)
    # the fork's decoder: its symmetric matrix added to the causal mask
    causal = ALiBi(heads, "causal")(T, T, 0, "cpu", torch.float32).double()
    lower = torch.tril(torch.ones(T, T, dtype=torch.bool))
    assert torch.allclose(causal[:, lower], fork_alibi(heads, T, False)[:, lower], atol=1e-6)


def test_asymmetric_mode_is_not_the_forks():
    """This plugin's own asymmetric mode (reversed slopes ahead) differs: the fork's is a mode of its own."""
    fork = fork_alibi(8, 6, asymmetrical=True)
    ours = ALiBi(8, "asymmetric")(6, 6, 0, "cpu", torch.float64).double()
    assert not torch.allclose(ours, fork, atol=1e-3)


# --- fork checkpoints compute their source models ----------------------------------------------

FORMS = {
    "roformer fast": ("transformer_rope", (), dict()),
    "roformer fast_fused + merged LoRA": (
        "transformer_rope", (), dict(fused=True, lora='{"r": 4, "alpha": 8, "target_modules": "qkv_proj,kv_proj"}')),
    "roformer, linear scaling": ("transformer_rope", ("--rope-scaling", "linear", "--rope-scaling-factor", "3"),
                                 dict(rope='{"theta": 10000, "scaling_factor": 3}')),
    "alibi asymmetrical, fairseq attention": (
        "transformer_alibi", ("--alibi-encoder", "half-nearer-ahead"),
        dict(arch="transformer_IT2_dist", attention="fairseq", rope=None, alibi='{"type": "asymmetrical"}')),
    "alibi symmetrical, fast attention": (
        "transformer_alibi", (), dict(arch="transformer", rope=None, alibi='{"type": "symmetrical"}')),
    "sinusoidal transformer_IT2_dist": (
        "transformer", (), dict(arch="transformer_IT2_dist", rope=None, no_token_positional_embeddings=False)),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_fork_checkpoint_loads_strictly_and_scores_as_its_source(form, tmp_path):
    arch, extra, fork_form = FORMS[form]
    data, task, model, path = source_model(tmp_path, arch, extra)
    fork = forkify(path, tmp_path / "fork.pt", **fork_form)
    fork_task, fork_model = load_like_generate(fork, data)
    assert fork_model.state_dict().keys() == model.state_dict().keys()
    for key, tensor in model.state_dict().items():
        # not what stock fairseq 0.12.2 derives: an uninitialised dtype carrier, and the fused
        # copies of encoder weights that its load fills from q/k/v (zeros in a built model)
        if not key.endswith("._float_tensor") and not is_fused_copy(key):
            assert torch.equal(fork_model.state_dict()[key], tensor), key
    if arch == "transformer" and STOCK_FAST_PATH:  # scoring a padded batch with a stock model
        pytest.skip(stock_fast_path_bug.kwargs["reason"])
    assert torch.allclose(scores(fork_model, fork_task), scores(model, task), atol=1e-5, rtol=0)


def test_inspect_convert_and_export_take_a_fork_checkpoint(tmp_path, capsys):
    data, task, model, path = source_model(tmp_path, "transformer_rope")
    fork = forkify(path, tmp_path / "fork.pt", fused=True)
    assert relpos("inspect", "--json", fork) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "transformer_rope"
    assert info["positions"]["theta"] == 10000 and info["positions"]["fraction"] == 0.5
    assert any("fast_fused" in note for note in info["read_as"])
    out = tmp_path / "native.pt"
    assert relpos("convert", "--pe", "rope", fork, out) == 0
    native_task, native = load_like_generate(out, data)
    assert torch.allclose(scores(native, native_task), scores(model, task), atol=1e-5, rtol=0)
    pytest.importorskip("ctranslate2")
    assert relpos("export", path, tmp_path / "ct2-source", "--data", data) == 0
    assert relpos("export", fork, tmp_path / "ct2-fork", "--data", data) == 0
    for name in ("model.bin", "config.json"):
        assert (tmp_path / "ct2-fork" / name).read_bytes() == (tmp_path / "ct2-source" / name).read_bytes()


REFUSALS = {
    "rope_args ignored by fairseq attention": (dict(attention="fairseq"), "ignores rope_args unless the attention is fast"),
    "unknown rope_args key": (dict(rope='{"theta": 10000, "base": 2}'), "'base'"),
    "xpos the fork ignores": (dict(rope='{"theta": 10000, "use_xpos": true}'), "'use_xpos'"),
    "unknown alibi type": (dict(rope=None, alibi='{"type": "sym"}'), "'sym'"),
    "alibi_args without a type": (dict(rope=None, alibi='{}'), "no 'type'"),
    "rope and alibi together": (dict(alibi='{"type": "symmetrical"}'), "both"),
    "unknown lora_args key": (dict(lora='{"r": 4, "scale": 2}'), "'scale'"),
    "LoRA on a layer not targeted": (dict(lora='{"r": 4, "target_modules": "fc1"}'), "target_modules"),
    "LoRA of another rank": (dict(lora='{"r": 8, "target_modules": "k_proj,v_proj"}'), "rank 8"),
    "RMSNorm": (dict(encoder_use_rmsnorm=True), "--encoder-use-rmsnorm"),
    "grouped-query attention": (dict(decoder_kv_attention_heads=2), "--decoder-kv-attention-heads"),
    "unknown attention": (dict(attention="flash"), "'flash'"),
    "rope with sinusoidal positions too": (dict(no_token_positional_embeddings=False), "absolute positions"),
    "rope_args not JSON": (dict(rope="theta=10000"), "not JSON"),
    "theta of 401 digits": (dict(rope='{"theta": %s}' % ("9" * 401)), "theta must be a finite number"),
    "scaling factor of 401 digits": (dict(rope='{"scaling_factor": %s}' % ("9" * 401)),
                                     "scaling_factor must be a finite number"),
    "alibi type a list": (dict(rope=None, alibi='{"type": ["symmetrical"]}'), "type ['symmetrical']"),
    "no heads": (dict(encoder_attention_heads=0), "--encoder-attention-heads must be a positive integer, got 0"),
    "heads as text": (dict(decoder_attention_heads="2"), "--decoder-attention-heads must be a positive integer, got '2'"),
    "heads that do not divide": (dict(encoder_attention_heads=3), "--encoder-attention-heads 3 does not divide"),
    "alibi with no heads": (dict(rope=None, alibi='{"type": "symmetrical"}', decoder_attention_heads=0),
                            "--decoder-attention-heads must be a positive integer, got 0"),
    "heads of one dimension": (dict(encoder_attention_heads=32), "--encoder-attention-heads 32 gives heads of 1"),
    "LoRA rank not a number": (dict(lora='{"r": "4", "target_modules": "k_proj,v_proj"}'),
                               "--lora-args r must be a positive integer"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_what_the_plugin_cannot_honour_is_refused_by_name(case, tmp_path, capsys):
    fields, said = REFUSALS[case]  # lora: the fixture puts rank-4 adapters on k_proj and v_proj
    _, _, _, path = source_model(tmp_path, "transformer_rope")
    fork = forkify(path, tmp_path / "fork.pt", **fields)
    capsys.readouterr()
    for argv in (["inspect", fork], ["convert", "--pe", "rope", fork, tmp_path / "out.pt"]):
        assert relpos(*argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and said in err and str(fork) in err, err
    assert not (tmp_path / "out.pt").exists()
    from fairseq import checkpoint_utils
    with pytest.raises(ValueError, match="fork.pt"):
        checkpoint_utils.load_checkpoint_to_cpu(str(fork))


def _fused_weight(state, tensor):
    key = next(k for k in state["model"] if k.endswith("layers.0.self_attn.qkv_proj.weight"))
    state["model"][key] = tensor


def _adapter(state, suffix, tensor=None):
    key = next(k for k in sorted(state["model"]) if k.endswith(suffix))
    if tensor is None:
        del state["model"][key]
    else:
        state["model"][key] = tensor


EDITED_REFUSALS = {  # name: (forkify fields, edit of the saved state, what the one line says)
    "fused qkv as a 0-d tensor": (dict(fused=True), lambda s: _fused_weight(s, torch.tensor(1.0)),
                                  "self_attn.qkv_proj.weight is a 0-d tensor"),
    "fused qkv of another width": (dict(fused=True), lambda s: _fused_weight(s, torch.zeros(96, 16)),
                                   "qkv_proj.weight has shape (96, 16); the attention's out_proj.weight (32, 32) "
                                   "gives 3 blocks of 32: (96, 32)"),
    "fused qkv of fewer rows": (dict(fused=True), lambda s: _fused_weight(s, torch.zeros(48, 32)),
                                "qkv_proj.weight has shape (48, 32)"),
    "a lone lora_A": (dict(lora='{"r": 4, "target_modules": "k_proj,v_proj"}'), lambda s: _adapter(s, "lora_B"),
                      "lora_A has no lora_B beside it"),
    "lora_A of another width": (dict(lora='{"r": 4, "target_modules": "k_proj,v_proj"}'),
                                lambda s: _adapter(s, "k_proj.lora_A", torch.zeros(4, 64)),
                                "lora_A has shape (4, 64); rank 4 (--lora-args r) on "),
}


@pytest.mark.parametrize("case", list(EDITED_REFUSALS))
def test_edited_weights_are_refused_in_one_line(case, tmp_path, capsys):
    fields, edit, said = EDITED_REFUSALS[case]
    _, _, _, path = source_model(tmp_path, "transformer_rope")
    fork = forkify(path, tmp_path / "fork.pt", **fields)
    state = torch.load(fork, weights_only=False)
    edit(state)
    torch.save(state, fork)
    capsys.readouterr()
    for argv in (["inspect", fork], ["convert", "--pe", "rope", fork, tmp_path / "out.pt"]):
        assert relpos(*argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and said in err and str(fork) in err, err
    assert not (tmp_path / "out.pt").exists()
    from fairseq import checkpoint_utils  # what fairseq-generate --path reads it with
    with pytest.raises(ValueError) as refused:
        checkpoint_utils.load_checkpoint_to_cpu(str(fork))
    assert said in str(refused.value)


def test_fork_architecture_names_train_with_the_forks_shapes(tmp_path):
    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_NAME_REGISTRY
    assert ARCH_MODEL_NAME_REGISTRY["roformer_IT2_dist"] == "transformer_relpos"
    assert ARCH_MODEL_NAME_REGISTRY["transformer_IT2"] == "transformer"
    import argparse
    args = argparse.Namespace()
    ARCH_CONFIG_REGISTRY["roformer_IT2"](args)
    assert (args.encoder_layers, args.encoder_embed_dim, args.encoder_ffn_embed_dim, args.encoder_attention_heads,
            args.layernorm_embedding, args.relative_positions, args.rope_fraction) == (18, 1024, 8192, 16, False,
                                                                                        "rope", 0.5)
    args = argparse.Namespace()
    ARCH_CONFIG_REGISTRY["roformer_IT2_dist"](args)
    assert (args.encoder_embed_dim, args.layernorm_embedding, args.share_decoder_input_output_embed,
            args.activation_fn) == (512, True, True, "gelu")


# --- through fairseq's own command lines -------------------------------------------------------

@pytest.fixture(scope="module")
def fork_of_a_trained_model(reversal_base, tmp_path_factory):
    """(data, plugin RoPE checkpoint, the same as the fork saves it) from the trained base."""
    data, base, _ = reversal_base
    root = tmp_path_factory.mktemp("fork")
    rope = root / "rope.pt"
    assert relpos("convert", "--pe", "rope", base, rope) == 0
    return data, rope, forkify(rope, root / "fork.pt", fused=True)


@pytest.mark.slow
def test_fairseq_generate_decodes_a_fork_checkpoint_as_its_source(fork_of_a_trained_model):
    from test_switch import ONE_THREAD
    data, rope, fork = fork_of_a_trained_model
    outputs = []
    for path in (rope, fork):
        proc = h.run("generate", data, "--path", path, "--user-dir", h.PLUGIN, "--gen-subset", "test",
                     "--batch-size", 4, "--required-batch-size-multiple", 1, "--beam", 3, "--max-len-b", 20,
                     env=ONE_THREAD)
        outputs.append(sorted(line for line in proc.stdout.splitlines() if line[:2] in ("H-", "P-")))
    assert outputs[0] and outputs[0] == outputs[1]


@pytest.mark.slow
@pytest.mark.parametrize("arch,form", [("transformer_rope", "finetune"), ("roformer_IT2_dist", "finetune"),
                                       ("transformer_rope", "restore")])
def test_fairseq_train_starts_from_a_fork_checkpoint(fork_of_a_trained_model, tmp_path, arch, form):
    from test_switch import load_like_fairseq_train, start_argv
    data, rope, fork = fork_of_a_trained_model
    trainer = load_like_fairseq_train(start_argv(data, tmp_path / "save", arch, fork, form))
    source = torch.load(rope, weights_only=True)["model"]
    got = trainer.model.state_dict()
    assert got.keys() == source.keys()
    for key, tensor in source.items():
        assert torch.equal(got[key], tensor), key
    assert trainer.model.encoder.layers[0].self_attn.rotary.theta == 10000


@pytest.mark.parametrize("arch,fork_form,overrides", [
    ("transformer_rope", dict(), dict(rope_theta=500.0, rope_scaling="linear", rope_scaling_factor=3.0)),
    ("transformer_alibi", dict(arch="transformer", rope=None, alibi='{"type": "symmetrical"}'),
     dict(alibi_encoder="asymmetric")),
])
def test_model_overrides_of_position_options_win_over_a_fork_checkpoints_own(arch, fork_form, overrides, tmp_path):
    """--model-overrides (fairseq's arg_overrides) of position options must give the model that
    was built with those options, for a fork checkpoint as for the plugin's own."""
    from fairseq import checkpoint_utils
    data, task, _, path = source_model(tmp_path / "as-saved", arch)
    fork = forkify(path, tmp_path / "fork.pt", **fork_form)
    given = [a for k, v in overrides.items() for a in ("--" + k.replace("_", "-"), str(v))]
    _, ref_task, reference, _ = source_model(tmp_path / "as-overridden", arch, given)
    wanted = scores(reference, ref_task)
    assert not torch.allclose(scores(load_like_generate(fork, data)[1], task), wanted, atol=1e-3)
    for checkpoint in (path, fork):
        models, _, loaded_task = checkpoint_utils.load_model_ensemble_and_task(
            [str(checkpoint)], arg_overrides={"data": str(data), **overrides})
        assert torch.allclose(scores(models[0].eval(), loaded_task), wanted, atol=1e-5, rtol=0), checkpoint
