"""Fold a translation_lora checkpoint's adapters into a plain checkpoint (or save them alone).

OUT has the same architecture without adapters and task ``translation``: it decodes, scores
and fine-tunes (``--finetune-from-model``) like any checkpoint of the base. The update
``alpha/rank * B @ A`` is added in fp32 and stored in the checkpoint's dtype. The optimizer's
state is dropped: it belonged to the adapters. With --adapters-only OUT holds just what trained
(adapters, and biases/LayerNorms if they trained) and what identifies the base; apply it with
``--task translation_lora --lora-adapters OUT`` on that base.
"""
from ..safe_io import check_output


def add_arguments(parser):
    parser.add_argument("input", metavar="IN", help="checkpoint saved by --task translation_lora")
    parser.add_argument("output", metavar="OUT", help="file to write (never IN; an existing file only with --force)")
    parser.add_argument("--adapters-only", action="store_true",
                        help="write only the adapters (a small file for --lora-adapters), not a merged model")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists (as convert does)")


def main(args):
    check_output(args.output, force=args.force, inputs=[args.input])
    from ..checkpoints import read_checkpoint, write_checkpoint
    from ..lora import adapters_payload
    from ..lora.merge import adapter_spec, merged_checkpoint

    state = read_checkpoint(args.input)
    spec = adapter_spec(state)
    if spec is None:
        raise ValueError(f"{args.input} has no adapters (it was not saved by --task translation_lora)")
    if args.adapters_only:
        result = adapters_payload(state["model"], spec, state["cfg"]["model"].arch)
    else:
        result = merged_checkpoint(state, args.input)
    write_checkpoint(result, args.output)
    what = f"{len(result['tensors'])} adapter tensors" if args.adapters_only else "merged checkpoint"
    print(f"wrote {what} to {args.output}")
