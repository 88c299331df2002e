"""The method of the paper: relative positions inside fairseq self-attention."""
from .alibi import ALiBi, alibi_slopes
from .relative_attention import RelativeSelfAttention
from .rotary import RotaryEmbedding

__all__ = ["ALiBi", "alibi_slopes", "RelativeSelfAttention", "RotaryEmbedding"]
