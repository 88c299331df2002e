"""minLoRA-style adapters: LoRA as a ``torch.nn.utils.parametrize`` parametrization.

The module stays the one fairseq built (its forward, and fast paths that read ``.weight``
directly, such as fairseq's fused attention, all see ``W + scale * B @ A``); only the weight's
state-dict key moves to ``<module>.parametrizations.weight.original``. Written for this
plugin after minLoRA's idea (github cccntu/minLoRA), not copied. minLoRA merges by removing
parametrizations while iterating the module's parametrization dict, which recent torch rejects
("dictionary changed size during iteration"); here merging is done on the state dict instead
(:func:`merge_state`), so the live model is never edited.
"""
import math

from torch import nn
from torch.nn.utils import parametrize

ORIGINAL = ".parametrizations.weight.original"
ADAPTER = ".parametrizations.weight.0."


class LoRAParametrization(nn.Module):
    """``W -> W + (alpha / rank) * B @ A`` for a 2-D weight of shape (out, in); embeddings are
    treated as (num_embeddings, dim). B starts at zero, so the wrapped model starts equal to
    the base. Dropout drops input features of the update (whole columns of A) while training."""

    def __init__(self, weight, rank, alpha, dropout=0.0):
        super().__init__()
        out_features, in_features = weight.shape
        self.lora_A = nn.Parameter(weight.new_empty(rank, in_features))
        self.lora_B = nn.Parameter(weight.new_zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def delta(self):
        a = self.lora_A
        if self.dropout is not None and self.training:
            a = a * self.dropout(a.new_ones(1, a.size(1)))
        return (self.lora_B @ a) * self.scaling

    def forward(self, weight):
        return weight + self.delta().to(weight.dtype)


def add(modules, rank, alpha, dropout):
    """Parametrize ``weight`` of every module in ``modules`` (all holding the same tensor, i.e. a
    tied weight) with one shared parametrization, so every use of the tied matrix is adapted
    and merging keeps the tie exact."""
    lora = LoRAParametrization(modules[0].weight, rank, alpha, dropout)
    for module in modules:
        if parametrize.is_parametrized(module, "weight"):
            raise ValueError(f"{type(module).__name__} already has adapters: refusing to apply them twice")
        parametrize.register_parametrization(module, "weight", lora)
    return lora


def merge_state(state, key_prefix, scaling):
    """State-dict level merge for one module: returns the merged fp32-computed weight in the
    original dtype. ``key_prefix`` is the module's name plus '.'."""
    base = state[key_prefix + ORIGINAL[1:]]
    a = state[key_prefix + ADAPTER[1:] + "lora_A"].float()
    b = state[key_prefix + ADAPTER[1:] + "lora_B"].float()
    return (base.float() + (b @ a) * scaling).to(base.dtype)
