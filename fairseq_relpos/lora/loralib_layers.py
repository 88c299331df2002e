"""LoRA-style adapters: fairseq's Linear/Embedding modules replaced by ``loralib`` layers.

Parameter names stay ``weight``/``bias`` (the base tensors are moved over, not copied) and
``lora_A``/``lora_B`` are added. loralib merges ``B @ A`` into the frozen weight in place on
``.eval()`` and subtracts it on ``.train()``; fairseq toggles these around every validation
and saves checkpoints while in eval mode, which is how the authors' fork ended up applying
adapters twice on resume. We always build with ``merge_weights=False``: the frozen weight is
never edited and merging is an explicit offline step (``fairseq-relpos merge``).
"""
import loralib
from fairseq.modules.multihead_attention import MultiheadAttention
from torch import nn


def replacement(module, rank, alpha, dropout):
    """A loralib layer holding ``module``'s own weight and bias Parameters."""
    if isinstance(module, nn.Embedding):
        new = loralib.Embedding(module.num_embeddings, module.embedding_dim, r=rank, lora_alpha=alpha,
                                padding_idx=module.padding_idx, merge_weights=False)
    elif isinstance(module, nn.Linear):
        new = loralib.Linear(module.in_features, module.out_features, r=rank, lora_alpha=alpha,
                             lora_dropout=dropout, bias=module.bias is not None, merge_weights=False)
        new.bias = module.bias
    else:
        raise TypeError(f"loralib adapters go on Linear or Embedding layers, not {type(module).__name__}")
    new.weight = module.weight
    new.to(module.weight.device, module.weight.dtype)
    new.train(module.training)
    return new


PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def route_attention_through_modules(model):
    """fairseq's MultiheadAttention hands ``q/k/v_proj.weight`` and ``out_proj.weight`` straight
    to torch's fused attention when it can (training, validation, ``--score-reference``),
    bypassing the projection modules and so any loralib adapter on them, while incremental
    decoding calls the modules: training would ignore adapters that decoding then applies. Its
    ``skip_embed_dim_check`` switch selects the equivalent path that calls the modules; it is
    set wherever any projection carries an adapter. (minLoRA needs none of this: the fused
    path reads the parametrized ``.weight``, adapter included.)"""
    for module in model.modules():
        if isinstance(module, MultiheadAttention) and any(
                isinstance(getattr(module, name), loralib.LoRALayer) for name in PROJECTIONS):
            module.skip_embed_dim_check = True


def merged_weight(weight, lora_a, lora_b, scaling, embedding):
    """``W + scale * B @ A`` computed in fp32, returned in ``W``'s dtype (loralib stores an
    embedding's update transposed)."""
    delta = (lora_b.float() @ lora_a.float()) * scaling
    if embedding:
        delta = delta.transpose(0, 1)
    return (weight.float() + delta).to(weight.dtype)
