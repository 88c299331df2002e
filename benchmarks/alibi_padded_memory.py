#!/usr/bin/env python
"""Peak memory of ALiBi on a padded batch: dense (B, H, T, S) mask against per-key-range attention.

    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/alibi_padded_memory.py

The encoder pass and the teacher-forced decoder pass (features, before the output layer, whose
(B, T, vocab) logits would hide attention's memory) of a batch of 8 documents of about 2,000
tokens, source and target lengths 1,650-2,000 so that both the left-padded source and the
right-padded target have padding, through ``transformer_alibi`` (6+6 layers, d 256, 4 heads, the
shape of benchmarks/speed.py), measured twice in one process:

* before: ``relative_attention.DENSE_MASK_LIMIT`` raised above any size, which is exactly the
  earlier behaviour (a padded batch takes the dense (B, H, T, S) float mask: ALiBi bias plus
  padding, 8 x 4 x 2000 x 2000 x 4 bytes = 512 MiB per layer call);
* after: the default, attention over each row's range of real keys with the strided bias.

Peak tensor memory is from torch's allocator (``speed.peak_bytes``: the profiler's running total
of c10 allocations), CPU time is this process's. Both must give the same features (to 1e-4).
"""
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import logging  # noqa: E402
import warnings  # noqa: E402

logging.disable(logging.WARNING)
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from fairseq_relpos.modules import relative_attention  # noqa: E402
from speed import SHAPES, build, make_batch, peak_bytes  # noqa: E402

LENGTHS = [2000, 1950, 1900, 1850, 1800, 1750, 1700, 1650]


@torch.no_grad()
def main():
    model, _, d = build("transformer_alibi", SHAPES["full"], 8000, torch.device("cpu"))
    model.eval()
    for layer in model.decoder.layers:
        layer.make_generation_fast_(need_attn=False)  # as fairseq-generate without --print-alignment
    net_input = make_batch(LENGTHS, LENGTHS[::-1], d, torch.device("cpu"), seed=0)["net_input"]
    encoder_out = model.encoder(net_input["src_tokens"], net_input["src_lengths"])
    passes = {
        "encoder": lambda: model.encoder(net_input["src_tokens"], net_input["src_lengths"])["encoder_out"][0],
        "decoder": lambda: model.decoder(net_input["prev_output_tokens"], encoder_out, features_only=True)[0],
    }
    default = relative_attention.DENSE_MASK_LIMIT
    print(f"batch of {len(LENGTHS)} documents, source tokens {LENGTHS}, target tokens {LENGTHS[::-1]}, "
          f"transformer_alibi 6+6 layers d 256, 4 heads, {torch.get_num_threads()} thread(s)")
    for name, run in passes.items():
        results = {}
        for label, limit in (("before (dense mask)", float("inf")), ("after (key ranges)", default)):
            relative_attention.DENSE_MASK_LIMIT = limit
            start = time.process_time()
            out = run()
            seconds = time.process_time() - start
            results[label] = (peak_bytes(run, torch.device("cpu")), seconds, out)
        relative_attention.DENSE_MASK_LIMIT = default
        (before, after) = results.values()
        torch.testing.assert_close(after[2], before[2], rtol=1e-4, atol=1e-4)
        for label, (peak, seconds, _) in results.items():
            print(f"{name} pass, {label:20s} peak {peak / 2**20:7.0f} MiB   CPU {seconds:6.1f} s")
        print(f"{name} pass, after / before: peak {after[0] / before[0]:.2f}, CPU time {after[1] / before[1]:.2f}")


if __name__ == "__main__":
    main()
