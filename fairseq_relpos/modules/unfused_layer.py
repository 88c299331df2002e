"""fairseq's encoder layer, always run through its own modules.

fairseq 0.12.2's ``TransformerEncoderLayerBase`` (main's has none of this) keeps a second,
fused copy of its weights (``in_proj_weight`` and seven more parameters, zeros at build,
copied from q/k/v/out/fc1/fc2 by name at every load) for a BetterTransformer fast path: in
eval mode, once a checkpoint was loaded, the layer and the encoder call
``torch._transformer_encoder_layer_fwd`` on that copy instead of ``self_attn``. The plugin's
attention then never runs: a relative model encodes without RoPE or ALiBi (silently on an
unpadded input; "Mask Type should be defined" on a padded one, fairseq #4858), adapters are
ignored, and the copies, which never get a gradient, end up in checkpoints. Its load also
reads ``self_attn.q_proj.weight`` by name, which minLoRA renames.

:class:`UnfusedEncoderLayer` is the same layer without the copy and without the fast path: the
flags that fairseq 0.12.2 reads before taking it are off, and the copies that 0.12.2 saved
are dropped by name when a checkpoint is upgraded, so checkpoints move both ways between
0.12.2 and main. On fairseq main it changes nothing.
"""
from fairseq.modules.transformer_layer import TransformerEncoderLayerBase
from torch import nn

FUSED_COPIES = ("in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias",
                "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias")


class UnfusedEncoderLayer(TransformerEncoderLayerBase):
    """An encoder layer whose attention and feed-forward are always its own modules."""

    @classmethod
    def adopt(cls, layer):
        if not isinstance(layer, TransformerEncoderLayerBase):
            raise TypeError(f"expected a fairseq TransformerEncoderLayer, got {type(layer).__name__}")
        layer.__class__ = cls
        for name in FUSED_COPIES:
            layer._parameters.pop(name, None)
        # fairseq 0.12.2's layer and encoder take the fast path only when both are set.
        layer.can_use_fastpath = False
        layer.load_to_BT = False
        return layer

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Skip 0.12.2's override, which fills the fused copy (and sets load_to_BT).
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args, **kwargs)

    def upgrade_state_dict_named(self, state_dict, name):
        super().upgrade_state_dict_named(state_dict, name)
        for key in FUSED_COPIES:
            state_dict.pop(f"{name}.{key}", None)


def is_fused_copy(key):
    """Whether a state-dict key names one of fairseq 0.12.2's fused copies (not a weight)."""
    return key.rsplit(".", 1)[-1] in FUSED_COPIES


def drop_fused_copies(state_dict):
    """Remove the fused copies that fairseq 0.12.2 saved for each encoder layer from a whole
    model's state dict (``fairseq-relpos convert``): they are derived, not weights, and a
    relative model has none."""
    for key in [k for k in state_dict if k.startswith("encoder.layers.") and is_fused_copy(k)]:
        del state_dict[key]


def unfuse_encoder(encoder):
    """Make every layer of a fairseq Transformer encoder an :class:`UnfusedEncoderLayer`."""
    for layer in encoder.layers:
        UnfusedEncoderLayer.adopt(layer)
    return encoder
