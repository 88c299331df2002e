"""Small models saved as fairseq checkpoints, and the same models in the authors' fork's form
(its saved options and parameter names, as read from VarunGumma/fairseq at f6cd0f72)."""
import argparse
import copy
from pathlib import Path

import torch
from omegaconf import OmegaConf

from model_builders import build, random_batch, write_dicts

RELATIVE = ("relative_positions", "rope_theta", "rope_fraction", "rope_layout", "rope_scaling",
            "rope_scaling_factor", "alibi_encoder")
FORK_DEFAULTS = dict(encoder_recurrent_stacking=None, decoder_recurrent_stacking=None,
                     encoder_factorized_embed_dim=None, decoder_factorized_embed_dim=None,
                     encoder_kv_attention_heads=None, decoder_kv_attention_heads=None,
                     encoder_use_glu=False, decoder_use_glu=False, encoder_use_mlp=False,
                     decoder_use_mlp=False, encoder_use_rmsnorm=False, decoder_use_rmsnorm=False)


def save(cfg, model, path):
    """What fairseq's trainer saves, for a model built in-process."""
    state = {"args": None, "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
             "model": model.state_dict(), "extra_state": {},
             "optimizer_history": [{"criterion_name": "LabelSmoothedCrossEntropyCriterion",
                                    "optimizer_name": "Adam", "lr_scheduler_state": {}, "num_updates": 0}]}
    torch.save(state, path)
    return path


def source_model(tmp, arch, extra=(), seed=0, **shape):
    """(data dir, task, model, checkpoint path) of a random model with separate dictionaries."""
    data = write_dicts(Path(tmp) / "data")
    torch.manual_seed(seed)
    task, model, cfg = build(data, arch, extra, **shape)
    with torch.no_grad():  # LayerNorms away from 1/0, so a mix-up of norms would show
        for name, p in model.named_parameters():
            if "layer_norm" in name or "layernorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return data, task, model, save(cfg, model, Path(tmp) / f"{arch}.pt")


def forkify(path, out, arch="roformer_IT2_dist", attention="fast", rope='{"theta": 10000}', alibi=None,
            lora=None, fused=False, **fields):
    """The checkpoint at ``path`` as the fork would have saved the same model."""
    state = torch.load(path, weights_only=True)
    model = state["cfg"]["model"]
    args = {k: v for k, v in vars(model).items() if k not in RELATIVE}
    attention = attention + "_fused" if fused and not attention.endswith("fused") else attention
    args.update(FORK_DEFAULTS, _name=arch, arch=arch, attn_implementation=attention, rope_args=rope,
                alibi_args=alibi, lora_args=lora, no_token_positional_embeddings=True)
    args.update(fields)
    state["cfg"]["model"] = argparse.Namespace(**args)
    weights = state["model"]
    g = torch.Generator().manual_seed(1)
    if fused:
        for key in [k for k in weights if ".self_attn.q_proj." in k]:
            prefix, kind = key.split(".self_attn.q_proj.")
            parts = [weights.pop(f"{prefix}.self_attn.{p}_proj.{kind}") for p in "qkv"]
            weights[f"{prefix}.self_attn.qkv_proj.{kind}"] = torch.cat(parts)
        for key in [k for k in weights if ".encoder_attn.k_proj." in k]:
            prefix, kind = key.split(".encoder_attn.k_proj.")
            parts = [weights.pop(f"{prefix}.encoder_attn.{p}_proj.{kind}") for p in "kv"]
            weights[f"{prefix}.encoder_attn.kv_proj.{kind}"] = torch.cat(parts)
    if lora is not None:  # the fork saves merged weights and the adapters beside them
        targets = ("qkv_proj.weight", "kv_proj.weight") if fused else ("k_proj.weight", "v_proj.weight")
        for key in [k for k in weights if k.endswith(targets)]:
            w = weights[key]
            module = key[: -len(".weight")]
            weights[f"{module}.lora_A"] = torch.randn(4, w.shape[1], generator=g)
            weights[f"{module}.lora_B"] = torch.randn(w.shape[0], 4, generator=g)
    torch.save(state, out)
    return out


def load_like_generate(path, data):
    """The model fairseq-generate builds from a checkpoint (fairseq's own loader)."""
    from fairseq import checkpoint_utils
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(path)], arg_overrides={"data": str(data)})
    return task, models[0].eval()


def scores(model, task, seed=0, bsz=3, src_len=9, tgt_len=7):
    """Teacher-forced log-probabilities of a random left-padded batch."""
    src, lengths, prev = random_batch(task, bsz, src_len, tgt_len, seed=seed, pad_first_row=2)
    with torch.no_grad():
        out = model(src, lengths, prev)
        return model.get_normalized_probs(out, log_probs=True)


def copy_state(path):
    return copy.deepcopy(torch.load(path, weights_only=True))
