"""Export a checkpoint to a CTranslate2 model directory (needs the ct2 extra).

Takes a ``transformer_rope`` checkpoint (any rotary option), a stock sinusoidal ``transformer``
or IndicTrans2-named one, or a ``translation_lora`` checkpoint (adapters merged first, in fp32,
exactly as ``fairseq-relpos merge`` does). ALiBi and NoPE are refused with the reason. OUTDIR
gets model.bin, the vocabularies, CTranslate2's config.json and ``decoding.json``: the search
options that make CTranslate2 decode like ``fairseq-generate`` (applied by
``fairseq_relpos.ct2.translate``), the repetition controls CTranslate2 can apply
(``--repetition-penalty``, ``--no-repeat-ngram-size``; a ``--no-repeat-ngram-window`` is refused,
CTranslate2 has none) and a README.md saying how. Nothing is written on any error.
"""
import json
import os

from .. import scratch
from ..positions import argparse_type
from ..safe_io import check_output_folder


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
    for name, value, what in (("repetition-penalty", 1.0, "CTRL repetition penalty on every token already "
                               "emitted, > 0 (1: off)"),
                              ("no-repeat-ngram-size", 0, "ban every token that would repeat an n-gram of "
                               "this size (0: off)"),
                              ("no-repeat-ngram-window", 0, "as the plugin's decoding option; refused unless "
                               "0: CTranslate2 bans n-grams over the whole output")):
        parser.add_argument(f"--{name}", type=type(value), default=value, metavar="F" if isinstance(value, float) else "N",
                            help=f"{what}; recorded in decoding.json (default {value})")
    parser.add_argument("--max-positions", type=argparse_type("max_positions"), metavar="N",
                        help="a sinusoidal model's position table in the export covers N positions per side "
                             "(default: the checkpoint's max positions); CTranslate2 cannot decode past it, "
                             "where fairseq extends the table. RoPE exports have no table")
    parser.add_argument("--force", action="store_true", help="replace OUTDIR if it is an earlier export (never any other folder)")


def main(args):
    from fairseq import checkpoint_utils

    from .. import plugin  # noqa: F401  (the plugin's models, to load the checkpoint)
    from ..checkpoints import model_args, read_checkpoint, write_checkpoint
    from ..ct2 import export as export_ct2
    from ..ct2 import translate as ct2_translate
    from ..lora.merge import adapter_spec, merged_checkpoint

    export_ct2.require_ctranslate2()
    repetition = dict(repetition_penalty=args.repetition_penalty, no_repeat_ngram_size=args.no_repeat_ngram_size,
                      no_repeat_ngram_window=args.no_repeat_ngram_window)
    ct2_translate.decoding_config(args.beam, args.max_len_a, args.max_len_b, **repetition)  # checked before any work
    outdir = os.path.abspath(args.outdir)
    # OUTDIR is replaced whole: never one holding the checkpoint, the dictionaries or the working folder
    check_output_folder(outdir, inputs=[args.checkpoint, args.data], force=args.force,
                        replaceable=export_ct2.not_an_export)
    state = read_checkpoint(args.checkpoint)
    _refuse_unregistered(args.checkpoint, model_args(state))
    export_ct2.refuse_positions(model_args(state))
    data = args.data or _saved_data_folder(state)
    if not data or not os.path.isdir(data):
        raise FileNotFoundError(f"the dictionaries' folder {data!r} does not exist; pass --data DIR "
                                "(the folder with the checkpoint's dict.*.txt)")
    check_output_folder(outdir, inputs=[args.checkpoint, data], force=args.force,
                        replaceable=export_ct2.not_an_export)
    scratch.clean_stale(os.path.dirname(outdir))
    work, lock = scratch.scratch_folder(outdir)
    try:
        path = args.checkpoint
        if adapter_spec(state) is not None:  # fold the adapters in first, as `merge` does
            path = os.path.join(work, "merged.pt")
            write_checkpoint(merged_checkpoint(state, args.checkpoint), path)
        del state
        overrides = {"data": data}
        overrides.update({k: getattr(args, k) for k in ("source_lang", "target_lang") if getattr(args, k)})
        if args.max_positions:  # the table is built as long as the model's limit
            overrides.update(max_source_positions=args.max_positions, max_target_positions=args.max_positions)
        try:
            models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)
        except Exception as err:  # fairseq raises a bare Exception when it cannot find the dictionaries
            if "language pair" not in str(err):
                raise
            raise ValueError(f"the checkpoint names no language pair and {data} has no data files to infer "
                             "it from; pass --source-lang and --target-lang (dict.SRC.txt -> SRC)") from err
        spec = export_ct2.model_spec(models[0].eval(), task)
        decoding = ct2_translate.decoding_config(args.beam, args.max_len_a, args.max_len_b,
                                                 max_positions=export_ct2.position_table_rows(models[0]), **repetition)
        if args.max_positions and decoding.get("max_positions") is None:
            raise ValueError("--max-positions sets the length of a sinusoidal position table; this model has "
                             "none (RoPE decodes any length)")
        export_ct2.save(spec, outdir, quantization=args.quantization, force=args.force,
                        extra_files={ct2_translate.DECODING_FILE: json.dumps(decoding, indent=2) + "\n",
                                     "README.md": ct2_translate.readme(decoding, args.checkpoint)})
    finally:
        scratch.remove(work)
        os.close(lock)
    print(f"{args.checkpoint} -> {args.outdir} (CTranslate2, {args.quantization or 'weights as saved'})")


def _refuse_unregistered(path, model_args):
    """fairseq ends in an IndexError traceback building an architecture it does not know."""
    from fairseq.models import ARCH_MODEL_REGISTRY

    arch = model_args.get("arch") or model_args.get("_name")
    if arch not in ARCH_MODEL_REGISTRY:
        raise ValueError(f"{path} was trained with the architecture {arch!r}, which is not registered "
                         "(no installed model or --user-dir plugin defines it); it cannot be exported")


def _saved_data_folder(state):
    cfg = state.get("cfg")
    if isinstance(cfg, dict) and cfg.get("task") is not None:
        return cfg["task"].get("data")
    return getattr(state.get("args"), "data", None)
