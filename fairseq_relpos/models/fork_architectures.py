"""The architecture names of the authors' fork of fairseq, for training with this plugin.

The fork (VarunGumma/fairseq at f6cd0f72, ``transformer_legacy.py``) names IndicTrans2's shapes
``transformer_IT2`` (1B) and ``transformer_IT2_dist`` (distilled), and their RoPE versions
``roformer_IT2`` and ``roformer_IT2_dist``. The same names here give the same shapes; the
roformer ones are ``transformer_rope`` with the fork's RoPE (theta 10000, half of each head
rotated, interleaved pairs: this plugin's defaults). Checkpoints saved by the fork need none of
this: they are read through ``fairseq_relpos.fork``. Names already registered (another
``--user-dir``) are left alone.
"""
from fairseq.models import ARCH_MODEL_REGISTRY, register_model_architecture
from fairseq.models.transformer import base_architecture

from .relative_transformer import relative_architecture
from .shape_inheritance import inherit_shape_from_checkpoint

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


def _register_sinusoidal(name, defaults):
    def arch(args):
        _defaults(args, defaults)
        base_architecture(args)

    arch.__doc__ = f"The fork's {name}: {defaults}"
    register_model_architecture("transformer", name)(arch)


def _register_rope(name, defaults):
    def arch(args):
        inherit_shape_from_checkpoint(args, "rope")
        _defaults(args, defaults)
        args.relative_positions = "rope"
        relative_architecture(args)

    arch.__doc__ = f"The fork's {name}: transformer_rope with {defaults}"
    register_model_architecture("transformer_relpos", name)(arch)


for _name, _shape in FORK_ARCHITECTURES.items():
    if _name not in ARCH_MODEL_REGISTRY:
        _register_sinusoidal(_name, _shape)
for _name, _shape in FORK_ROPE_ARCHITECTURES.items():
    if _name not in ARCH_MODEL_REGISTRY:
        _register_rope(_name, _shape)
