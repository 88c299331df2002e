"""Rewrite a checkpoint offline to RoPE, ALiBi, NoPE or back to sinusoidal positions.

The weights are kept as they are (sinusoidal tables are derived, not learned); the saved
config gets the new model (``transformer_relpos`` and ``transformer_{rope,alibi,nope}``, or
the stock ``transformer`` for sinusoidal) and its options, so fairseq-generate decodes the
result with nothing but ``--user-dir``.

A converted model that has not been fine-tuned translates poorly, and documents worst:
swapping the positions of a pre-trained model without training collapses its quality (the
paper measures Indic-En document ChrF++ 2.3 for RoPE and 1.1 for ALiBi right after the swap).
To switch a model for use, fine-tune it (fairseq-train --arch transformer_rope
--finetune-from-model IN). convert is for measuring that collapse, for changing a relative
checkpoint's options (RoPE scaling, ALiBi mode, length limit), and for undoing a conversion:
converting a fine-tuned relative model back to sinusoidal gives the stock model class, not
the quality of the original.

The optimizer state is dropped (it doubles the file and a switched model is fine-tuned with a
fresh optimizer); --keep-optimizer-state keeps it for resuming exactly.
"""
from .. import positions
from ..positions import argparse_type
from ..safe_io import check_output

RELATIVE_DEFAULT_MAX_POSITIONS = 4096


def add_arguments(parser):
    parser.add_argument("input", metavar="IN", help="fairseq checkpoint to read (never modified)")
    parser.add_argument("output", metavar="OUT", help="checkpoint to write")
    parser.add_argument("--pe", required=True, choices=("rope", "alibi", "nope", "sinusoidal"),
                        help="positions of the converted model; without fine-tuning, a model "
                             "switched away from sinusoidal positions translates poorly")
    parser.add_argument("--max-positions", type=argparse_type("max_positions"), metavar="N",
                        help="max source and target positions saved in the config, which "
                             "fairseq uses to filter inputs (default: %d when leaving sinusoidal "
                             "positions, otherwise unchanged)" % RELATIVE_DEFAULT_MAX_POSITIONS)
    positions.add_arguments(parser)
    parser.add_argument("--keep-optimizer-state", action="store_true",
                        help="keep the optimizer state (dropped by default)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def main(args):
    check_output(args.output, force=args.force, inputs=[args.input])
    from ..checkpoints import model_args, read_checkpoint, write_checkpoint
    from ..models.strict_load import position_kind
    from ..models.switch import switch_positions

    given = {name: getattr(args, name) for name in positions.DEFAULTS}
    if args.pe == "sinusoidal" and any(v is not None for v in given.values()):
        name = next(n for n, v in given.items() if v is not None)
        raise ValueError(f"{positions.option(name)} has no meaning with --pe sinusoidal")
    positions.refuse_unused(args.pe, given, explicit=True)

    state = read_checkpoint(args.input)
    options = given
    max_positions = args.max_positions
    if max_positions is None and args.pe != "sinusoidal" and \
            position_kind(model_args(state), state["model"]) in ("sinusoidal", "none"):
        max_positions = RELATIVE_DEFAULT_MAX_POSITIONS
    before = switch_positions(state, args.pe, options, max_positions)
    if not args.keep_optimizer_state:
        state.pop("last_optimizer_state", None)
    write_checkpoint(state, args.output)
    print(f"{args.input} ({before} positions) -> {args.output} ({args.pe})")
    if args.pe != "sinusoidal" and before in ("sinusoidal", "none"):
        print("note: not fine-tuned yet; expect poor translations until you fine-tune it")
