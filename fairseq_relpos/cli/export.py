"""Export a checkpoint to a CTranslate2 model directory (needs the ct2 extra).

Takes a ``transformer_rope`` checkpoint (any rotary option), a stock sinusoidal ``transformer``
or IndicTrans2-named one, or a ``translation_lora`` checkpoint (adapters merged first, in fp32,
exactly as ``fairseq-relpos merge`` does). ALiBi and NoPE are refused with the reason. OUTDIR
gets model.bin, the vocabularies, CTranslate2's config.json and ``decoding.json``: the search
options that make CTranslate2 decode like ``fairseq-generate`` (applied by
``fairseq_relpos.ct2.translate``) and a README.md saying how. Nothing is written on any error.
"""
import json
import os
import tempfile

from ..safe_io import check_folder


def add_arguments(parser):
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="fairseq checkpoint")
    parser.add_argument("outdir", metavar="OUTDIR", help="CTranslate2 model directory to write")
    parser.add_argument("--data", metavar="DIR",
                        help="folder holding the checkpoint's dict.*.txt (default: the data folder "
                             "saved in the checkpoint)")
    parser.add_argument("--source-lang", metavar="SRC",
                        help="source suffix of the dictionary, dict.SRC.txt (default: the checkpoint's; "
                             "IndicTrans2 releases: SRC)")
    parser.add_argument("--target-lang", metavar="TGT", help="target suffix likewise (IndicTrans2: TGT)")
    parser.add_argument("--quantization", metavar="TYPE",
                        help="weight type in model.bin, one of CTranslate2's: int8, int8_float32, "
                             "int8_float16, int8_bfloat16, int16, float16, bfloat16, float32 "
                             "(default: the checkpoint's)")
    for name, value, what in (("beam", 5, "beam size"), ("max-len-a", 1.5, "max length = a * source length + b"),
                              ("max-len-b", 20, "see --max-len-a")):
        parser.add_argument(f"--{name}", type=type(value), default=value,
                            help=f"{what}, as fairseq-generate's option; recorded in decoding.json "
                                 f"(default {value})")
    parser.add_argument("--force", action="store_true", help="replace OUTDIR if it exists")


def main(args):
    from fairseq import checkpoint_utils

    from .. import plugin  # noqa: F401  (the plugin's models, to load the checkpoint)
    from ..checkpoints import model_args, read_checkpoint, write_checkpoint
    from ..ct2 import export as export_ct2
    from ..ct2 import translate as ct2_translate
    from ..lora.merge import adapter_spec, merged_checkpoint

    export_ct2.require_ctranslate2()
    outdir = os.path.abspath(args.outdir)
    if os.path.exists(outdir) and not args.force:
        raise FileExistsError(f"{args.outdir} exists; pass --force to replace it")
    check_folder(os.path.dirname(outdir), create=False)  # missing, a file, or not writable
    state = read_checkpoint(args.checkpoint)
    export_ct2.refuse_positions(model_args(state))
    data = args.data or _saved_data_folder(state)
    if not data or not os.path.isdir(data):
        raise FileNotFoundError(f"the dictionaries' folder {data!r} does not exist; pass --data DIR "
                                "(the folder with the checkpoint's dict.*.txt)")
    decoding = ct2_translate.decoding_config(args.beam, args.max_len_a, args.max_len_b)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(outdir), prefix=".export.") as scratch:
        path = args.checkpoint
        if adapter_spec(state) is not None:  # fold the adapters in first, as `merge` does
            path = os.path.join(scratch, "merged.pt")
            write_checkpoint(merged_checkpoint(state), path)
        del state
        overrides = {"data": data}
        overrides.update({k: getattr(args, k) for k in ("source_lang", "target_lang") if getattr(args, k)})
        try:
            models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)
        except Exception as err:  # fairseq raises a bare Exception when it cannot find the dictionaries
            if "language pair" not in str(err):
                raise
            raise ValueError(f"the checkpoint names no language pair and {data} has no data files to infer "
                             "it from; pass --source-lang and --target-lang (dict.SRC.txt -> SRC)") from err
        spec = export_ct2.model_spec(models[0].eval(), task)
        export_ct2.save(spec, outdir, quantization=args.quantization, force=args.force,
                        extra_files={ct2_translate.DECODING_FILE: json.dumps(decoding, indent=2) + "\n",
                                     "README.md": ct2_translate.readme(decoding, args.checkpoint)})
    print(f"{args.checkpoint} -> {args.outdir} (CTranslate2, {args.quantization or 'weights as saved'})")


def _saved_data_folder(state):
    cfg = state.get("cfg")
    if isinstance(cfg, dict) and cfg.get("task") is not None:
        return cfg["task"].get("data")
    return getattr(state.get("args"), "data", None)
