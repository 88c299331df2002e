"""Caches of the attention modules keep no large tensor alive between calls: the dense ALiBi
bias is kept only up to ``alibi.CACHE_LIMIT`` elements, and the future-mask check is remembered
on fairseq's mask itself, so it frees with the model that owns the mask."""
import gc
import weakref

import pytest
import torch

from fairseq_relpos.modules import ALiBi, alibi as alibi_module
from model_builders import build, random_batch, write_dicts


@pytest.fixture(scope="module")
def dicts(tmp_path_factory):
    return write_dicts(tmp_path_factory.mktemp("dicts"))


def held_tensors(module):
    """Every tensor the module's own attributes hold (its caches), through tuples and dicts."""
    found, todo = [], list(vars(module).values())
    while todo:
        item = todo.pop()
        if isinstance(item, torch.Tensor):
            found.append(item._base if item._base is not None else item)
        elif isinstance(item, (tuple, list)):
            todo.extend(item)
        elif isinstance(item, dict) and item is not module._modules:
            todo.extend(item.values())
    return found


def test_a_dense_bias_over_the_limit_is_not_kept_and_one_under_it_is_shared(monkeypatch):
    monkeypatch.setattr(alibi_module, "CACHE_LIMIT", 4 * 10 * 10, raising=False)
    alibi = ALiBi(4, "symmetric")
    small = alibi(10, 10, 0, "cpu", torch.float32)
    assert alibi(10, 10, 0, "cpu", torch.float32) is small  # the layers of one pass share it
    big = alibi(11, 11, 0, "cpu", torch.float32)
    assert all(t.numel() <= alibi_module.CACHE_LIMIT for t in held_tensors(alibi))
    again = alibi(11, 11, 0, "cpu", torch.float32)
    assert again is not big and torch.equal(again, big)
    i, j = torch.arange(11.)[:, None], torch.arange(11.)[None]
    torch.testing.assert_close(big, -torch.tensor(alibi.slopes)[:, None, None] * (i - j).abs())


def test_attention_weights_over_a_long_sequence_leave_no_dense_bias_behind(dicts, monkeypatch):
    monkeypatch.setattr(alibi_module, "CACHE_LIMIT", 1000, raising=False)
    _, model, _ = build(dicts, "transformer_alibi")
    attn = model.encoder.layers[0].self_attn
    T = 40  # heads x T x T = 6400 elements > the limit
    x = torch.randn(T, 2, attn.embed_dim)
    with torch.no_grad():
        _, weights = attn(x, x, x, need_weights=True)
    assert weights.shape == (2, T, T)
    assert all(t.numel() <= 1000 for t in held_tensors(attn.alibi))


def test_the_future_mask_check_keeps_no_mask_alive(dicts):
    """fairseq's decoder keeps its future mask; once the model is gone, so is the mask."""
    task, model, _ = build(dicts, "transformer_rope")
    src, lengths, prev = random_batch(task, 2, 7, 6)
    with torch.no_grad():
        model(src, lengths, prev)
    mask = weakref.ref(model.decoder._future_mask)
    assert mask() is not None
    del model
    gc.collect()
    assert mask() is None
