"""IndicTrans2's architecture names for the stock ``transformer`` model.

IndicTrans2 registers these in its own ``--user-dir``; fairseq takes only one, so to load its
checkpoints next to this plugin we register the same names with the same shapes. Each value
is a default that the command line (or the checkpoint's saved args) overrides.
"""
from fairseq.models import ARCH_MODEL_REGISTRY, register_model_architecture
from fairseq.models.transformer import base_architecture

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


def _register(name, defaults):
    def arch(args):
        for field, value in defaults.items():
            setattr(args, field, getattr(args, field, value))
        base_architecture(args)

    arch.__doc__ = f"IndicTrans2's {name}: {defaults}"
    register_model_architecture("transformer", name)(arch)


for _name, _defaults in INDICTRANS2_ARCHITECTURES.items():
    if _name not in ARCH_MODEL_REGISTRY:
        _register(_name, _defaults)
