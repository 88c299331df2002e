"""fairseq's ``transformer`` with relative positions in self-attention.

The model is the stock ``TransformerModel``, built by fairseq as usual but without token
positional embeddings; its encoder and decoder self-attention modules are then switched to
:class:`RelativeSelfAttention`. Cross-attention keeps no positions, as in the paper.
Parameter names and shapes are exactly the stock ones, so sinusoidal checkpoints load into
these models by name (see ``checkpoint_surgery``).
"""
from fairseq.models import register_model, register_model_architecture
from fairseq.models.transformer import TransformerModel, base_architecture

from .. import positions
from ..modules import ALiBi, RelativeSelfAttention, RotaryEmbedding
from ..positions import POSITIONS
from ..modules.unfused_layer import unfuse_encoder
from . import checkpoint_surgery
from .shape_inheritance import inherit_shape_from_checkpoint


@register_model("transformer_relpos")
class RelativeTransformerModel(TransformerModel):
    @staticmethod
    def add_args(parser):
        TransformerModel.add_args(parser)
        positions.add_arguments(parser)

    @classmethod
    def build_model(cls, args, task):
        relative_architecture(args)
        if getattr(args, "cross_self_attention", False):
            raise ValueError("--cross-self-attention is not supported with relative positions")
        _lengths_from_task(args, task)
        positions.check_model(args)
        model = super().build_model(args, task)
        # No fused fast path may run the encoder without the relative attention (fairseq 0.12.2).
        unfuse_encoder(model.encoder)
        attach_relative_positions(model.encoder, args, causal=False)
        attach_relative_positions(model.decoder, args, causal=True)
        return model

    def upgrade_state_dict_named(self, state_dict, name):
        checkpoint_surgery.drop_absolute_positions(state_dict, name)
        super().upgrade_state_dict_named(state_dict, name)

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        # Registered per load, so it runs after every hook that wrappers (LoRA) registered
        # at build time to rename keys, and sees the state dict exactly as torch will.
        check = self.register_load_state_dict_pre_hook(checkpoint_surgery.refuse_mismatch)
        try:
            return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
        finally:
            check.remove()


def _lengths_from_task(args, task):
    """A relative model has no position table, so its length limit is a setting of the run,
    not of the weights: take the task's (the command line's) --max-source/target-positions
    rather than those saved in the checkpoint, which would cap decoding at training length."""
    limits = task.max_positions() if task is not None else None
    if isinstance(limits, tuple) and len(limits) == 2 and all(isinstance(n, int) for n in limits):
        args.max_source_positions, args.max_target_positions = limits


def attach_relative_positions(stack, args, causal):
    """Switch every self-attention of an encoder or decoder to relative positions; one
    positional module per stack is shared by its layers."""
    first = stack.layers[0].self_attn
    rotary = alibi = None
    if args.relative_positions == "rope":
        rotary = RotaryEmbedding(
            first.head_dim, fraction=args.rope_fraction, theta=args.rope_theta,
            layout=args.rope_layout, scaling=args.rope_scaling, factor=args.rope_scaling_factor)
    elif args.relative_positions == "alibi":
        alibi = ALiBi(first.num_heads, mode="causal" if causal else args.alibi_encoder)
    for layer in stack.layers:
        RelativeSelfAttention.adopt(layer.self_attn, rotary=rotary, alibi=alibi)


def relative_architecture(args):
    """Stock transformer defaults, minus token positional embeddings, plus our options."""
    if getattr(args, "relative_positions", None) not in POSITIONS:
        raise ValueError(f"unknown relative position type {getattr(args, 'relative_positions', None)!r}; "
                         f"use one of the architectures transformer_{{{','.join(POSITIONS)}}}")
    if getattr(args, "encoder_learned_pos", False) or getattr(args, "decoder_learned_pos", False):
        raise ValueError("--encoder/decoder-learned-pos contradicts relative positions")
    positions.refuse_unused(args.relative_positions, {name: getattr(args, name, None)
                                                      for name in positions.DEFAULTS})
    args.no_token_positional_embeddings = True
    positions.fill_defaults(args)
    base_architecture(args)
    positions.check_model(args)


def _register(positions):
    @register_model_architecture("transformer_relpos", f"transformer_{positions}")
    def arch(args):
        inherit_shape_from_checkpoint(args, positions)
        args.relative_positions = positions
        relative_architecture(args)

    arch.__doc__ = f"The stock transformer with {positions} relative positions in self-attention."
    return arch


for _positions in POSITIONS:
    _register(_positions)
