"""Read the model's shape from the checkpoint a run starts from.

fairseq parses ``--arch`` before any checkpoint is read, so an architecture's defaults would
silently win over the checkpoint's real shape and strict loading would then fail. When a run
starts from a checkpoint (the one fairseq will load: ``starting_checkpoint``), the architecture
takes every shape option that the command line left unset from it instead. fairseq adds model
options with ``argparse.SUPPRESS``, so an absent attribute means "not given".
"""
from ..checkpoints import read_model_args
from ..positions import applies
from ..starting_checkpoint import starting_checkpoint
from .checkpoint_surgery import CheckpointMismatchError

# Options that decide which weights exist and what shape they have, or how a stock layer
# computes; a run that starts from a checkpoint must agree with it on all of them.
SHAPE_FIELDS = (
    "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_layers", "encoder_attention_heads",
    "encoder_normalize_before", "decoder_embed_dim", "decoder_ffn_embed_dim", "decoder_layers",
    "decoder_attention_heads", "decoder_normalize_before", "decoder_output_dim",
    "decoder_input_dim", "layernorm_embedding", "activation_fn", "share_all_embeddings",
    "share_decoder_input_output_embed", "merge_src_tgt_embed", "no_scale_embedding",
    "no_cross_attention", "encoder_layers_to_keep", "decoder_layers_to_keep", "adaptive_input",
    "adaptive_softmax_cutoff", "tie_adaptive_weights",
)
# A relative checkpoint fine-tuned further keeps its own position settings (those of its own
# scheme only: a RoPE theta does not follow a checkpoint fine-tuned to ALiBi).
RELATIVE_FIELDS = ("rope_theta", "rope_fraction", "rope_layout", "rope_scaling",
                   "rope_scaling_factor", "alibi_encoder")


def inherit_shape_from_checkpoint(args, positions=None):
    """Fill the unset shape options of ``args`` from the starting checkpoint, and its position
    options when it has the same relative ``positions`` as the model being built."""
    # The arch function also runs when fairseq builds a model from a saved or already-built
    # config (fairseq-generate, fairseq-train's second pass); those carry ``_name`` and are
    # complete, and the checkpoint they name may have moved since.
    if hasattr(args, "_name"):
        return
    start = starting_checkpoint(args)
    if start is None:
        return
    path = start[0]
    source = read_model_args(path)
    if source.get("encoder_learned_pos") or source.get("decoder_learned_pos"):
        raise CheckpointMismatchError(
            f"{path} has learned positional embeddings; they are weights that a relative-position "
            "model cannot use. Only sinusoidal (or relative) checkpoints can be switched.")
    same_scheme = positions is not None and source.get("relative_positions") == positions
    fields = SHAPE_FIELDS + tuple(f for f in RELATIVE_FIELDS if same_scheme and applies(f, positions))
    for field in fields:
        if not hasattr(args, field) and field in source and source[field] is not None:
            setattr(args, field, source[field])
