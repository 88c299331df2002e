#!/usr/bin/env python
"""What the repetition controls cost a long decode: fairseq's search (the plugin's generator, beam
4) forced to emit L tokens, without controls and with ``RepetitionControls`` installed as its
``repeat_ngram_blocker``, in one process.

    OMP_NUM_THREADS=1 python benchmarks/repetition_speed.py           # 1,500 tokens, ~3 CPU minutes
    OMP_NUM_THREADS=1 python benchmarks/repetition_speed.py --quick   # 500 tokens, one repeat
    ... --penalty 1.2 --stock                                         # two more settings

Model: ``transformer_rope`` with random weights (seed 1), by default the real-language study's
base shape (2+2 layers, d 128, FFN 512, 4 heads; ``--shape full``: ``speed.py``'s 6+6 layers,
d 256), vocabulary 8,000, built by ``speed.py``'s ``build``; one source of L random tokens.
A small model is the hard case: the controls' cost is the same whatever the model, so their
share of the time is largest where the decoder step is cheapest. Every decode emits exactly
L tokens (``min_len = max_len = L``), so every setting runs the same number of decoder steps
whatever it bans. Settings, run in turn within every repeat (load on a shared machine falls
on all alike), timed by process CPU time as ``speed.py`` does, after a short warm-up decode:

* ``none``: no controls;
* ``ngram N``: ``--no-repeat-ngram-size N`` (these controls), over the whole output;
* ``ngram N, window W``: the same, counting only n-grams that start in the last W tokens;
* ``penalty F`` (``--penalty F``): the CTRL repetition penalty alone;
* ``stock ngram N`` (``--stock``): fairseq's own ``NGramRepeatBlock`` on the CPU, for reference:
  a Python loop over every earlier position at every step, which bans nothing (its CPU path
  is wrong).

The table gives medians, each setting's ratio to ``none`` (median over repeats of the ratio
within a repeat), the CPU time spent inside the hook per step (the controls' own cost; the
rest of a difference is the search itself, which reorders its beams' caches more often once
the output stops looping), and the number of the output's repeated N-grams (occurrences of an
N-gram beyond its first), which must be 0 where these controls block the whole output.
"""
import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from speed import SHAPES, Clock, build, machine  # noqa: E402  (also silences fairseq's logging)

from fairseq.ngram_repeat_block import NGramRepeatBlock  # noqa: E402

import fairseq_relpos.plugin  # noqa: E402,F401  (registers transformer_rope)
from fairseq_relpos.generation import DocumentSequenceGenerator  # noqa: E402
from fairseq_relpos.generation.repetition import RepetitionControls  # noqa: E402


def repeated_ngrams(tokens, n):
    counts = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return sum(c - 1 for c in counts.values())


class Timed(torch.nn.Module):
    """The hook with the process CPU time spent inside it summed up."""

    def __init__(self, hook):
        super().__init__()
        self.hook, self.seconds, self.calls = hook, 0.0, 0

    def forward(self, tokens, lprobs, bsz: int, beam_size: int, step: int):
        start = time.process_time()
        out = self.hook(tokens, lprobs, bsz, beam_size, step)
        self.seconds += time.process_time() - start
        self.calls += 1
        return out


BASE = dict(layers=2, dim=128, ffn=512, heads=4)  # the real-language study's base (benchmarks/real_languages)


def settings(n, window, penalty, stock):
    chosen = {"none": None, f"ngram {n}": RepetitionControls(ngram_size=n),
              f"ngram {n}, window {window}": RepetitionControls(ngram_size=n, ngram_window=window)}
    if penalty is not None:
        chosen[f"penalty {penalty}"] = RepetitionControls(penalty=penalty)
    if stock:
        chosen[f"stock ngram {n}"] = NGramRepeatBlock(n, use_extension=False)
    return chosen


def decoder_sample(d, length, seed=7):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(d.nspecial, len(d), (1, length), generator=g)
    src[0, -1] = d.eos()
    return {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([length])}}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="500 tokens, one repeat")
    p.add_argument("--length", type=int, help="tokens every decode emits (default 1500, --quick 500)")
    p.add_argument("--repeats", type=int, help="timed repeats (default 3, --quick 1)")
    p.add_argument("--shape", choices=("base", "full"), default="base",
                   help="base: 2+2 layers, d 128 (default); full: speed.py's 6+6 layers, d 256")
    p.add_argument("--ngram", type=int, default=4, help="n-gram size (default 4)")
    p.add_argument("--window", type=int, default=100, help="n-gram window (default 100)")
    p.add_argument("--penalty", type=float, help="also time this repetition penalty alone")
    p.add_argument("--stock", action="store_true", help="also time stock's NGramRepeatBlock on the CPU")
    p.add_argument("--beam", type=int, default=4, help="beam size (default 4)")
    a = p.parse_args()
    length = a.length or (500 if a.quick else 1500)
    repeats = a.repeats or (1 if a.quick else 3)
    shape = BASE if a.shape == "base" else SHAPES["full"]
    torch.set_num_threads(1)
    device = torch.device("cpu")
    info = machine()
    print(f"# {info['date']}  {info['cpu']}  nproc={info['nproc']} torch threads=1  torch {info['torch']}  "
          f"Python {info['python']}; clock: process CPU time")
    print(f"# transformer_rope {shape['layers']}+{shape['layers']} layers, d={shape['dim']}, ffn={shape['ffn']}, "
          f"vocab 8000, random weights; beam {a.beam}, 1 source of {length} tokens, {length} tokens emitted; "
          f"{repeats} repeats; command: python benchmarks/repetition_speed.py {' '.join(sys.argv[1:])}")
    model, _, d = build("transformer_rope", shape, 8000, device)
    model.eval()
    chosen = settings(a.ngram, a.window, a.penalty, a.stock)
    clock = Clock(device, "cpu")

    def decode(controls, n_tokens):
        gen = DocumentSequenceGenerator([model], d, beam_size=a.beam, max_len_a=0, max_len_b=n_tokens,
                                        min_len=n_tokens)
        gen.repeat_ngram_blocker = None if controls is None else Timed(controls)
        with torch.no_grad():
            seconds, hypos = clock(lambda: gen.generate([model], decoder_sample(d, n_tokens)))
        hook = gen.repeat_ngram_blocker
        return seconds, hypos[0][0]["tokens"][:-1].tolist(), 1e3 * hook.seconds / hook.calls if hook else 0.0

    decode(None, 100)  # warm-up
    times = {name: [] for name in chosen}
    inside = {name: [] for name in chosen}  # ms per step spent in the hook
    outputs = {}
    for r in range(repeats):
        for name, controls in chosen.items():
            seconds, outputs[name], ms = decode(controls, length)
            times[name].append(seconds)
            inside[name].append(ms)
            print(f"[{time.strftime('%H:%M:%S')}] repeat {r + 1} {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
    base = times["none"]
    print(f"\n| setting | median s | ratio to none | in the hook, ms/step | repeated {a.ngram}-grams in the output |")
    print("|---|---|---|---|---|")
    for name, t in times.items():
        ratio = statistics.median(x / y for x, y in zip(t, base))
        assert len(outputs[name]) == length
        print(f"| {name} | {statistics.median(t):.2f} | {ratio:.2f} | {statistics.median(inside[name]):.3f} | "
              f"{repeated_ngrams(outputs[name], a.ngram)} |")
    print(f"\nnone: {1e3 * statistics.median(base) / (length + 1):.2f} ms per search step on average")
    for name, controls in chosen.items():
        if isinstance(controls, RepetitionControls) and controls.ngram_size and not controls.ngram_window:
            assert repeated_ngrams(outputs[name], a.ngram) == 0, name


if __name__ == "__main__":
    main()
