"""Relative models under DistributedDataParallel: two CPU processes over gloo.

fairseq's own launcher insists on GPUs, so this wraps the model the way fairseq's
``pytorch_ddp`` backend does (torch DDP) and checks that a training step runs and leaves the
replicas identical."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model_builders import build, random_batch, write_dicts


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, data_dir, arch, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    task, model, _ = build(data_dir, arch)
    model.train()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    src, lengths, prev = random_batch(task, bsz=2, src_len=7, tgt_len=6, seed=rank)
    logits, _ = ddp(src, lengths, prev)
    logits.float().logsumexp(-1).mean().backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out}.{rank}")
    dist.destroy_process_group()


@pytest.mark.parametrize("arch", ["transformer_rope", "transformer_alibi"])
def test_ddp_step_keeps_replicas_identical(arch, tmp_path):
    data_dir = write_dicts(tmp_path / "dicts")
    out = str(tmp_path / "state")
    mp.spawn(_worker, args=(2, _free_port(), data_dir, arch, out), nprocs=2, join=True)
    a, b = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
