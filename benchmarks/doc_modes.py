#!/usr/bin/env python
"""The document modes' cost against fairseq's own search, from one run.

    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/doc_modes.py          # docs/speed.md
    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/doc_modes.py --quick  # about a minute

A random-weight RoPE model of the real-language study's base shape (2+2 layers, d 128, FFN 512,
4 heads), beam 4, on documents of random words with a separator every 6 tokens. Each
measurement is a fresh process (``os.wait4``: wall time, peak RSS), repeats interleaved so that
load on a shared machine falls on all alike; the table gives medians and ratios, and checks:

* aligned against whole and against stock ``SequenceGenerator`` on the same documents, every
  search forced to the same length (``min_len = max_len = L``): the sentence-count rule's cost,
  target at most 1.1x;
* window on documents of N and 10N sentences: time linear in length (target at most 11x) and
  peak memory flat (whole's, for contrast, grows with the document).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SENTENCE = 6  # tokens a sentence (5 words and the separator)


def child(kind, sentences, docs, length):
    sys.path[:0] = [str(REPO / "tests"), str(REPO)]
    import torch
    from fairseq.dataclass.configs import GenerationConfig
    from fairseq.sequence_generator import SequenceGenerator

    import fairseq_relpos.plugin  # noqa: F401
    from model_builders import build, write_dicts

    torch.manual_seed(1)
    data = write_dicts(Path(os.environ["BENCH_DIR"]) / "dicts", size=200)
    mode = "whole" if kind == "stock" else kind
    shape = dict(encoder_layers=2, decoder_layers=2, encoder_embed_dim=128, decoder_embed_dim=128,
                 encoder_ffn_embed_dim=512, decoder_ffn_embed_dim=512)
    task, model, _ = build(data, "transformer_rope", extra=[
        "--task", "translation_doc", "--doc-separator", "<s>", "--doc-decoding", mode, "--doc-window", "4",
        "--max-source-positions", "100000", "--max-target-positions", "100000"], **shape)
    d = task.source_dictionary
    g = torch.Generator().manual_seed(2)
    src = torch.randint(d.nspecial + 1, len(d), (docs, sentences * SENTENCE))
    src[:, SENTENCE - 1::SENTENCE] = d.index("<s>")
    src[:, -1] = d.eos()
    sample = {"id": torch.arange(docs), "net_input": {"src_tokens": src,
                                                      "src_lengths": torch.full((docs,), src.size(1))}}
    if kind == "window":
        config = GenerationConfig(beam=4, max_len_a=1.0, max_len_b=2)
    else:  # every search decodes exactly `length` tokens
        config = GenerationConfig(beam=4, min_len=length, max_len_a=0, max_len_b=length)
    if kind == "stock":
        gen = SequenceGenerator([model], task.target_dictionary, beam_size=4, min_len=length,
                                max_len_a=0, max_len_b=length)
    else:
        gen = task.build_generator([model], config)
    start = time.perf_counter()
    with torch.no_grad():
        out = gen.generate([model], sample)
    seconds = time.perf_counter() - start
    tokens = sum(int(h[0]["tokens"].numel()) for h in out)
    import resource
    print(json.dumps({"seconds": seconds, "tokens": tokens,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(kind, sentences, docs, length):
    cmd = [sys.executable, __file__, "--child", kind, str(sentences), str(docs), str(length)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true", help="shorter documents, fewer repeats")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *numbers = args.child
        return child(kind, *map(int, numbers))
    import tempfile

    os.environ.setdefault("BENCH_DIR", tempfile.mkdtemp(prefix="doc_modes_"))
    repeats = 1 if args.quick else 3
    length, docs = (200, 2) if args.quick else (600, 2)
    # window's first K-1 rounds have less context, so cost per sentence settles after K
    # sentences: N = 8 K sentences keep that ramp under 10% of the ratio
    short = 16 if args.quick else 32
    runs = {key: [] for key in ("stock", "whole", "aligned", "window-N", "window-10N", "whole-10N")}
    for r in range(repeats):
        for kind in ("stock", "whole", "aligned"):
            runs[kind].append(measure(kind, length // SENTENCE, docs, length))
        runs["window-N"].append(measure("window", short, 1, 0))
        runs["window-10N"].append(measure("window", 10 * short, 1, 0))
        runs["whole-10N"].append(measure("whole", 10 * short, 1, 10 * short * SENTENCE))
        print(f"repeat {r + 1}/{repeats} done", file=sys.stderr, flush=True)

    def med(key, field="seconds"):
        return statistics.median(run[field] for run in runs[key])

    print(f"torch threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; beam 4; "
          f"{docs} documents (window: 1, --doc-window 4); medians of {repeats}")
    print(f"{'run':<34}{'seconds':>9}{'peak RSS MiB':>14}")
    labels = {"stock": f"stock SequenceGenerator, {length} tokens", "whole": f"whole, {length} tokens",
              "aligned": f"aligned, {length} tokens", "window-N": f"window, {short} sentences",
              "window-10N": f"window, {10 * short} sentences", "whole-10N": f"whole, {10 * short} sentences"}
    for key, label in labels.items():
        print(f"{label:<34}{med(key):>9.2f}{med(key, 'rss_mib'):>14.0f}")
    checks = [
        ("aligned / whole", med("aligned") / med("whole"), 1.1),
        ("aligned / stock", med("aligned") / med("stock"), 1.1),
        ("window 10N / N time", med("window-10N") / med("window-N"), 11.0),
        ("window 10N / N peak RSS", med("window-10N", "rss_mib") / med("window-N", "rss_mib"), 1.1),
    ]
    for name, ratio, target in checks:
        print(f"{name:<34}{ratio:>9.2f}   target <= {target}  {'ok' if ratio <= target else 'MISSED'}")
    print(f"{'whole 10N / window 10N peak RSS':<34}{med('whole-10N', 'rss_mib') / med('window-10N', 'rss_mib'):>9.2f}")


if __name__ == "__main__":
    main()
