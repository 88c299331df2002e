"""Describe a fairseq checkpoint: architecture, positions, shapes, parameters, dictionaries.

Reads the file safely (no code runs) and never builds the model, so it is quick on a 1B
checkpoint; shapes come from the weights where they can, from the saved config otherwise.
"""
import json
import re



def add_arguments(parser):
    parser.add_argument("checkpoint", metavar="CKPT", help="fairseq checkpoint")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _layers(weights, stack):
    found = {int(m.group(1)) for k in weights if (m := re.match(rf"{stack}\.layers\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def _shape(weights, key, dim):
    t = weights.get(key)
    return int(t.shape[dim]) if t is not None else None


def _positions(args, weights):
    from ..models.strict_load import position_kind

    kind = position_kind(args, weights)
    out = {"type": kind}
    if kind == "rope":
        out.update({k: args.get(f"rope_{k}") for k in ("theta", "fraction", "layout", "scaling", "scaling_factor")})
    elif kind == "alibi":
        out.update(encoder=args.get("alibi_encoder"), decoder="causal")
    out["max_source_positions"] = args.get("max_source_positions")
    out["max_target_positions"] = args.get("max_target_positions")
    return out


def _distinct(weights):
    """Learned tensors, each once where several keys hold it (shared embeddings, an adapter on a
    tied matrix), as training counts them; not fairseq 0.12.2's fused copies of encoder weights."""
    from ..modules.unfused_layer import is_fused_copy

    seen = {}
    for key, t in weights.items():
        if (t.is_floating_point() and not key.endswith((".version", "_float_tensor"))
                and not is_fused_copy(key)):
            seen.setdefault((t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)), t)
    return list(seen.values())


def describe(path):
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY

    from .. import plugin  # noqa: F401  (the plugin's architectures, to name them)
    from ..checkpoints import model_args, read_checkpoint
    from ..fork import NOTES

    state = read_checkpoint(path)
    args, weights = model_args(state), state["model"]
    arch = args.get("arch") or args.get("_name")
    cfg = state.get("cfg") if isinstance(state.get("cfg"), dict) else {}
    task = cfg.get("task") or {}
    task_name = task.get("_name") if isinstance(task, dict) else None
    shapes = {}
    for stack in ("encoder", "decoder"):
        shapes[stack] = {
            "layers": _layers(weights, stack),
            "embed_dim": _shape(weights, f"{stack}.embed_tokens.weight", 1) or args.get(f"{stack}_embed_dim"),
            "ffn_dim": _shape(weights, f"{stack}.layers.0.fc1.weight", 0) or args.get(f"{stack}_ffn_embed_dim"),
            "attention_heads": args.get(f"{stack}_attention_heads"),
            "norm": "pre" if args.get(f"{stack}_normalize_before") else "post",
        }
    src = _shape(weights, "encoder.embed_tokens.weight", 0)
    tgt = _shape(weights, "decoder.embed_tokens.weight", 0)
    lora = _distinct({k: t for k, t in weights.items() if "lora" in k.lower()})
    return {
        "file": path,
        "architecture": arch,
        "model": ARCH_MODEL_NAME_REGISTRY.get(arch, "unknown (architecture not registered)"),
        "positions": _positions(args, weights),
        "shapes": dict(shapes, layernorm_embedding=bool(args.get("layernorm_embedding")),
                       activation_fn=args.get("activation_fn"),
                       share_all_embeddings=bool(args.get("share_all_embeddings")),
                       share_decoder_input_output_embed=bool(args.get("share_decoder_input_output_embed"))),
        "parameters": sum(t.numel() for t in _distinct(weights)),
        "dictionaries": {"source": src, "target": tgt,
                         "joined": bool(args.get("share_all_embeddings")) or None},
        "adapters": {"tensors": len(lora), "parameters": sum(t.numel() for t in lora)} if lora else None,
        "fairseq_version": state.get("fairseq_version") or (cfg.get("common") or {}).get("fairseq_version"),
        "task": {"name": task_name or args.get("task"),
                 "source_lang": (task.get("source_lang") if task_name else None) or args.get("source_lang"),
                 "target_lang": (task.get("target_lang") if task_name else None) or args.get("target_lang")},
        "updates": (state.get("optimizer_history") or [{}])[-1].get("num_updates"),
        "optimizer_state": "last_optimizer_state" in state,
        "read_as": state.get(NOTES),
    }


def _text(info):
    pos = info["positions"]
    extra = ", ".join(f"{k}={v}" for k, v in pos.items() if k != "type")
    s = info["shapes"]
    lines = [f"file:           {info['file']}",
             f"architecture:   {info['architecture']} (model {info['model']})",
             f"positions:      {pos['type']} ({extra})"]
    for stack in ("encoder", "decoder"):
        t = s[stack]
        lines.append(f"{stack + ':':15} {t['layers']} layers, dim {t['embed_dim']}, ffn {t['ffn_dim']}, "
                     f"{t['attention_heads']} heads, {t['norm']}-norm")
    lines += [f"layernorm_embedding: {s['layernorm_embedding']}, activation: {s['activation_fn']}, "
              f"share_all_embeddings: {s['share_all_embeddings']}, "
              f"share_decoder_input_output_embed: {s['share_decoder_input_output_embed']}",
              f"parameters:     {info['parameters']:,}",
              "dictionaries:   source {source}, target {target}{j}".format(
                  j=" (joined)" if info["dictionaries"]["joined"] else "", **info["dictionaries"]),
              "adapters:       " + ("none" if not info["adapters"] else
                                    "{tensors} LoRA tensors, {parameters:,} parameters".format(**info["adapters"])),
              f"fairseq:        {info['fairseq_version'] or 'version not recorded'}",
              "task:           {name} {source_lang}->{target_lang}".format(**info["task"]),
              f"updates:        {info['updates']}, optimizer state {'kept' if info['optimizer_state'] else 'absent'}"]
    if info["read_as"]:
        lines.append("read as:        " + "; ".join(info["read_as"]))
    return "\n".join(lines)


def main(args):
    info = describe(args.checkpoint)
    print(json.dumps(info, indent=2) if args.json else _text(info))
