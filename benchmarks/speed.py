#!/usr/bin/env python
"""Speed and memory of the relative-position models against stock fairseq, in one process.

    python benchmarks/speed.py            # full run (see benchmarks/README.md for timings)
    python benchmarks/speed.py --quick    # smaller model and fewer repeats, a minute or two
    python benchmarks/speed.py --documents  # 1500-token scoring and steps at 2000, 2 threads

Builds stock ``transformer`` (sinusoidal) and ``transformer_rope`` / ``transformer_alibi`` of
the same shape through fairseq's own argument parser, task and model registries (with a dummy
dictionary), seeds them identically, and measures, model after model inside every repeat
(ABAB..., so that load from other processes hits all models alike):

* training tokens/s (forward + backward + Adam step, label-smoothed cross-entropy);
* beam-search sentences/s with fairseq's SequenceGenerator (fixed output length, so that
  every model decodes the same number of steps whatever its random weights prefer);
* teacher-forced scoring time and peak memory of one document of N source and N target
  tokens;
* the time of one incremental decoder step with the self-attention cache pre-filled to a
  given position.

Times are medians over repeats; ratios are plugin / stock (below 1.0 means the plugin is
faster or smaller).

Peak memory on CPU is measured from torch's own allocator: the profiler with
``profile_memory=True`` records every c10 CPU allocation and free together with the running
total of bytes allocated since profiling began, and the peak is the maximum of that total. So
it is the extra tensor memory a call needs on top of the weights, exact to the byte and free
of noise. ``tracemalloc`` cannot see torch's allocations, and ``ru_maxrss`` mixes in the
interpreter, libraries, malloc arenas and memory that glibc keeps after a free. Buffers that
oneDNN/MKL allocate outside c10 are not counted (they are small and the same for all models).
On CUDA, ``torch.cuda.max_memory_allocated`` is used instead.
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import logging  # noqa: E402

logging.disable(logging.WARNING)

from fairseq import options  # noqa: E402
from fairseq.data import Dictionary  # noqa: E402
from fairseq.sequence_generator import SequenceGenerator  # noqa: E402
from fairseq.tasks.translation import TranslationTask  # noqa: E402

STOCK = "transformer"
PLUGIN_ARCHS = ("transformer_rope", "transformer_alibi")

SHAPES = {
    # layers, embed dim, ffn dim, heads
    "full": dict(layers=6, dim=256, ffn=1024, heads=4),
    "quick": dict(layers=3, dim=256, ffn=1024, heads=4),
}


def build(arch, shape, vocab, device, seed=1):
    """One model built exactly as fairseq-train would build it, on a dummy dictionary."""
    dictionary = Dictionary()
    for i in range(vocab - len(dictionary)):
        dictionary.add_symbol(f"w{i}")
    flags = [
        "--layers", "--embed-dim", "--ffn-embed-dim", "--attention-heads"]
    values = [shape["layers"], shape["dim"], shape["ffn"], shape["heads"]]
    argv = ["unused-data-dir", "--task", "translation", "--arch", arch, "--user-dir", str(REPO / "fairseq_relpos"),
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--dropout", "0.1", "--share-decoder-input-output-embed",
            "--max-source-positions", "8192", "--max-target-positions", "8192"]
    for side in ("encoder", "decoder"):
        for flag, value in zip(flags, values):
            argv += [f"--{side}-{flag[2:]}", str(value)]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, input_args=argv)
    task = TranslationTask(args, dictionary, dictionary)
    torch.manual_seed(seed)
    model = task.build_model(args).to(device)
    criterion = task.build_criterion(args).to(device)
    return model, criterion, dictionary


def random_tokens(n, vocab, gen, nspecial=4):
    return torch.randint(nspecial, vocab, (n,), generator=gen)


def make_batch(src_lens, tgt_lens, d, device, seed):
    """A fairseq translation batch: left-padded sources, targets ending in eos, and
    prev_output_tokens = eos + target[:-1]."""
    gen = torch.Generator().manual_seed(seed)
    bsz, vocab = len(src_lens), len(d)
    src = torch.full((bsz, max(src_lens)), d.pad(), dtype=torch.long)
    tgt = torch.full((bsz, max(tgt_lens)), d.pad(), dtype=torch.long)
    prev = torch.full_like(tgt, d.pad())
    for i, (s, t) in enumerate(zip(src_lens, tgt_lens)):
        src[i, src.size(1) - s:-1] = random_tokens(s - 1, vocab, gen)
        src[i, -1] = d.eos()
        tgt[i, :t - 1] = random_tokens(t - 1, vocab, gen)
        tgt[i, t - 1] = d.eos()
        prev[i, 0] = d.eos()
        prev[i, 1:t] = tgt[i, :t - 1]
    return {
        "id": torch.arange(bsz), "nsentences": bsz, "ntokens": int(sum(tgt_lens)),
        "net_input": {"src_tokens": src.to(device), "src_lengths": torch.tensor(src_lens, device=device),
                      "prev_output_tokens": prev.to(device)},
        "target": tgt.to(device),
    }


class Clock:
    """Seconds a call takes: on CUDA wall time between synchronisations; on CPU, by default,
    the CPU time of this process, which does not count the time the scheduler gives to other
    processes on a shared machine (with one torch thread that is the work the call does)."""

    def __init__(self, device, kind="cpu"):
        self.cuda = device.type == "cuda"
        self.now = time.perf_counter if self.cuda or kind == "wall" else time.process_time

    def __call__(self, fn):
        if self.cuda:
            torch.cuda.synchronize()
        start = self.now()
        out = fn()
        if self.cuda:
            torch.cuda.synchronize()
        return self.now() - start, out


def interleaved(names, repeats, warmup, run_one, paired=None):
    """Median seconds per model; every repeat runs every model once, in turn (ABAB...).
    ``paired``, if given, receives per model the median over repeats of its time divided by
    the first model's (stock's) in the same repeat, which load that drifts during a run moves
    less than a ratio of medians."""
    times = {n: [] for n in names}
    for r in range(warmup + repeats):
        for n in names:
            seconds = run_one(n)
            if r >= warmup:
                times[n].append(seconds)
    if paired is not None:
        paired.update({n: statistics.median(a / b for a, b in zip(t, times[names[0]])) for n, t in times.items()})
    return {n: statistics.median(t) for n, t in times.items()}


def autocast(device, dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# --------------------------------------------------------------------------- measurements

def bench_train(models, d, device, dtype, cfg, clock):
    gen = torch.Generator().manual_seed(0)
    batches = []
    for seed in range(4):
        lens = torch.randint(cfg["train_len"][0], cfg["train_len"][1] + 1, (cfg["train_bsz"],), generator=gen).tolist()
        lens2 = torch.randint(cfg["train_len"][0], cfg["train_len"][1] + 1, (cfg["train_bsz"],), generator=gen).tolist()
        batches.append(make_batch(lens, lens2, d, device, seed))
    opts = {n: torch.optim.Adam(m.parameters(), lr=1e-4) for n, (m, _) in models.items()}
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step = {n: 0 for n in models}

    def run_one(name):
        model, criterion = models[name]
        model.train()
        sample = batches[step[name] % len(batches)]
        step[name] += 1

        def go():
            with autocast(device, dtype):
                loss, _, _ = criterion(model, sample)
            scaler.scale(loss).backward()
            scaler.step(opts[name])
            scaler.update()
            opts[name].zero_grad(set_to_none=True)

        return clock(go)[0]

    tokens = statistics.mean(b["ntokens"] for b in batches)
    med = interleaved(list(models), cfg["train_repeats"], 1, run_one)
    for opt in opts.values():
        opt.state.clear()
    return {n: tokens / s for n, s in med.items()}


@torch.no_grad()
def bench_generate(models, d, device, dtype, cfg, clock):
    n, length = cfg["gen_bsz"], cfg["gen_len"]
    sample = make_batch([length] * n, [length] * n, d, device, seed=7)
    gens = {name: SequenceGenerator([m], d, beam_size=cfg["beam"], max_len_a=0, max_len_b=length,
                                    min_len=length)
            for name, (m, _) in models.items()}

    def run_one(name):
        models[name][0].eval()
        with autocast(device, dtype):
            return clock(lambda: gens[name].generate([models[name][0]], sample))[0]

    med = interleaved(list(models), cfg["gen_repeats"], 1, run_one)
    return {name: n / s for name, s in med.items()}


def score(model, sample):
    """Teacher-forced log-probability of the target, as fairseq-generate --score-reference."""
    out = model(**sample["net_input"])
    lprobs = model.get_normalized_probs(out, log_probs=True)
    target = sample["target"]
    return lprobs.gather(-1, target.unsqueeze(-1)).sum()


def peak_bytes(fn, device):
    """Peak tensor bytes allocated by ``fn`` beyond what existed before it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    peak = 0
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            peak = max(peak, node.extra_fields.total_allocated)
        stack.extend(node.children)
    return peak


@torch.no_grad()
def bench_score(models, d, device, dtype, cfg, clock, length):
    sample = make_batch([length], [length], d, device, seed=length)
    for m, _ in models.values():
        m.eval()

    def run_one(name):
        with autocast(device, dtype):
            return clock(lambda: score(models[name][0], sample))[0]

    paired = {}
    med = interleaved(list(models), cfg["score_repeats"], 1, run_one, paired)
    peaks = {}
    for name, (m, _) in models.items():
        with autocast(device, dtype):
            peaks[name] = peak_bytes(lambda: score(m, sample), device)
    return med, peaks, paired


@torch.no_grad()
def bench_step(models, d, device, dtype, cfg, clock, position):
    """One decoder step at ``position``: the self-attention cache is pre-filled to ``position``
    keys and values, then the decoder steps on, one token a repeat (positions ``position``,
    ``position + 1``, ...), as it would while generating; the median step is reported.

    The pre-filled cache holds random keys and values: a step's cost does not depend on
    their values, and decoding ``position`` real steps first would take minutes on a CPU."""
    warmup, repeats = 2, cfg["step_repeats"]
    bsz, src_len = cfg["step_bsz"], cfg["gen_len"]
    sample = make_batch([src_len] * bsz, [position + warmup + repeats + 1] * bsz, d, device, seed=position)
    prev = sample["net_input"]["prev_output_tokens"]
    states = {}
    for name, (model, _) in models.items():
        model.eval()
        dec = model.decoder
        with autocast(device, dtype):
            enc = model.encoder(sample["net_input"]["src_tokens"], src_lengths=sample["net_input"]["src_lengths"])
            state = {}
            dec(prev[:, :1], encoder_out=enc, incremental_state=state)  # fills cross-attention caches
        for layer in dec.layers:
            attn = layer.self_attn
            buf = attn._get_input_buffer(state)
            shape = (bsz, attn.num_heads, position, attn.head_dim)
            kv_dtype = buf["prev_key"].dtype
            buf["prev_key"] = torch.randn(shape, device=device, dtype=kv_dtype)
            buf["prev_value"] = torch.randn(shape, device=device, dtype=kv_dtype)
            buf["prev_key_padding_mask"] = None
            attn._set_input_buffer(state, buf)
        states[name] = [enc, state, position + 1]

    def run_one(name):
        model = models[name][0]
        enc, state, length = states[name]
        states[name][2] += 1
        with autocast(device, dtype):
            return clock(lambda: model.decoder(prev[:, :length], encoder_out=enc, incremental_state=state))[0]

    return interleaved(list(models), repeats, warmup, run_one)


def cache_read_ms(model, bsz, position, device, clock, repeats=9):
    """Median time to read, once, as many float32 bytes as a decoder step at ``position`` must
    read from its self-attention keys and values (all layers): a memory-bound floor that no
    position encoding avoids."""
    dec = model.decoder
    attn = dec.layers[0].self_attn
    cache = torch.randn(len(dec.layers) * 2 * bsz * attn.num_heads * position * attn.head_dim, device=device)
    times = [clock(cache.sum)[0] for _ in range(repeats + 1)][1:]  # the first one warms up
    return statistics.median(times) * 1000


# --------------------------------------------------------------------------- report

def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cpu": cpu,
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def table(title, unit, values, names, fmt="{:.1f}", better="higher"):
    stock = values[STOCK]
    head = f"| {title} ({unit}) | " + " | ".join(names) + " | " + " | ".join(
        f"{n.replace('transformer_', '')}/stock" for n in names if n != STOCK) + " |"
    row = "| | " + " | ".join(fmt.format(values[n]) for n in names) + " | " + " | ".join(
        f"{values[n] / stock:.2f}" for n in names if n != STOCK) + " |"
    return head, row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small model, fewer repeats (~1-2 min)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtypes", default=None,
                   help="comma list of fp32,fp16,bf16 (default fp32 on CPU, fp32,fp16,bf16 on CUDA)")
    p.add_argument("--archs", default=",".join(PLUGIN_ARCHS), help="plugin archs compared with stock")
    p.add_argument("--only", default="train,generate,score,step", help="which measurements to run")
    p.add_argument("--score-lengths", default=None, help="comma list of document lengths")
    p.add_argument("--step-batches", default=None, help="comma list of decoder-step batch sizes (default 1,4)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default 1: on a shared machine, OpenMP barriers make "
                        "multi-threaded timings wait on descheduled threads)")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None,
                   help="on CPU, time by process CPU time (default; robust to other load) or wall time")
    p.add_argument("--documents", action="store_true",
                   help="long documents as fairseq-generate runs them by default: scoring 1500+1500 "
                        "tokens at batch 1 and the batch-4 decoder step at 16 and 2000, with 2 threads, "
                        "by wall time (options given explicitly still win)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    a = p.parse_args()
    if a.documents:
        a.threads = a.threads or 2
        a.clock = a.clock or "wall"
        a.only = "score,step" if a.only == p.get_default("only") else a.only
        a.score_lengths = a.score_lengths or "1500"
        a.step_batches = a.step_batches or "4"
    a.threads, a.clock = a.threads or 1, a.clock or "cpu"

    device = torch.device(a.device)
    torch.set_num_threads(a.threads)
    shape = SHAPES["quick" if a.quick else "full"]
    cfg = dict(vocab=8000, train_bsz=32, train_len=(16, 32), train_repeats=5, gen_bsz=32, gen_len=24,
               beam=4, gen_repeats=3, score_repeats=3, step_bszs=[1, 4], step_repeats=15,
               score_lengths=[256, 1024, 2048, 4096], positions=[16, 2000])
    if a.quick:
        cfg.update(vocab=4000, train_bsz=16, train_repeats=3, gen_bsz=16, gen_repeats=2, score_repeats=2,
                   step_repeats=7, score_lengths=[256, 1024, 4096])
    if a.documents:
        cfg.update(score_repeats=9, step_repeats=25)
    if a.score_lengths:
        cfg["score_lengths"] = [int(x) for x in a.score_lengths.split(",")]
    if a.step_batches:
        cfg["step_bszs"] = [int(x) for x in a.step_batches.split(",")]
    dtypes = a.dtypes or ("fp32,fp16,bf16" if device.type == "cuda" else "fp32")
    dtype_of = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    only = set(a.only.split(","))
    names = [STOCK] + [n for n in a.archs.split(",") if n]
    info = machine()
    info["torch_threads"] = torch.get_num_threads()
    print(f"# {info['date']}  {info['cpu']}  nproc={info['nproc']} torch threads={info['torch_threads']}  "
          f"torch {info['torch']}  device={device} clock={a.clock if device.type == 'cpu' else 'wall'}" + (f" ({info['cuda']})" if info["cuda"] else ""))
    print(f"# shape: {shape['layers']}+{shape['layers']} layers, d={shape['dim']}, ffn={shape['ffn']}, "
          f"heads={shape['heads']}, vocab={cfg['vocab']}; command: python benchmarks/speed.py "
          + " ".join(sys.argv[1:]))
    print(f"# load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    t0 = time.time()
    models, dictionary = {}, None
    for n in names:
        m, c, dictionary = build(n, shape, cfg["vocab"], device)
        models[n] = (m, c)
    clock = Clock(device, a.clock)
    results = {"machine": info, "shape": shape, "config": {k: v for k, v in cfg.items()}, "runs": {}}
    for dname in dtypes.split(","):
        dtype = dtype_of[dname]
        res = results["runs"][dname] = {}
        lines = [f"\n## {dname}"]
        if "train" in only:
            v = bench_train(models, dictionary, device, dtype, cfg, clock)
            res["train_tokens_per_s"] = v
            lines += table("training", "target tokens/s", v, names, "{:.0f}")
            print(*lines[-2:], sep="\n", flush=True)
        if "generate" in only:
            v = bench_generate(models, dictionary, device, dtype, cfg, clock)
            res["generate_sentences_per_s"] = v
            lines += table(f"beam {cfg['beam']} generation, batch {cfg['gen_bsz']}, {cfg['gen_len']} tokens",
                           "sentences/s", v, names, "{:.2f}")
            print(*lines[-2:], sep="\n", flush=True)
        if "score" in only:
            for length in cfg["score_lengths"]:
                t, mem, paired = bench_score(models, dictionary, device, dtype, cfg, clock, length)
                res[f"score_{length}_s"] = t
                res[f"score_{length}_paired_ratio"] = paired
                res[f"score_{length}_peak_mib"] = {k: b / 2 ** 20 for k, b in mem.items()}
                lines += table(f"scoring {length}+{length} tokens", "s", t, names, "{:.3f}")
                lines += table(f"scoring {length}+{length} tokens", "peak MiB", res[f"score_{length}_peak_mib"],
                               names, "{:.0f}")
                lines.append(f"| scoring {length}+{length}, median of per-repeat plugin/stock | | "
                             + " | ".join(f"{paired[n]:.2f}" for n in names if n != STOCK) + " |")
                print(*lines[-5:], sep="\n", flush=True)
        if "step" in only:
            for bsz in cfg["step_bszs"]:
                for pos in cfg["positions"]:
                    t = bench_step(models, dictionary, device, dtype, dict(cfg, step_bsz=bsz), clock, pos)
                    res[f"step_b{bsz}_{pos}_ms"] = {k: s * 1000 for k, s in t.items()}
                    lines += table(f"decoder step at position {pos}, batch {bsz}", "ms",
                                   res[f"step_b{bsz}_{pos}_ms"], names, "{:.2f}")
                    print(*lines[-2:], sep="\n", flush=True)
                lo, hi = cfg["positions"][0], cfg["positions"][-1]
                growth = {n: res[f"step_b{bsz}_{hi}_ms"][n] / res[f"step_b{bsz}_{lo}_ms"][n] for n in names}
                res[f"step_b{bsz}_growth"] = growth
                print(f"| step at {hi} / step at {lo}, batch {bsz} | " + " | ".join(f"{growth[n]:.2f}" for n in names)
                      + " |", flush=True)
                read = cache_read_ms(models[STOCK][0], bsz, hi, device, clock)
                floor = (res[f"step_b{bsz}_{lo}_ms"][STOCK] + read) / res[f"step_b{bsz}_{lo}_ms"][STOCK]
                res[f"step_b{bsz}_cache_read_ms"] = read
                print(f"| reading the {hi}-position self-attention cache once (all layers, batch {bsz}): "
                      f"{read:.2f} ms; floor of the ratio, (stock step at {lo} + that read) / stock step at {lo}: "
                      f"{floor:.2f} |", flush=True)
    print(f"\n# total {time.time() - t0:.0f} s; load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
