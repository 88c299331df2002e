"""A fairseq RoPE checkpoint -> a RotaryIndicTrans folder: config.json, the weights under HF's
names, dict.SRC.json/dict.TGT.json, and the SentencePiece models when given.

Only what RotaryIndicTrans describes is written: RoPE as the authors' fork computes it (half of
each head, interleaved pairs, no position scaling), one model dimension, fairseq's own layers.
Anything else is refused with the reason rather than written into a model that would decode
differently. A LoRA checkpoint is merged first, exactly as ``fairseq-relpos merge``.
"""
import glob
import json
import os
import shutil

from ..checkpoints import model_args, read_checkpoint
from ..models.strict_load import position_kind
from . import json_file, layout, vocab, weights as weight_files
from .importer import SOURCE_KEY

# Options of fairseq's transformer that RotaryIndicTrans has no field for: they must be off.
MUST_BE_OFF = ("adaptive_softmax_cutoff", "adaptive_input", "no_cross_attention", "cross_self_attention",
               "encoder_layers_to_keep", "decoder_layers_to_keep", "tie_adaptive_weights",
               "no_decoder_final_norm", "merge_src_tgt_embed", "quant_noise_pq")


def _refuse_unrepresentable(args):
    kind = position_kind(args)
    if kind != "rope":
        raise ValueError(f"the checkpoint has {kind} positions; {layout.MODEL_TYPE} is a RoPE model "
                         "(export a transformer_rope checkpoint)")
    wanted = dict(rope_fraction=0.5, rope_layout="interleaved", rope_scaling="none")
    for key, value in wanted.items():
        if args.get(key) != value:
            raise ValueError(
                f"--{key.replace('_', '-')} {args.get(key)}: {layout.MODEL_TYPE}'s rope_args carry only theta "
                f"(the fork's RoPE: {', '.join(f'{k}={v}' for k, v in wanted.items())}); the released model code "
                "could not be checked for more, so this model is not written in a form that may decode differently")
    for key in MUST_BE_OFF:
        if args.get(key):
            raise ValueError(f"--{key.replace('_', '-')} {args[key]!r} has no field in {layout.MODEL_TYPE}'s config")
    if args.get("encoder_embed_dim") != args.get("decoder_embed_dim"):
        raise ValueError(f"encoder dimension {args.get('encoder_embed_dim')} and decoder dimension "
                         f"{args.get('decoder_embed_dim')} differ; {layout.MODEL_TYPE} has one d_model")
    if args.get("decoder_output_dim", args.get("decoder_embed_dim")) != args.get("decoder_embed_dim"):
        raise ValueError("--decoder-output-dim differs from the decoder's dimension; "
                         f"{layout.MODEL_TYPE} has no output projection of its own")
    if args.get("decoder_input_dim", args.get("decoder_embed_dim")) != args.get("decoder_embed_dim"):
        raise ValueError(f"the checkpoint's decoder_input_dim {args['decoder_input_dim']} differs from the decoder's "
                         f"dimension {args.get('decoder_embed_dim')}; {layout.MODEL_TYPE} has no field for it")
    if args.get("activation_fn") not in layout.ACTIVATIONS:
        raise ValueError(f"--activation-fn {args.get('activation_fn')!r}: {layout.MODEL_TYPE} is written for "
                         f"{', '.join(layout.ACTIVATIONS)} only")


def shares_output_embedding(args):
    return bool(args.get("share_decoder_input_output_embed") or args.get("share_all_embeddings"))


def hf_weights(weights, shared):
    """fairseq names -> HF names; the output projection is ``lm_head.weight`` unless tied."""
    out = {}
    for name, tensor in weights.items():
        if name in layout.VERSIONS or name.endswith("embed_positions._float_tensor"):
            continue
        if name == layout.OUTPUT_PROJECTION:
            if not shared:
                out[layout.LM_HEAD] = tensor
            continue
        out[layout.PREFIX + name] = tensor
    return out


def hf_config(args, weights, base=None):
    """config.json: ``base`` (a release's own config, for the fields only its code reads) with
    every field this model decides set from the checkpoint."""
    config = dict(base or {})
    enc, dec = weights["encoder.embed_tokens.weight"], weights["decoder.embed_tokens.weight"]
    # Hugging Face's configs default tie_word_embeddings to true: an untied model must say so.
    shared = shares_output_embedding(args)
    config.update(
        model_type=layout.MODEL_TYPE, architectures=config.get("architectures") or [layout.ARCHITECTURE],
        is_encoder_decoder=True, d_model=args["encoder_embed_dim"],
        encoder_vocab_size=enc.shape[0], decoder_vocab_size=dec.shape[0],
        activation_function=args["activation_fn"], scale_embedding=not args.get("no_scale_embedding", False),
        layernorm_embedding=bool(args.get("layernorm_embedding")),
        share_decoder_input_output_embed=shared, tie_word_embeddings=shared,
        rope_args={"theta": args["rope_theta"]},
        max_source_positions=args.get("max_source_positions"), max_target_positions=args.get("max_target_positions"),
        dropout=args.get("dropout", 0.1), attention_dropout=args.get("attention_dropout", 0.0),
        activation_dropout=args.get("activation_dropout", 0.0), torch_dtype=str(enc.dtype).replace("torch.", ""),
        **layout.TOKEN_IDS)
    for stack in ("encoder", "decoder"):
        config[f"{stack}_layers"] = args[f"{stack}_layers"]
        config[f"{stack}_attention_heads"] = args[f"{stack}_attention_heads"]
        config[f"{stack}_ffn_dim"] = args[f"{stack}_ffn_embed_dim"]
        config[f"{stack}_normalize_before"] = bool(args.get(f"{stack}_normalize_before"))
        if f"{stack}_embed_dim" in config:  # IndicTrans2's older config spelling
            config[f"{stack}_embed_dim"] = args[f"{stack}_embed_dim"]
    return config


def _data_folder(state):
    cfg = state.get("cfg")
    if isinstance(cfg, dict) and cfg.get("task") is not None:
        return cfg["task"].get("data")
    return getattr(state.get("args"), "data", None)


def _langs(state, data, source_lang, target_lang):
    """The pair given, else saved; else the one fairseq infers from the data files' names, as
    fairseq-train did when it was given none (it saves none then) and fairseq-generate does."""
    cfg = state.get("cfg")
    task = cfg.get("task") if isinstance(cfg, dict) else None
    task = task or {}
    langs = source_lang or task.get("source_lang"), target_lang or task.get("target_lang")
    if all(langs):
        return langs
    from fairseq.data.data_utils import infer_language_pair

    inferred = infer_language_pair(data)
    return langs[0] or inferred[0], langs[1] or inferred[1]


def read_inputs(checkpoint, data=None, source_lang=None, target_lang=None):
    """(state, args, {side: Dictionary}) of a checkpoint to export; refuses what cannot be written."""
    from ..lora.merge import adapter_spec, merged_checkpoint

    state = read_checkpoint(checkpoint)
    if adapter_spec(state) is not None:
        state = merged_checkpoint(state, checkpoint)
    args = dict(model_args(state))
    _refuse_unrepresentable(args)
    data = data or _data_folder(state)
    if not data or not os.path.isdir(data):
        raise FileNotFoundError(f"the dictionaries' folder {data!r} does not exist; pass --data DIR "
                                "(the folder with the checkpoint's dict.*.txt)")
    langs = _langs(state, data, source_lang, target_lang)
    if not all(langs):
        raise ValueError(f"the checkpoint names no language pair and {data} has no data files to infer it "
                         "from; pass --source-lang and --target-lang (dict.SRC.txt -> SRC)")
    dictionaries = {}
    for side, lang, stack in zip(("source", "target"), langs, ("encoder", "decoder")):
        path = os.path.join(data, f"dict.{lang}.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {side} dictionary {path}")
        d = vocab.load_dictionary(path)
        rows = state["model"][f"{stack}.embed_tokens.weight"].shape[0]
        if len(d) != rows:
            raise ValueError(f"{path} has {len(d)} entries but the {stack} embedding has {rows} rows: "
                             "not this checkpoint's dictionary")
        dictionaries[side] = d
    return state, args, dictionaries


def write_folder(scratch, state, args, dictionaries, fmt="bin", spm=None, like=None):
    """Fill ``scratch`` with the RotaryIndicTrans folder of a checkpoint read by :func:`read_inputs`."""
    base = None
    if like is not None:
        base = json_file.read(os.path.join(like, layout.CONFIG))
        if not isinstance(base, dict):
            raise ValueError(f"{os.path.join(like, layout.CONFIG)} is not a JSON object")
        for path in sorted(glob.glob(os.path.join(like, "*"))):
            name = os.path.basename(path)
            if os.path.isfile(path) and (name.endswith(layout.CODE_SUFFIXES) or name in layout.SIDE_FILES):
                shutil.copyfile(path, os.path.join(scratch, name))
    elif state.get(SOURCE_KEY):
        base = state[SOURCE_KEY]["config"]  # a checkpoint made by import-hf: keep its release's fields
    shared = shares_output_embedding(args)
    config = hf_config(args, state["model"], base)
    with open(os.path.join(scratch, layout.CONFIG), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    weight_files.write(hf_weights(state["model"], shared), scratch, fmt)
    for side, d in dictionaries.items():
        vocab.json_from_dictionary(d, os.path.join(scratch, layout.dict_json(side)))
    for side in layout.SIDES:
        source = (spm or {}).get(side) or (os.path.join(like, layout.spm_model(side)) if like else None)
        if source:
            if not os.path.isfile(source):
                raise FileNotFoundError(f"no SentencePiece model {source}")
            shutil.copyfile(source, os.path.join(scratch, layout.spm_model(side)))
    return config
