"""Strict, explained loading of stock checkpoints into relative-position models.

The only weights a relative model knowingly leaves behind are the sinusoidal tables, which
are derived buffers, not learned. Everything else must match by name and shape; when it
does not, the error says what and how to fix it instead of torch's bare key lists.
"""
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


def describe_mismatch(model, state_dict, limit=12):
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state_dict and hasattr(state_dict[k], "shape")
             and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    lines = ["the checkpoint does not fit the model (nothing was loaded):"]
    for title, keys in (("missing from the checkpoint", missing),
                        ("in the checkpoint but not in the model", unexpected),
                        ("wrong shape", wrong)):
        if keys:
            shown = "\n    ".join(keys[:limit])
            more = f"\n    ... and {len(keys) - limit} more" if len(keys) > limit else ""
            lines.append(f"  {title} ({len(keys)}):\n    {shown}{more}")
    advice = ["what to do:"]
    if any("embed_tokens" in w or "output_projection" in w for w in wrong):
        advice.append("  - embedding shapes differ: binarise your data with the checkpoint's own "
                      "dictionaries (fairseq-preprocess --srcdict/--tgtdict)")
    advice.append("  - do not restate the checkpoint's shape on the command line: with "
                  "--finetune-from-model or --restore-file the layers, dimensions, heads and "
                  "normalisation are read from the checkpoint; drop any flag that contradicts it")
    advice.append("  - inspect it with `fairseq-relpos inspect CKPT`")
    return "\n".join(lines + advice)
