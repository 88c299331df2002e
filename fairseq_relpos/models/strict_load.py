"""Strict, explained loading of stock checkpoints into relative-position models.

The only weights a relative model knowingly leaves behind are the sinusoidal tables, which
are derived buffers, not learned. Everything else must match by name and shape; when it
does not, the error says what and how to fix it instead of torch's bare key lists, and is
raised before anything is copied. ``models.switch`` is the same switch done offline on a
saved checkpoint (``fairseq-relpos convert``).
"""
from ..positions import DEFAULTS

SINUSOIDAL_BUFFERS = ("_float_tensor", "weights")


class CheckpointMismatchError(RuntimeError):
    pass


def drop_absolute_positions(state_dict, name=""):
    """Remove sinusoidal position buffers (older fairseq saved them); refuse learned ones."""
    prefix = f"{name}." if name else ""
    for stack in ("encoder", "decoder"):
        head = f"{prefix}{stack}.embed_positions."
        for key in [k for k in state_dict if k.startswith(head)]:
            if key[len(head):] in SINUSOIDAL_BUFFERS:
                del state_dict[key]
            else:
                raise CheckpointMismatchError(
                    f"the checkpoint has learned positional embeddings ({key}); they are weights "
                    "that a relative-position model cannot use. Only sinusoidal checkpoints can be "
                    "switched to RoPE/ALiBi/NoPE.")


def refuse_mismatch(model, state_dict, prefix, local_metadata, strict, *unused):
    """A load_state_dict pre-hook for the root module: it sees the upgraded state dict before
    torch copies anything, so a strict load that would fail copies nothing (torch itself
    copies every matching tensor first and complains afterwards)."""
    if strict and not prefix:
        problems = mismatches(model, state_dict)
        if any(problems):
            raise CheckpointMismatchError(describe_mismatch(*problems))


def mismatches(model, state_dict):
    """(missing, unexpected, wrong-shape) keys between a model and a state dict."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state_dict and hasattr(state_dict[k], "shape")
             and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    return missing, unexpected, wrong


def describe_mismatch(missing, unexpected, wrong, limit=12):
    lines = ["the checkpoint does not fit the model (nothing was loaded):"]
    for title, keys in (("missing from the checkpoint", missing),
                        ("in the checkpoint but not in the model", unexpected),
                        ("wrong shape", wrong)):
        if keys:
            shown = "\n    ".join(keys[:limit])
            more = f"\n    ... and {len(keys) - limit} more" if len(keys) > limit else ""
            lines.append(f"  {title} ({len(keys)}):\n    {shown}{more}")
    advice = ["what to do:"]
    if any(w.split(".")[1].startswith(("embed_tokens", "output_projection")) for w in wrong):
        advice.append("  - embedding shapes differ, so the dictionaries differ: binarise your data "
                      "with the checkpoint's own dictionaries (fairseq-preprocess --srcdict/--tgtdict, "
                      "or --srcdict alone with --joined-dictionary)")
    advice.append("  - do not restate the checkpoint's shape on the command line: with "
                  "--finetune-from-model or --restore-file the layers, dimensions, heads and "
                  "normalisation are read from the checkpoint; drop any flag that contradicts it")
    advice.append("  - inspect it with `fairseq-relpos inspect CKPT`")
    return "\n".join(lines + advice)


RELATIVE_OPTIONS = ("relative_positions", *DEFAULTS)


def position_kind(args, weights=()):
    """'learned', 'sinusoidal', 'none' (stock model without positions) or the relative type."""
    if args.get("relative_positions"):
        return args["relative_positions"]
    if args.get("encoder_learned_pos") or args.get("decoder_learned_pos") or any(
            k.endswith("embed_positions.weight") for k in weights):
        return "learned"
    return "none" if args.get("no_token_positional_embeddings") else "sinusoidal"
