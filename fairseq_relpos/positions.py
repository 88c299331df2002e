"""The positional options: their names, choices, defaults and one validation, for every path
that takes them. A leaf module (no torch, no fairseq), so the command line can build its parser
without loading either.

The model (fairseq-train/generate, through its architecture and ``build_model``), ``convert`` and
the rotary module all check here, so a bad value is refused where it is given, naming the
option, instead of surfacing later as NaN gradients (``--rope-theta nan``), an assertion in
fairseq's length filter (``--max-positions 0``) or a checkpoint that cannot be built.
"""
import argparse
import math
import numbers

POSITIONS = ("rope", "alibi", "nope")          # relative schemes: architectures transformer_{...}
ROPE_LAYOUTS = ("interleaved", "half")
ROPE_SCALINGS = ("none", "linear", "ntk")
ALIBI_MODES = ("symmetric", "asymmetric", "half-nearer-ahead", "causal")
ALIBI_ENCODER_MODES = tuple(m for m in ALIBI_MODES if m != "causal")  # the decoder is always causal
DEFAULTS = {"rope_theta": 10000.0, "rope_fraction": 0.5, "rope_layout": "interleaved",
            "rope_scaling": "none", "rope_scaling_factor": 1.0, "alibi_encoder": "symmetric"}
ROPE_OPTIONS = tuple(k for k in DEFAULTS if k.startswith("rope_"))
ALIBI_OPTIONS = ("alibi_encoder",)
POSITIVE_INTEGER = "a positive integer"
RULES = {
    "rope_theta": ("a finite number > 1", lambda v: math.isfinite(v) and v > 1),
    "rope_fraction": ("in (0, 1]", lambda v: 0 < v <= 1),  # False for nan
    "rope_scaling_factor": ("a finite number > 0", lambda v: math.isfinite(v) and v > 0),
    "max_positions": (POSITIVE_INTEGER, lambda v: v > 0),
    "max_source_positions": (POSITIVE_INTEGER, lambda v: v > 0),
    "max_target_positions": (POSITIVE_INTEGER, lambda v: v > 0),
}


def option(name):
    return "--" + name.replace("_", "-")


def _is_number(value, integer):
    kind = numbers.Integral if integer else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool)


def check(name, value):
    """Refuse a value that breaks ``name``'s rule (see RULES), naming the option."""
    requirement, ok = RULES[name]
    if not _is_number(value, requirement == POSITIVE_INTEGER) or not ok(value):
        raise ValueError(f"{option(name)} must be {requirement}, got {value!r}")
    return value


def add_arguments(parser, defaults_in_help=True):
    """The ``--rope-*`` and ``--alibi-encoder`` options (fairseq-train's model arguments and
    ``convert``'s). Their argparse default is None, so that an option given with a scheme it
    does not apply to can be told from one left unset (:func:`refuse_unused`)."""
    parser.add_argument("--rope-theta", type=argparse_type("rope_theta"), metavar="F",
                        help="RoPE base wavelength (default 10000)")
    parser.add_argument("--rope-fraction", type=argparse_type("rope_fraction"), metavar="F",
                        help="share of each head's dimension that is rotated (default 0.5, "
                             "as in the authors' fork; 1.0 rotates all)")
    parser.add_argument("--rope-layout", choices=ROPE_LAYOUTS,
                        help="pairs rotated together: interleaved (0,1),(2,3).. as in the "
                             "authors' fork, or half (i, i+d/2) as in fairseq/NeoX (default interleaved)")
    parser.add_argument("--rope-scaling", choices=ROPE_SCALINGS,
                        help="position scaling for extrapolation: linear interpolation or "
                             "NTK-aware (default none)")
    parser.add_argument("--rope-scaling-factor", type=argparse_type("rope_scaling_factor"), metavar="F",
                        help="scaling factor, e.g. target length / training length (default 1)")
    parser.add_argument("--alibi-encoder", choices=ALIBI_ENCODER_MODES,
                        help="ALiBi bias in the encoder (default symmetric); the decoder is causal")


def applies(name, positions):
    """Whether the positional option ``name`` means anything to ``positions`` (a scheme)."""
    return positions == "rope" if name in ROPE_OPTIONS else positions == "alibi"


def refuse_unused(positions, values, explicit=False):
    """Refuse a RoPE option with another scheme and ``--alibi-encoder`` without ALiBi: they would
    be accepted and do nothing. ``values`` maps option names to what was given (None = unset).
    Unless the values are all ``explicit`` (a command line of our own), one equal to the default
    passes: a model config saved by fairseq holds every option's default, whatever the scheme."""
    for name, value in values.items():
        if value is not None and not applies(name, positions) and (explicit or value != DEFAULTS[name]):
            scheme = "RoPE (transformer_rope, --pe rope)" if name in ROPE_OPTIONS else \
                "ALiBi (transformer_alibi, --pe alibi)"
            raise ValueError(f"{option(name)} {value} applies only to {scheme}, not to {positions} positions")


def fill_defaults(args):
    """Set every unset positional option of a model config to its default."""
    for name, value in DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


def argparse_type(name):
    """The same rule as an argparse ``type``, so the command line refuses a bad value at once."""
    convert = int if RULES[name][0] == POSITIVE_INTEGER else float

    def parse(text):
        try:
            return check(name, convert(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {RULES[name][0]}, got {text!r}") from None

    parse.__name__ = convert.__name__  # argparse names the type in "invalid ... value" messages
    return parse


def rotated_dims(head_dim, fraction, theta, scaling, factor, heads_from=""):
    """The number of rotated dimensions per head, after checking every RoPE option: the
    fraction must rotate an even whole number of the head's dimensions (pairs rotate together),
    and a scaling factor means something only with a scaling method, which needs it >= 1 (a
    smaller one would shrink the context instead of stretching it). ``heads_from`` says where the
    head's dimension comes from, for the message."""
    check("rope_theta", theta)
    check("rope_fraction", fraction)
    check("rope_scaling_factor", factor)
    rotated = head_dim * fraction
    if abs(rotated - round(rotated)) > 1e-6 or round(rotated) % 2 or round(rotated) < 2:
        raise ValueError(f"--rope-fraction {fraction} rotates {rotated:g} of the {head_dim} dimensions of "
                         f"each head{heads_from}; it must rotate an even number of them (2, 4, ... "
                         f"{head_dim // 2 * 2})")
    if scaling == "none" and factor != 1:
        raise ValueError(f"--rope-scaling-factor {factor} needs --rope-scaling linear or ntk")
    if scaling != "none" and factor < 1:
        raise ValueError(f"--rope-scaling-factor must be >= 1 with --rope-scaling {scaling} (it stretches "
                         f"positions by that factor), got {factor}")
    if scaling == "ntk":
        ntk_theta(theta, factor, round(rotated))  # refuses a factor that makes it infinite
    return round(rotated)


def ntk_theta(theta, factor, dims):
    """NTK-aware scaling's larger base, theta * factor^(d/(d-2)) for ``dims`` rotated dimensions,
    checked finite: a huge factor would otherwise end in OverflowError wherever tables are built."""
    if factor == 1:
        return theta  # no stretch, whatever the exponent
    if dims <= 2:
        raise ValueError(f"--rope-scaling ntk needs at least 4 rotated dimensions per head (its exponent is "
                         f"d/(d-2)), got {dims}; raise --rope-fraction or use --rope-scaling linear")
    try:
        effective = theta * factor ** (dims / (dims - 2))
    except OverflowError:
        effective = math.inf
    if not math.isfinite(effective):
        raise ValueError(f"--rope-scaling-factor {factor:g} is too large for --rope-scaling ntk: the effective "
                         f"theta {theta:g} * {factor:g}^({dims}/{dims - 2}) is not a finite number")
    return effective


def check_model(args):
    """Every positional option of a model's config (an argparse Namespace), after the
    architecture filled in the defaults (an unset length limit takes fairseq's default later)."""
    for name in ("max_source_positions", "max_target_positions"):
        if getattr(args, name, None) is not None:
            check(name, getattr(args, name))
    if getattr(args, "relative_positions", None) == "alibi":
        if getattr(args, "alibi_encoder", None) not in ALIBI_ENCODER_MODES:
            raise ValueError(f"--alibi-encoder must be one of {', '.join(ALIBI_ENCODER_MODES)}, "
                             f"got {getattr(args, 'alibi_encoder', None)!r}")
    if getattr(args, "relative_positions", None) == "rope":
        for stack in ("encoder", "decoder"):
            dim, heads = getattr(args, f"{stack}_embed_dim"), getattr(args, f"{stack}_attention_heads")
            if not (_is_number(dim, True) and _is_number(heads, True) and heads > 0 and dim > 0 and dim % heads == 0):
                raise ValueError(f"--{stack}-attention-heads {heads!r} must be a positive integer that divides "
                                 f"--{stack}-embed-dim {dim!r}")
            rotated_dims(dim // heads, args.rope_fraction, args.rope_theta, args.rope_scaling,
                         args.rope_scaling_factor,
                         f" (--{stack}-embed-dim {dim} over --{stack}-attention-heads {heads})")
