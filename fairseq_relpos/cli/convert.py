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
from ..checkpoint_io import model_args, read_checkpoint, write_checkpoint
from ..files import check_output
from ..models.checkpoint_surgery import position_kind, switch_positions
from ..modules.alibi import MODES as ALIBI_MODES
from ..modules.rotary import LAYOUTS, SCALINGS
from ..position_options import argparse_type

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
    parser.add_argument("--rope-theta", type=argparse_type("rope_theta"), metavar="F",
                        help="RoPE base wavelength (default 10000)")
    parser.add_argument("--rope-fraction", type=argparse_type("rope_fraction"), metavar="F",
                        help="share of each head's dimension that is rotated (default 0.5)")
    parser.add_argument("--rope-layout", choices=LAYOUTS, help="rotated pairs (default interleaved)")
    parser.add_argument("--rope-scaling", choices=SCALINGS, help="position scaling (default none)")
    parser.add_argument("--rope-scaling-factor", type=argparse_type("rope_scaling_factor"), metavar="F",
                        help="scaling factor (default 1)")
    parser.add_argument("--alibi-encoder", choices=[m for m in ALIBI_MODES if m != "causal"],
                        help="ALiBi bias in the encoder (default symmetric)")
    parser.add_argument("--keep-optimizer-state", action="store_true",
                        help="keep the optimizer state (dropped by default)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def main(args):
    check_output(args.output, force=args.force, inputs=[args.input])
    if args.pe == "sinusoidal":
        given = [o for o in ("rope_theta", "rope_fraction", "rope_layout", "rope_scaling",
                             "rope_scaling_factor", "alibi_encoder") if getattr(args, o) is not None]
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} has no meaning with --pe sinusoidal")
    elif args.pe != "rope" and any(getattr(args, o) is not None for o in (
            "rope_theta", "rope_fraction", "rope_layout", "rope_scaling", "rope_scaling_factor")):
        raise ValueError("--rope-* options need --pe rope")
    elif args.pe != "alibi" and args.alibi_encoder is not None:
        raise ValueError("--alibi-encoder needs --pe alibi")

    state = read_checkpoint(args.input)
    options = {o: getattr(args, o) for o in ("rope_theta", "rope_fraction", "rope_layout",
                                             "rope_scaling", "rope_scaling_factor", "alibi_encoder")}
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
