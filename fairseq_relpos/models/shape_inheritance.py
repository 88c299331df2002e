"""Read the model's shape from the checkpoint a run starts from.

fairseq parses ``--arch`` before any checkpoint is read, so an architecture's defaults would
silently win over the checkpoint's real shape and strict loading would then fail. When a run
names a checkpoint to start from, the architecture takes every shape option that the command
line left unset from that checkpoint instead.
"""
import os

from ..checkpoint_io import read_model_args

SHAPE_FIELDS = (
    "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_layers", "encoder_attention_heads",
    "encoder_normalize_before", "decoder_embed_dim", "decoder_ffn_embed_dim", "decoder_layers",
    "decoder_attention_heads", "decoder_normalize_before", "decoder_output_dim",
    "decoder_input_dim", "layernorm_embedding", "activation_fn", "share_all_embeddings",
    "share_decoder_input_output_embed", "no_scale_embedding", "no_cross_attention",
    "encoder_layers_to_keep", "decoder_layers_to_keep",
)
DEFAULT_RESTORE_FILE = "checkpoint_last.pt"


def starting_checkpoint(args):
    path = getattr(args, "finetune_from_model", None)
    if not path:
        restore = getattr(args, "restore_file", DEFAULT_RESTORE_FILE)
        path = restore if restore and restore != DEFAULT_RESTORE_FILE else None
    return path


def inherit_shape_from_checkpoint(args):
    path = starting_checkpoint(args)
    if path is None:
        return
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the checkpoint to start from does not exist: {path}")
    source = read_model_args(path)
    for field in SHAPE_FIELDS:
        if not hasattr(args, field) and field in source and source[field] is not None:
            setattr(args, field, source[field])
