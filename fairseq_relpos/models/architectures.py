"""Every architecture name this plugin registers, in one place; the models they build are
registered beside their classes (``transformer_relpos``, ``lora_adapted``) or are fairseq's own
``transformer``.

- ``transformer_{rope,alibi,nope}``: the stock transformer with relative positions in
  self-attention (``relative_transformer``), reading its shape from the checkpoint a run starts
  from (``shape_inheritance``).
- IndicTrans2's names (``transformer_2x`` ... ``transformer_base18L``): IndicTrans2 registers these
  in its own ``--user-dir``; fairseq takes only one, so to load its checkpoints next to this plugin
  the same names give the same shapes on the stock ``transformer``.
- The authors' fork's names (VarunGumma/fairseq at f6cd0f72, ``transformer_legacy.py``):
  ``transformer_IT2`` (1B) and ``transformer_IT2_dist`` (distilled) on the stock ``transformer``,
  and their RoPE versions ``roformer_IT2`` and ``roformer_IT2_dist``: ``transformer_rope`` with the
  fork's RoPE (theta 10000, half of each head rotated, interleaved pairs: this plugin's defaults).
  Checkpoints saved by the fork need none of this: they are read through ``fairseq_relpos.fork``.
- ``lora_adapted``: rebuilds a LoRA checkpoint's model from its real ``arch`` (``lora_transformer``).

Each value in a shape table is a default that the command line (or the checkpoint's saved args)
overrides. IndicTrans2's and the fork's names already registered (another ``--user-dir``) are
left alone.
"""
from fairseq.models import ARCH_MODEL_REGISTRY, register_model_architecture
from fairseq.models.transformer import base_architecture

from ..positions import POSITIONS
from . import lora_transformer
from .relative_transformer import relative_architecture
from .shape_inheritance import inherit_shape_from_checkpoint

# IndicTrans2's shapes
_WIDE = dict(encoder_normalize_before=False)
_DEEP = dict(encoder_embed_dim=1024, encoder_ffn_embed_dim=8192, encoder_attention_heads=16,
             encoder_normalize_before=True, decoder_normalize_before=True,
             decoder_embed_dim=1024, decoder_ffn_embed_dim=8192, decoder_attention_heads=16)


def _width(dim, ffn):
    return dict(encoder_embed_dim=dim, encoder_ffn_embed_dim=ffn, encoder_attention_heads=16,
                decoder_embed_dim=dim, decoder_ffn_embed_dim=ffn, decoder_attention_heads=16, **_WIDE)


INDICTRANS2_ARCHITECTURES = {
    "transformer_2x": _width(1024, 4096),
    "transformer_4x": _width(1536, 4096),
    "transformer_9x": _width(2048, 8192),
    "transformer_12e12d_9xeq": dict(_width(1536, 4096), encoder_layers=12, decoder_layers=12),
    "transformer_18_18": dict(_DEEP, encoder_layers=18, decoder_layers=18),
    "transformer_24_24": dict(_DEEP, encoder_layers=24, decoder_layers=24),
    "transformer_base18L": dict(encoder_normalize_before=True, decoder_normalize_before=True,
                                layernorm_embedding=True, encoder_layers=18, decoder_layers=18),
}

# The fork's shapes
_DIST = dict(activation_fn="gelu", encoder_layers=18, decoder_layers=18, encoder_normalize_before=True,
             decoder_normalize_before=True, layernorm_embedding=True, share_decoder_input_output_embed=True)
_LARGE = dict(activation_fn="gelu", encoder_layers=18, decoder_layers=18, encoder_embed_dim=1024,
              decoder_embed_dim=1024, encoder_ffn_embed_dim=8192, decoder_ffn_embed_dim=8192,
              encoder_attention_heads=16, decoder_attention_heads=16, layernorm_embedding=False,
              encoder_normalize_before=True, decoder_normalize_before=True)
FORK_ARCHITECTURES = {"transformer_IT2_dist": _DIST, "transformer_IT2": _LARGE}
FORK_ROPE_ARCHITECTURES = {"roformer_IT2_dist": _DIST, "roformer_IT2": _LARGE}


def _defaults(args, defaults):
    for field, value in defaults.items():
        setattr(args, field, getattr(args, field, value))


def _register_relative(positions):
    def arch(args):
        inherit_shape_from_checkpoint(args, positions)
        args.relative_positions = positions
        relative_architecture(args)

    arch.__doc__ = f"The stock transformer with {positions} relative positions in self-attention."
    register_model_architecture("transformer_relpos", f"transformer_{positions}")(arch)


def _register_sinusoidal(name, defaults, whose):
    def arch(args):
        _defaults(args, defaults)
        base_architecture(args)

    arch.__doc__ = f"{whose} {name}: {defaults}"
    register_model_architecture("transformer", name)(arch)


def _register_fork_rope(name, defaults):
    def arch(args):
        inherit_shape_from_checkpoint(args, "rope")
        _defaults(args, defaults)
        args.relative_positions = "rope"
        relative_architecture(args)

    arch.__doc__ = f"The fork's {name}: transformer_rope with {defaults}"
    register_model_architecture("transformer_relpos", name)(arch)


def lora_adapted(args):
    """Architecture options come from the checkpoint's real ``arch``."""


for _positions in POSITIONS:
    _register_relative(_positions)
for _name, _shape in FORK_ARCHITECTURES.items():
    if _name not in ARCH_MODEL_REGISTRY:
        _register_sinusoidal(_name, _shape, "The fork's")
for _name, _shape in FORK_ROPE_ARCHITECTURES.items():
    if _name not in ARCH_MODEL_REGISTRY:
        _register_fork_rope(_name, _shape)
for _name, _shape in INDICTRANS2_ARCHITECTURES.items():
    if _name not in ARCH_MODEL_REGISTRY:
        _register_sinusoidal(_name, _shape, "IndicTrans2's")
register_model_architecture(lora_transformer.NAME, lora_transformer.NAME)(lora_adapted)
