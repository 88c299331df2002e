"""A built fairseq translation model as a CTranslate2 model directory.

CTranslate2's own fairseq converter accepts only stock model names and refuses models without
token positional embeddings, so it cannot read a RoPE model. Its specification API
(``ctranslate2.specs``) can: ``TransformerEncoderSpec``/``TransformerDecoderSpec`` take rotary
attention in both stacks (since 4.6.3). This module builds that specification from the loaded
fairseq model and fills it with CTranslate2's own fairseq layer helpers, so the weight mapping
is theirs, not a copy.

What maps, and how (checked in ``tests/test_export_ct2.py`` against fairseq's scores):
- RoPE: ``rotary_dim`` is the number of rotated dimensions per head (0 when all are rotated),
  ``interleaved`` is ``rotary_interleave=True``, ``half`` is ``False``; NTK scaling is a larger
  base (``RotaryEmbedding.theta`` already holds it), linear scaling is CTranslate2's Linear type.
- Sinusoidal (stock ``transformer`` and IndicTrans2's names): the position table fairseq uses,
  as long as the model's max positions (fairseq extends it on the fly; CTranslate2 cannot).
- Pre-/post-norm per stack, ``layernorm_embedding``, activation, embedding scale, shared or
  separate embeddings and dictionaries (``<pad>`` is CTranslate2's ``<blank>``).
- ALiBi and NoPE are refused: CTranslate2 has ALiBi in its decoder only (the encoder's bias has
  no equivalent), and its Transformer always has positions (a table, or relative attention).
"""
import os

from .. import scratch
from .translate import DECODING_FILE
from ..safe_io import check_output_folder

MISSING = ("the CTranslate2 export needs the optional package ctranslate2>=4.6.3: "
           "pip install 'fairseq-relpos[ct2]'")
TESTED = "4.8.5"  # the version the tests ran on; setup.py's ct2 extra allows >=4.6.3,<5
# CTranslate2's fairseq layer helpers that fill the specification (``ctranslate2.converters.fairseq``).
HELPERS = ("set_transformer_encoder_layer", "set_transformer_decoder_layer", "set_linear", "set_layer_norm",
           "set_embeddings", "set_position_encodings")
# fairseq's activation names -> ``ctranslate2.specs.common_spec.Activation`` members (the same
# map as CTranslate2's own fairseq converter, kept here: theirs is private).
ACTIVATIONS = {"gelu": "GELU", "gelu_accurate": "GELUTanh", "gelu_fast": "GELUTanh", "relu": "RELU",
               "swish": "SWISH"}

# Decoder-layer modules of fairseq that the CTranslate2 Transformer has no place for (NormFormer).
_UNSUPPORTED_LAYER_MODULES = ("attn_ln", "c_attn", "ffn_layernorm", "w_resid")
NOPE = ("NoPE cannot be exported to CTranslate2: its Transformer always has positions (a position "
        "table, or relative/rotary attention), and no-position encoder-decoders do not translate (see README)")


def require_ctranslate2():
    """The ctranslate2 module, or a clear error if the extra is not installed."""
    try:
        import ctranslate2
    except ImportError as err:
        raise RuntimeError(MISSING) from err
    return ctranslate2


def fairseq_helpers():
    """CTranslate2's fairseq converter module, checked to have every helper this export calls:
    a version that renamed one fails here, naming itself, rather than halfway with an
    AttributeError."""
    ctranslate2 = require_ctranslate2()
    from ctranslate2.converters import fairseq as ct2_fairseq
    from ctranslate2.specs import common_spec

    missing = [n for n in HELPERS if not callable(getattr(ct2_fairseq, n, None))]
    missing += [f"Activation.{a}" for a in sorted(set(ACTIVATIONS.values())) if not hasattr(common_spec.Activation, a)]
    if missing:
        raise RuntimeError(f"ctranslate2 {getattr(ctranslate2, '__version__', '(unknown version)')} has no "
                           f"{', '.join(missing)}, which the export uses; it was tested with ctranslate2 {TESTED} "
                           "(pip install 'fairseq-relpos[ct2]' installs a version from >=4.6.3,<5)")
    return ct2_fairseq


def vocabulary(dictionary):
    """A fairseq dictionary's tokens as CTranslate2 names them (``<pad>`` is its ``<blank>``)."""
    return ["<blank>" if token == "<pad>" else token for token in dictionary.symbols]


def refuse_positions(model_args):
    """Refuse position types CTranslate2 cannot run, before any model is built."""
    positions = model_args.get("relative_positions")
    if positions == "alibi":
        raise ValueError("ALiBi cannot be exported to CTranslate2: it has ALiBi in its decoder only, "
                         "and the encoder's symmetric/asymmetric distance bias has no equivalent there")
    if positions == "nope":
        raise ValueError(NOPE)


def model_spec(model, task):
    """The CTranslate2 ``TransformerSpec`` of a fairseq ``TransformerModel``, weights set."""
    ct2_fairseq = fairseq_helpers()
    from ctranslate2.specs import common_spec, transformer_spec
    from fairseq.models.transformer import TransformerModel

    if not isinstance(model, TransformerModel):
        raise ValueError(f"only fairseq transformer models can be exported, got {type(model).__name__}")
    args = getattr(model, "args", None) or model.cfg
    refuse_positions({"relative_positions": getattr(args, "relative_positions", None)})
    _refuse_unsupported(model)
    activation = getattr(args, "activation_fn", None) or "relu"
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} has no CTranslate2 equivalent "
                         f"(supported: {', '.join(ACTIVATIONS)})")
    common = dict(activation=getattr(common_spec.Activation, ACTIVATIONS[activation]))
    encoder, decoder = model.encoder, model.decoder
    encoder_spec = transformer_spec.TransformerEncoderSpec(
        len(encoder.layers), encoder.layers[0].self_attn.num_heads,
        pre_norm=encoder.layers[0].normalize_before, no_final_norm=encoder.layer_norm is None,
        layernorm_embedding=encoder.layernorm_embedding is not None,
        **common, **_rotary(encoder))
    decoder_spec = transformer_spec.TransformerDecoderSpec(
        len(decoder.layers), decoder.layers[0].self_attn.num_heads,
        pre_norm=decoder.layers[0].normalize_before, no_final_norm=decoder.layer_norm is None,
        layernorm_embedding=decoder.layernorm_embedding is not None,
        project_in_out=decoder.project_in_dim is not None or decoder.project_out_dim is not None,
        **common, **_rotary(decoder))
    if _rotary(encoder):
        # The encoder spec keeps a position table unless its attention is "relative"; with
        # rotary attention CTranslate2 (>= 4.6.3) uses no table, so none is written.
        del encoder_spec.position_encodings
    spec = transformer_spec.TransformerSpec(encoder_spec, decoder_spec)
    model.requires_grad_(False)  # the helpers read weights with .numpy()
    _fill_stack(spec.encoder, encoder, ct2_fairseq.set_transformer_encoder_layer)
    _fill_stack(spec.decoder, decoder, ct2_fairseq.set_transformer_decoder_layer)
    ct2_fairseq.set_linear(spec.decoder.projection, decoder.output_projection)
    if decoder.project_in_dim is not None:
        ct2_fairseq.set_linear(spec.decoder.project_in, decoder.project_in_dim)
    if decoder.project_out_dim is not None:
        ct2_fairseq.set_linear(spec.decoder.project_out, decoder.project_out_dim)
    spec.register_source_vocabulary(vocabulary(task.source_dictionary))
    spec.register_target_vocabulary(vocabulary(task.target_dictionary))
    # fairseq appends </s> to every source and starts decoding from </s>.
    spec.config.decoder_start_token = spec.config.eos_token
    spec.config.add_source_eos = True
    return spec


def _refuse_unsupported(model):
    decoder = model.decoder
    if any(stack.embed_positions is None and not _rotary(stack) for stack in (model.encoder, decoder)):
        raise ValueError(NOPE)
    if getattr(decoder, "adaptive_softmax", None) is not None:
        raise ValueError("the model has an adaptive softmax, which CTranslate2's Transformer does not have")
    if getattr(decoder, "cross_self_attention", False):
        raise ValueError("the model uses cross+self attention, which CTranslate2's Transformer does not have")
    for layer in decoder.layers:
        extra = [name for name in _UNSUPPORTED_LAYER_MODULES if getattr(layer, name, None) is not None]
        if extra:
            raise ValueError(f"the decoder has NormFormer modules ({', '.join(extra)}), which "
                             "CTranslate2's Transformer does not have")


def _rotary(stack):
    """Rotary keyword arguments for a stack's spec ({} without RoPE)."""
    from ctranslate2.specs.attention_spec import RotaryScalingType

    attention = stack.layers[0].self_attn
    rotary = getattr(attention, "rotary", None)
    if rotary is None:
        return {}
    options = dict(rotary_dim=0 if rotary.dim == attention.head_dim else rotary.dim,
                   rotary_interleave=rotary.layout == "interleaved", rotary_base=rotary.theta)
    if rotary.scaling == "linear":
        options.update(rotary_scaling_type=RotaryScalingType.Linear, rotary_scaling_factor=rotary.factor)
    return options


def position_table_rows(model):
    """How many positions the export's sinusoidal tables cover (the shorter side's), None when
    the model has none. fairseq sizes a table by the model's max positions and extends it on
    the fly; CTranslate2 has only the rows it is given."""
    rows = []
    for table in (model.encoder.embed_positions, model.decoder.embed_positions):
        if table is not None:  # sinusoidal tables are "weights", learned ones "weight"
            weight = getattr(table, "weights", None)
            rows.append((weight if weight is not None else table.weight).size(0) - table.padding_idx - 1)
    return min(rows) if rows else None


def _fill_stack(spec, stack, set_layer):
    """CTranslate2's ``set_transformer_encoder``/``_decoder`` minus the position table a RoPE
    stack does not have (fairseq leaves ``embed_positions`` None), with its own layer helpers."""
    from ctranslate2.converters import fairseq as ct2_fairseq

    if stack.embed_positions is not None:
        ct2_fairseq.set_position_encodings(spec.position_encodings, stack.embed_positions)
    ct2_fairseq.set_embeddings(spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings,
                               stack.embed_tokens)
    spec.scale_embeddings = stack.embed_scale
    for layer_spec, layer in zip(spec.layer, stack.layers):
        set_layer(layer_spec, layer)
    if stack.layer_norm is not None:
        ct2_fairseq.set_layer_norm(spec.layer_norm, stack.layer_norm)
    if stack.layernorm_embedding is not None:
        ct2_fairseq.set_layer_norm(spec.layernorm_embedding, stack.layernorm_embedding)


# What an export folder holds: CTranslate2's files and ours. Only such a folder is replaced.
EXPORT_FILES = frozenset({"model.bin", "config.json", "shared_vocabulary.json", "source_vocabulary.json",
                          "target_vocabulary.json", "README.md", DECODING_FILE})


def not_an_export(folder):
    """None if ``folder`` is empty or an export (its own files only), else why it is not."""
    names = sorted(os.listdir(folder))
    foreign = [n for n in names if n not in EXPORT_FILES or not os.path.isfile(os.path.join(folder, n))
               or os.path.islink(os.path.join(folder, n))]
    if foreign:
        return f"it holds {foreign[0]}, which an export does not write, so it is not a CTranslate2 export"
    if names and not {"model.bin", DECODING_FILE} <= set(names):
        return f"it has no model.bin and {DECODING_FILE}, so it is not a CTranslate2 export"
    return None


def save(spec, outdir, quantization=None, force=False, extra_files=None):
    """Write the model directory atomically: everything goes into a scratch folder beside
    OUTDIR, which replaces OUTDIR only when complete, so an error leaves nothing behind. An
    existing OUTDIR is replaced only with ``force`` and only if it is an export."""
    outdir = os.path.abspath(outdir)
    check_output_folder(outdir, force=force, replaceable=not_an_export)
    spec.validate()
    spec.optimize(quantization=quantization)

    def fill(folder):
        spec.save(folder)
        for name, text in (extra_files or {}).items():
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                f.write(text)

    scratch.write_folder(outdir, fill)
    return outdir
