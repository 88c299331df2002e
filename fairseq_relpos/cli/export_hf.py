"""Write a RoPE checkpoint in the layout of the authors' RotaryIndicTrans releases.

OUTDIR gets config.json, the weights (pytorch_model.bin, or model.safetensors with
--weights safetensors and the hf extra), dict.SRC.json and dict.TGT.json (token -> id, from the
checkpoint's dict.*.txt), and model.SRC/model.TGT when given. --like RELEASE_DIR takes the
release's own config fields, code (*.py), tokenizer_config.json and SentencePiece models from a
downloaded release, so the folder loads with the authors' published model code. Only what that
model computes is written (transformer_rope with the fork's RoPE); anything else is refused.
A translation_lora checkpoint is merged first. Nothing is written on any error.
"""
from .shared_options import add_dictionary_options


def add_arguments(parser):
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="fairseq RoPE checkpoint")
    parser.add_argument("outdir", metavar="OUTDIR", help="folder to write")
    add_dictionary_options(parser)
    parser.add_argument("--spm-src", metavar="FILE", help="source SentencePiece model, copied as model.SRC")
    parser.add_argument("--spm-tgt", metavar="FILE", help="target SentencePiece model, copied as model.TGT")
    parser.add_argument("--like", metavar="RELEASE_DIR",
                        help="a downloaded release whose config fields, code and tokenizer files to keep")
    parser.add_argument("--weights", choices=("bin", "safetensors"), default="bin",
                        help="weight file format (default bin: pytorch_model.bin)")
    parser.add_argument("--force", action="store_true", help="replace OUTDIR if it exists")


def main(args):
    from ..hf import exporter, outdir

    inputs = [args.checkpoint, args.data, args.like, args.spm_src, args.spm_tgt]
    target = outdir.check(args.outdir, args.force, inputs=inputs, own=outdir.EXPORT_FILES)
    if args.weights == "safetensors":
        exporter.weight_files._safetensors()  # refuse before any work when the extra is missing
    state, model_args, dictionaries = exporter.read_inputs(args.checkpoint, args.data, args.source_lang,
                                                            args.target_lang)
    spm = {"source": args.spm_src, "target": args.spm_tgt}
    outdir.write(target, lambda scratch: exporter.write_folder(scratch, state, model_args, dictionaries,
                                                              args.weights, spm, args.like))
    print(f"{args.checkpoint} -> {args.outdir} ({exporter.layout.MODEL_TYPE}, {args.weights})")
