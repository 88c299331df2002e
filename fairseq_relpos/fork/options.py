"""The saved configuration of the authors' fork of fairseq, read as this plugin's options.

The fork (github VarunGumma/fairseq, read at commit f6cd0f72) adds to fairseq's transformer
config ``attn_implementation``, JSON strings ``rope_args``, ``alibi_args`` and ``lora_args``,
and a few layer variants. What each computes there, and so what it maps to here:

- RoPE lives only in the fork's fast attention (``attn_implementation`` fast*), in encoder and
  decoder self-attention: half of each head's dimensions rotated in interleaved pairs, inverse
  frequencies ``theta^(-2k/d)`` over the d rotated dimensions, positions from 0 divided by
  ``scaling_factor``. That is ``transformer_rope`` with fraction 0.5, interleaved layout and
  linear scaling by ``scaling_factor``. With the default ``fairseq`` attention the fork ignores
  ``rope_args``, so such a checkpoint is refused rather than guessed at.
- ALiBi: Press et al.'s slopes; ``{"type": "symmetrical"}`` is -m|i-j| in the encoder,
  ``"asymmetrical"`` is -m(|i-j| - 1/2) for keys after the query (``half-nearer-ahead`` here);
  the decoder adds -m(i-j) to its causal mask (``causal`` here).
- LoRA: the fork merges its adapters into the weights on ``eval()`` and saves after
  ``eval()``, so the saved weights already hold W + scale B A (see ``weights``).

Anything else the fork adds must be at its default; any other value is refused by name.
"""
import json
import math

FORK = "the authors' fork (VarunGumma/fairseq at f6cd0f72)"
ATTENTION = ("fairseq", "fast", "fast_fused", "fast_gqa", "fast_gqa_fused")
ROPE_KEYS = ("theta", "scaling_factor")
ALIBI_TYPES = {"symmetrical": "symmetric", "asymmetrical": "half-nearer-ahead"}
LORA_KEYS = ("r", "alpha", "dropout", "rank_scaled", "target_modules", "bias")
# Fork-only layer variants and the values that leave fairseq's layers as they are.
PLAIN_LAYERS = {
    f"{stack}_{name}": allowed
    for stack in ("encoder", "decoder")
    for name, allowed in (("recurrent_stacking", (None, 1)), ("factorized_embed_dim", (None,)),
                          ("use_glu", (False, None)), ("use_mlp", (False, None)),
                          ("use_rmsnorm", (False, None)))
}
MARKERS = ("attn_implementation", "rope_args", "alibi_args", "lora_args")
FORK_ONLY = MARKERS + tuple(PLAIN_LAYERS) + ("encoder_kv_attention_heads", "decoder_kv_attention_heads")


class ForkOptionError(ValueError):
    """A fork option this plugin cannot honour; the message names it."""


def is_fork(args):
    """Whether a checkpoint's model options were saved by the fork (it always saves these)."""
    return any(key in args for key in MARKERS)


def _option(name):
    return "--" + name.replace("_", "-")


def _json(args, name, keys):
    text = args.get(name)
    if text is None:
        return None
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as err:
        raise ForkOptionError(f"{_option(name)} {text!r} is not JSON ({err.msg})") from None
    if not isinstance(value, dict):
        raise ForkOptionError(f"{_option(name)} {text!r} must be a JSON object")
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise ForkOptionError(f"{_option(name)} has {unknown[0]!r}, which {FORK} does not read "
                              f"(it reads {', '.join(keys)}); refusing to guess what the model computed")
    return value


def _check_plain_layers(args):
    for name, allowed in PLAIN_LAYERS.items():
        if args.get(name, allowed[0]) not in allowed:
            raise ForkOptionError(f"{_option(name)} {args[name]!r}: this plugin builds fairseq's own layers "
                                  f"only (the fork's {name.split('_', 1)[1]} variant has no equivalent here)")
    for stack in ("encoder", "decoder"):
        kv = args.get(f"{stack}_kv_attention_heads")
        if kv is not None and kv != args.get(f"{stack}_attention_heads"):
            raise ForkOptionError(f"--{stack}-kv-attention-heads {kv}: grouped-query attention has no "
                                  "equivalent here")


def _rope(args, rope, attention):
    if not attention.startswith("fast"):
        raise ForkOptionError(
            f"--rope-args {args['rope_args']!r} with --attn-implementation {attention!r}: {FORK} ignores "
            "rope_args unless the attention is fast*, so this model was trained without RoPE although its "
            "config asks for it; refusing rather than guessing which was meant")
    for key in ("use_xpos", "xpos_scale_base"):
        if key in rope:
            raise ForkOptionError(f"--rope-args {key!r}: {FORK} ignores it")
    theta = rope.get("theta", 10000)
    factor = rope.get("scaling_factor", 1.0)
    for key, value in (("theta", theta), ("scaling_factor", factor)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ForkOptionError(f"--rope-args {key} must be a finite number, got {value!r}")
    if factor < 1:
        raise ForkOptionError(f"--rope-args scaling_factor {factor} < 1 shrinks positions; this plugin's "
                              "linear scaling takes factors >= 1 only")
    for stack in ("encoder", "decoder"):
        head_dim = args[f"{stack}_embed_dim"] // args[f"{stack}_attention_heads"]
        if (head_dim // 2) % 2:
            raise ForkOptionError(
                f"{stack} heads of {head_dim} dimensions: the fork rotates head_dim // 2 = {head_dim // 2} "
                "of them, an odd number, with frequencies this plugin's RoPE does not reproduce")
    return dict(relative_positions="rope", rope_theta=float(theta), rope_fraction=0.5,
                rope_layout="interleaved", rope_scaling="linear" if factor != 1 else "none",
                rope_scaling_factor=float(factor))


def _alibi(alibi):
    if "type" not in alibi:
        raise ForkOptionError("--alibi-args has no 'type' ('symmetrical' or 'asymmetrical'), which the fork requires")
    if alibi["type"] not in ALIBI_TYPES:
        raise ForkOptionError(f"--alibi-args type {alibi['type']!r}: the fork knows 'asymmetrical' and treats "
                              "anything else as symmetric; use 'symmetrical' or 'asymmetrical'")
    return dict(relative_positions="alibi", alibi_encoder=ALIBI_TYPES[alibi["type"]])


def plugin_options(args):
    """(options to set, notes) for a fork checkpoint's model options ``args`` (a dict).

    The options say which of this plugin's models computes what the fork's did; notes say, in
    words, what was mapped. Raises ForkOptionError naming the first option that cannot be honoured.
    """
    attention = args.get("attn_implementation") or "fairseq"
    if attention not in ATTENTION:
        raise ForkOptionError(f"--attn-implementation {attention!r} is not one of the fork's ({', '.join(ATTENTION)})")
    _check_plain_layers(args)
    rope = _json(args, "rope_args", ROPE_KEYS + ("use_xpos", "xpos_scale_base"))
    alibi = _json(args, "alibi_args", ("type",))
    lora = _json(args, "lora_args", LORA_KEYS)
    if rope is not None and alibi is not None and attention.startswith("fast"):
        raise ForkOptionError("--rope-args and --alibi-args together: the fork applied both, which no "
                              "model of this plugin computes")
    relative = _rope(args, rope, attention) if rope is not None else _alibi(alibi) if alibi is not None else None
    if relative is not None:
        if args.get("encoder_learned_pos") or args.get("decoder_learned_pos") or \
                not args.get("no_token_positional_embeddings"):
            raise ForkOptionError(
                f"{'--rope-args' if rope is not None else '--alibi-args'} without "
                "--no-token-positional-embeddings: the fork added absolute positions as well, which no "
                "model of this plugin computes")
    notes = [f"read as {FORK} saved it: attention {attention}"]
    if relative is None:
        options = dict(_name="transformer", arch="transformer")
    else:
        options = dict(relative, _name=f"transformer_{relative['relative_positions']}",
                       arch=f"transformer_{relative['relative_positions']}")
        notes.append("positions " + ", ".join(f"{k}={v}" for k, v in relative.items()))
    return options, lora, attention.endswith("fused"), notes
