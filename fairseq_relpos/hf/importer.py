"""A RotaryIndicTrans folder -> a fairseq checkpoint, dict.SRC.txt/dict.TGT.txt and the two
SentencePiece models, ready for fairseq-preprocess --srcdict/--tgtdict and fairseq-generate.

The shape (dimensions, layers, FFN sizes, vocabularies, normalisation, embedding sharing) is
read from the weights; config.json must agree with every part of it it states, and supplies
what weights cannot tell (heads, activation, embedding scaling, RoPE theta). The weights are
fairseq's under a ``model.`` prefix, so the checkpoint holds them unchanged, same dtype.
"""
import json
import os
import re
import shutil
from collections import OrderedDict

import torch

from .. import fork
from ..checkpoints import write_checkpoint
from ..fork.options import head_dim, shown
from ..models.checkpoint_surgery import describe_mismatch, mismatches
from . import json_file, layout, vocab, weights as weight_files

CHECKPOINT = "checkpoint.pt"
SOURCE_KEY = "fairseq_relpos_hf_source"  # top-level key: the config.json it came from
DEFAULT_MAX_POSITIONS = 4096


class ReleaseMismatchError(ValueError):
    pass


def read_config(folder):
    path = os.path.join(folder, layout.CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder} has no {layout.CONFIG}")
    config = json_file.read(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a JSON object")
    if config.get("model_type") != layout.MODEL_TYPE:
        raise ValueError(f"{path} has model_type {config.get('model_type')!r}; import-hf reads "
                         f"{layout.MODEL_TYPE!r} folders (the authors' RoPE IndicTrans2 releases)")
    return config


def fairseq_weights(hf_weights):
    """HF names -> fairseq names: strip ``model.``, ``lm_head.weight`` -> the output projection."""
    out = {}
    for name, tensor in hf_weights.items():
        if name == layout.LM_HEAD:
            out[layout.OUTPUT_PROJECTION] = tensor
        elif name.startswith(layout.PREFIX):
            out[name[len(layout.PREFIX):]] = tensor
        else:
            raise ReleaseMismatchError(f"weight {name!r} is neither under {layout.PREFIX!r} nor {layout.LM_HEAD}")
    return out


def _layers(weights, stack):
    found = {int(m.group(1)) for k in weights if (m := re.match(rf"{stack}\.layers\.(\d+)\.", k))}
    if found != set(range(len(found))):
        raise ReleaseMismatchError(f"{stack} layers {sorted(found)} are not numbered 0 .. n-1")
    return len(found)


def _require(weights, key):
    if key not in weights:
        raise ReleaseMismatchError(f"the weights have no {layout.PREFIX}{key}")
    return weights[key]


def shape_from_weights(weights):
    """What the weights decide, as config.json's keys."""
    enc, dec = _require(weights, "encoder.embed_tokens.weight"), _require(weights, "decoder.embed_tokens.weight")
    shape = {"encoder_vocab_size": enc.shape[0], "decoder_vocab_size": dec.shape[0],
             "encoder_embed_dim": enc.shape[1], "decoder_embed_dim": dec.shape[1]}
    for stack in ("encoder", "decoder"):
        shape[f"{stack}_layers"] = _layers(weights, stack)
        if shape[f"{stack}_layers"] == 0:
            raise ReleaseMismatchError(f"the weights have no {stack} layers")
        shape[f"{stack}_ffn_dim"] = _require(weights, f"{stack}.layers.0.fc1.weight").shape[0]
        shape[f"{stack}_normalize_before"] = f"{stack}.layer_norm.weight" in weights
    norms = {s: f"{s}.layernorm_embedding.weight" in weights for s in ("encoder", "decoder")}
    if norms["encoder"] != norms["decoder"]:
        raise ReleaseMismatchError("only one of encoder and decoder has layernorm_embedding; fairseq has one "
                                   "switch for both")
    shape["layernorm_embedding"] = norms["encoder"]
    head = weights.get(layout.OUTPUT_PROJECTION)
    if head is None:
        shape["share_decoder_input_output_embed"] = True  # tied: HF leaves lm_head out
    elif head.shape != dec.shape or not torch.equal(head, dec):
        shape["share_decoder_input_output_embed"] = False
    if shape["encoder_embed_dim"] == shape["decoder_embed_dim"]:
        shape["d_model"] = shape["encoder_embed_dim"]
    return shape


def check_config(config, shape):
    """Refuse a config.json that states a shape the weights contradict, naming both."""
    for key, value in shape.items():
        if key in config and config[key] != value:
            raise ReleaseMismatchError(f"{layout.CONFIG} says {key} {config[key]!r} but the weights have {value!r}; "
                                       "the shape is taken from the weights, so this config does not belong to them")
    if "d_model" not in shape and "d_model" in config:
        raise ReleaseMismatchError(f"{layout.CONFIG} says d_model {config['d_model']!r} but the weights have "
                                   f"encoder {shape['encoder_embed_dim']} and decoder {shape['decoder_embed_dim']}")
    for key, value in layout.TOKEN_IDS.items():
        if config.get(key, value) != value:
            raise ReleaseMismatchError(f"{layout.CONFIG} says {key} {config[key]!r}; fairseq's dictionaries fix it at {value}")


def _config_value(config, key, default=None, required=False):
    if key not in config:
        if required:
            raise ReleaseMismatchError(f"{layout.CONFIG} does not give {key}, which the weights cannot tell")
        return default
    return config[key]


def _typed(config, key, default, kind, ok=lambda v: True, requirement=None):
    """config[key] (or ``default``), refused naming config.json and the field unless it is of
    ``kind`` (bool is not a number here) and ``ok``."""
    value = _config_value(config, key, default)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind) or not ok(value):
        raise ReleaseMismatchError(f"{layout.CONFIG} {key} must be {requirement or kind.__name__}, got "
                                   f"{shown(value)}")
    return value


def model_options(config, shape):
    """fairseq-train's command line for this model (``transformer_rope``), checked as the fork's
    RoPE options are (the releases' RoPE is taken to be the fork's: see the README). Every value
    config.json supplies is checked for type and range here, naming the field."""
    rope = _config_value(config, "rope_args", required=True)
    heads = {s: _config_value(config, f"{s}_attention_heads", required=True) for s in ("encoder", "decoder")}
    activation = _config_value(config, "activation_function", "gelu")
    if not isinstance(activation, str) or activation not in layout.ACTIVATIONS:
        raise ReleaseMismatchError(f"{layout.CONFIG} activation_function {shown(activation)} is not one of "
                                   f"{', '.join(layout.ACTIVATIONS)}")
    as_fork = {"attn_implementation": "fast", "rope_args": rope if isinstance(rope, str) else json.dumps(rope),
               "no_token_positional_embeddings": True}
    try:
        for stack in ("encoder", "decoder"):
            as_fork[f"{stack}_embed_dim"], as_fork[f"{stack}_attention_heads"] = shape[f"{stack}_embed_dim"], heads[stack]
            head_dim(as_fork, stack, spell=str)
        relative = fork.plugin_options(as_fork, spell=str)[0]
    except fork.ForkOptionError as err:
        raise ReleaseMismatchError(f"{layout.CONFIG} {err}") from None
    argv = ["--arch", "transformer_rope", "--activation-fn", activation,
            "--rope-theta", relative["rope_theta"], "--rope-scaling", relative["rope_scaling"],
            "--rope-scaling-factor", relative["rope_scaling_factor"]]
    for stack in ("encoder", "decoder"):
        argv += [f"--{stack}-embed-dim", shape[f"{stack}_embed_dim"], f"--{stack}-layers", shape[f"{stack}_layers"],
                 f"--{stack}-ffn-embed-dim", shape[f"{stack}_ffn_dim"], f"--{stack}-attention-heads", heads[stack]]
        if shape[f"{stack}_normalize_before"]:
            argv.append(f"--{stack}-normalize-before")
    share = shape.get("share_decoder_input_output_embed")
    if share is None:
        share = _typed(config, "share_decoder_input_output_embed", False, bool, requirement="true or false")
    if shape["layernorm_embedding"]:
        argv.append("--layernorm-embedding")
    if share:
        argv.append("--share-decoder-input-output-embed")
    if not _typed(config, "scale_embedding", True, bool, requirement="true or false"):
        argv.append("--no-scale-embedding")
    for side in ("source", "target"):
        argv += [f"--max-{side}-positions", _typed(config, f"max_{side}_positions", DEFAULT_MAX_POSITIONS, int,
                                                   lambda v: v > 0, "a positive integer")]
    for key in ("dropout", "attention_dropout", "activation_dropout"):
        if key in config:
            argv += ["--" + key.replace("_", "-"), _typed(config, key, None, (int, float), lambda v: 0 <= v < 1,
                                                          "a probability in [0, 1)")]
    return [str(a) for a in argv], share


def _cfg(argv, data):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    args = options.parse_args_and_arch(options.get_training_parser(), [
        data, "--task", "translation", "--source-lang", layout.SIDES["source"],
        "--target-lang", layout.SIDES["target"], *argv])
    return convert_namespace_to_omegaconf(args), OmegaConf


def checkpoint_state(folder, data):
    """(fairseq state, {side: tokens}) for the release in ``folder``; ``data`` is the folder the
    checkpoint will name as its data (where its dict.*.txt go)."""
    from fairseq.data import Dictionary
    from fairseq.tasks.translation import TranslationTask

    config = read_config(folder)
    weights = fairseq_weights(weight_files.read(folder))
    shape = shape_from_weights(weights)
    check_config(config, shape)
    tokens = {}
    for side, stack in (("source", "encoder"), ("target", "decoder")):
        path = os.path.join(folder, layout.dict_json(side))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder} has no {layout.dict_json(side)} (the {side} vocabulary)")
        tokens[side] = vocab.tokens_from_json(path, shape[f"{stack}_vocab_size"])
    argv, share = model_options(config, shape)
    cfg, OmegaConf = _cfg(argv, data)
    dictionaries = []
    for side in ("source", "target"):
        d = Dictionary()
        for token in tokens[side][4:]:
            d.add_symbol(token, overwrite=True)
        dictionaries.append(d)
    if share:
        weights[layout.OUTPUT_PROJECTION] = weights["decoder.embed_tokens.weight"]
    for key in layout.VERSIONS:
        weights[key] = torch.Tensor([3])  # fairseq's stack version: without it, it drops the final norm
    with torch.device("meta"):
        model = TranslationTask(cfg.task, *dictionaries).build_model(cfg.model)
    missing, unexpected, wrong = mismatches(model, weights)
    if missing or unexpected or wrong:
        raise ReleaseMismatchError(describe_mismatch(missing, unexpected, wrong).split("\nwhat to do:")[0])
    ordered = OrderedDict((k, weights[k]) for k in model.state_dict())
    state = {
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": ordered,
        "optimizer_history": [{"criterion_name": "LabelSmoothedCrossEntropyCriterion", "optimizer_name": "none",
                               "lr_scheduler_state": {}, "num_updates": 0}],
        "extra_state": {},
        SOURCE_KEY: {"folder": os.path.abspath(folder), "config": config},
    }
    return state, tokens


def write_release_as_fairseq(folder, scratch, data):
    """Write checkpoint.pt, dict.SRC.txt, dict.TGT.txt, model.SRC, model.TGT into ``scratch``."""
    spm = {side: os.path.join(folder, layout.spm_model(side)) for side in layout.SIDES}
    for side, path in spm.items():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder} has no {layout.spm_model(side)} (the {side} SentencePiece model)")
    state, tokens = checkpoint_state(folder, data)
    for side in layout.SIDES:
        vocab.write_dict_txt(tokens[side], os.path.join(scratch, layout.dict_txt(side)))
        shutil.copyfile(spm[side], os.path.join(scratch, layout.spm_model(side)))
    write_checkpoint(state, os.path.join(scratch, CHECKPOINT))
    return state
