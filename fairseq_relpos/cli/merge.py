"""Fold a translation_lora checkpoint's adapters into a plain checkpoint (or save them alone).

OUT has the same architecture without adapters and task ``translation``: it decodes, scores
and fine-tunes (``--finetune-from-model``) like any checkpoint of the base. The update
``alpha/rank * B @ A`` is added in fp32 and stored in the checkpoint's dtype. The optimizer's
state is dropped: it belonged to the adapters. With --adapters-only OUT holds just what trained
(adapters, and biases/LayerNorms if they trained) and what identifies the base; apply it with
``--task translation_lora --lora-adapters OUT`` on that base.
"""
from ..checkpoint_io import read_checkpoint, write_checkpoint
from ..files import check_output
from ..lora import adapters_payload, merged_state


def add_arguments(parser):
    parser.add_argument("input", metavar="IN", help="checkpoint saved by --task translation_lora")
    parser.add_argument("output", metavar="OUT", help="file to write (never IN; an existing file only with --force)")
    parser.add_argument("--adapters-only", action="store_true",
                        help="write only the adapters (a small file for --lora-adapters), not a merged model")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists (as convert does)")


def main(args):
    check_output(args.output, force=args.force, inputs=[args.input])
    state = read_checkpoint(args.input)
    spec = adapter_spec(state)
    if spec is None:
        raise ValueError(f"{args.input} has no adapters (it was not saved by --task translation_lora)")
    if args.adapters_only:
        result = adapters_payload(state["model"], spec, state["cfg"]["model"].arch)
    else:
        result = merged_checkpoint(state)
    write_checkpoint(result, args.output)
    what = f"{len(result['tensors'])} adapter tensors" if args.adapters_only else "merged checkpoint"
    print(f"wrote {what} to {args.output}")


def adapter_spec(state):
    """The adapter spec of a translation_lora checkpoint's state (None for any other)."""
    cfg = state.get("cfg")
    return getattr(cfg["model"] if cfg else None, "lora_spec", None)


def merged_checkpoint(state):
    """A translation_lora checkpoint's state as a plain one: adapters folded in, no optimizer."""
    result = {k: v for k, v in state.items() if k != "last_optimizer_state"}
    result.update(model=merged_state(state["model"], adapter_spec(state)), cfg=_plain_cfg(state["cfg"]))
    return result


def _plain_cfg(cfg):
    """The checkpoint's config as if trained with --task translation on the base arch."""
    model = cfg["model"]
    for key in [k for k in vars(model) if k.startswith("lora_")]:
        delattr(model, key)
    model._name, model.task = model.arch, "translation"
    task = {k: v for k, v in cfg["task"].items() if not k.startswith("lora_")}
    task["_name"] = "translation"
    return dict(cfg, model=model, task=task)

