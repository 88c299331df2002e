"""Turn a RotaryIndicTrans folder (the authors' RoPE IndicTrans2 on Hugging Face) into fairseq files.

OUTDIR gets checkpoint.pt (a transformer_rope checkpoint: decode with fairseq-generate
--user-dir, fine-tune with --finetune-from-model, serve with `fairseq-relpos export`),
dict.SRC.txt and dict.TGT.txt (the release's ids, in fairseq's order: binarise with
fairseq-preprocess --srcdict OUTDIR/dict.SRC.txt --tgtdict OUTDIR/dict.TGT.txt) and the
SentencePiece models model.SRC and model.TGT, copied. The shape comes from the weights; a
config.json that disagrees with them is refused, naming both. Nothing is written on any error.
"""
import os


def add_arguments(parser):
    parser.add_argument("hf_dir", metavar="HF_DIR", help="folder with config.json, the weights, dict.*.json, model.*")
    parser.add_argument("outdir", metavar="OUTDIR", help="folder to write (never HF_DIR)")
    parser.add_argument("--force", action="store_true", help="replace OUTDIR if it exists")


def main(args):
    from ..hf import importer, outdir

    if not os.path.isdir(args.hf_dir):
        raise FileNotFoundError(f"no such folder: {args.hf_dir}")
    target = outdir.check(args.outdir, args.force, inputs=[args.hf_dir])
    state = outdir.write(target, lambda scratch: importer.write_release_as_fairseq(args.hf_dir, scratch, target))
    model = state["cfg"]["model"]
    print(f"{args.hf_dir} -> {args.outdir}/{importer.CHECKPOINT} (transformer_rope, "
          f"{model.encoder_layers}+{model.decoder_layers} layers, d {model.encoder_embed_dim}, "
          f"rope theta {model.rope_theta:g}), dict.SRC.txt, dict.TGT.txt, model.SRC, model.TGT")
