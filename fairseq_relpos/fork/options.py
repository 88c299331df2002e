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
import numbers

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


def shown(value):
    """A value read from a file as one short line: a 401-digit number is cut, not printed whole."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:24]}... ({len(text)} characters)"


def _finite_number(value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _positive_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _json(args, name, keys, spell):
    text = args.get(name)
    if text is None:
        return None
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as err:
        raise ForkOptionError(f"{spell(name)} {shown(text)} is not JSON ({err.msg})") from None
    if not isinstance(value, dict):
        raise ForkOptionError(f"{spell(name)} {shown(text)} must be a JSON object")
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise ForkOptionError(f"{spell(name)} has {unknown[0]!r}, which {FORK} does not read "
                              f"(it reads {', '.join(keys)}); refusing to guess what the model computed")
    return value


def _check_plain_layers(args, spell):
    for name, allowed in PLAIN_LAYERS.items():
        if args.get(name, allowed[0]) not in allowed:
            raise ForkOptionError(f"{spell(name)} {shown(args[name])}: this plugin builds fairseq's own layers "
                                  f"only (the fork's {name.split('_', 1)[1]} variant has no equivalent here)")
    for stack in ("encoder", "decoder"):
        kv = args.get(f"{stack}_kv_attention_heads")
        if kv is not None and kv != args.get(f"{stack}_attention_heads"):
            raise ForkOptionError(f"{spell(f'{stack}_kv_attention_heads')} {shown(kv)}: grouped-query attention "
                                  "has no equivalent here")


def head_dim(args, stack, spell=_option):
    """The dimensions of one head of ``stack``, after checking that its dimension and heads are
    positive integers and the heads divide the dimension."""
    dim, heads = (args.get(f"{stack}_{name}") for name in ("embed_dim", "attention_heads"))
    for name, value in ((f"{stack}_embed_dim", dim), (f"{stack}_attention_heads", heads)):
        if not _positive_integer(value):
            raise ForkOptionError(f"{spell(name)} must be a positive integer, got {shown(value)}")
    if dim % heads:
        raise ForkOptionError(f"{spell(f'{stack}_attention_heads')} {heads} does not divide the {stack}'s "
                              f"dimension {dim}")
    return dim // heads


def _rope(args, rope, attention, spell):
    if not attention.startswith("fast"):
        raise ForkOptionError(
            f"{spell('rope_args')} {shown(args['rope_args'])} with {spell('attn_implementation')} {attention!r}: "
            f"{FORK} ignores rope_args unless the attention is fast*, so this model was trained without RoPE "
            "although its config asks for it; refusing rather than guessing which was meant")
    for key in ("use_xpos", "xpos_scale_base"):
        if key in rope:
            raise ForkOptionError(f"{spell('rope_args')} {key!r}: {FORK} ignores it")
    theta = rope.get("theta", 10000)
    factor = rope.get("scaling_factor", 1.0)
    for key, value in (("theta", theta), ("scaling_factor", factor)):
        if not _finite_number(value):
            raise ForkOptionError(f"{spell('rope_args')} {key} must be a finite number, got {shown(value)}")
    if factor < 1:
        raise ForkOptionError(f"{spell('rope_args')} scaling_factor {factor} < 1 shrinks positions; this plugin's "
                              "linear scaling takes factors >= 1 only")
    for stack in ("encoder", "decoder"):
        dims = head_dim(args, stack, spell)
        if dims % 2 or (dims // 2) % 2 or dims < 4:
            raise ForkOptionError(
                f"{spell(f'{stack}_attention_heads')} {args[f'{stack}_attention_heads']} gives heads of {dims} "
                f"dimensions: the fork rotates head_dim // 2 = {dims // 2} of them, which this plugin's RoPE "
                "(half of each head, in pairs) does not reproduce")
    return dict(relative_positions="rope", rope_theta=float(theta), rope_fraction=0.5,
                rope_layout="interleaved", rope_scaling="linear" if factor != 1 else "none",
                rope_scaling_factor=float(factor))


def _alibi(alibi, spell):
    if "type" not in alibi:
        raise ForkOptionError(f"{spell('alibi_args')} has no 'type' ('symmetrical' or 'asymmetrical'), which the "
                              "fork requires")
    if not isinstance(alibi["type"], str) or alibi["type"] not in ALIBI_TYPES:
        raise ForkOptionError(f"{spell('alibi_args')} type {shown(alibi['type'])}: the fork knows 'asymmetrical' "
                              "and treats anything else as symmetric; use 'symmetrical' or 'asymmetrical'")
    return dict(relative_positions="alibi", alibi_encoder=ALIBI_TYPES[alibi["type"]])


def plugin_options(args, spell=_option):
    """(options to set, notes) for a fork checkpoint's model options ``args`` (a dict).

    The options say which of this plugin's models computes what the fork's did; notes say, in
    words, what was mapped. Raises ForkOptionError naming the first option that cannot be honoured,
    as ``spell`` writes its name (the fork's command-line option; a config.json gives field names).
    """
    attention = args.get("attn_implementation") or "fairseq"
    if not isinstance(attention, str) or attention not in ATTENTION:
        raise ForkOptionError(f"{spell('attn_implementation')} {shown(attention)} is not one of the fork's "
                              f"({', '.join(ATTENTION)})")
    for stack in ("encoder", "decoder"):
        if args.get(f"{stack}_embed_dim") is not None or args.get(f"{stack}_attention_heads") is not None:
            head_dim(args, stack, spell)
    _check_plain_layers(args, spell)
    rope = _json(args, "rope_args", ROPE_KEYS + ("use_xpos", "xpos_scale_base"), spell)
    alibi = _json(args, "alibi_args", ("type",), spell)
    lora = _json(args, "lora_args", LORA_KEYS, spell)
    if rope is not None and alibi is not None and attention.startswith("fast"):
        raise ForkOptionError(f"{spell('rope_args')} and {spell('alibi_args')} together: the fork applied both, "
                              "which no model of this plugin computes")
    relative = _rope(args, rope, attention, spell) if rope is not None else \
        _alibi(alibi, spell) if alibi is not None else None
    if relative is not None:
        if args.get("encoder_learned_pos") or args.get("decoder_learned_pos") or \
                not args.get("no_token_positional_embeddings"):
            raise ForkOptionError(
                f"{spell('rope_args' if rope is not None else 'alibi_args')} without "
                f"{spell('no_token_positional_embeddings')}: the fork added absolute positions as well, which no "
                "model of this plugin computes")
    notes = [f"read as {FORK} saved it: attention {attention}"]
    if relative is None:
        options = dict(_name="transformer", arch="transformer")
    else:
        options = dict(relative, _name=f"transformer_{relative['relative_positions']}",
                       arch=f"transformer_{relative['relative_positions']}")
        notes.append("positions " + ", ".join(f"{k}={v}" for k, v in relative.items()))
    return options, lora, attention.endswith("fused"), notes
