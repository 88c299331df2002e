"""Run the real fairseq command-line tools on tiny generated data, in a subprocess each."""
import os
import random
import re
import subprocess
import sys
from pathlib import Path

PLUGIN = str(Path(__file__).resolve().parents[1] / "fairseq_relpos")
TINY = ["--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "32",
        "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "4", "--decoder-attention-heads", "4"]
TRAIN = ["--optimizer", "adam", "--lr", "0.003", "--lr-scheduler", "inverse_sqrt",
         "--warmup-updates", "20", "--max-tokens", "2000", "--criterion", "label_smoothed_cross_entropy",
         "--no-epoch-checkpoints", "--no-progress-bar", "--seed", "1", "--num-workers", "0"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the machine's 2 cores are shared: less contention
QUIET = ["--validate-interval", "1000", "--save-interval", "1000", "--log-format", "simple",
         "--log-interval", "1000"]
BASE_UPDATES = 80  # the reversal base's training (make_reversal_base)


def run(tool, *args, check=True, env=None, stdin=None):
    """Run ``fairseq-<tool>`` (train, generate, interactive, preprocess) with this Python."""
    cmd = [sys.executable, "-m", f"fairseq_cli.{tool}", *map(str, args)]
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def write_reversal_corpus(raw, seed=0, sizes=(("train", 1500), ("valid", 60), ("test", 20)),
                          lengths=(3, 12), vocab=30):
    """A toy pair whose target is the source reversed and upper-cased: every output token
    depends on where its source token stands, so a model without positions cannot learn it."""
    raw = Path(raw)
    raw.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    for split, n in sizes:
        with open(raw / f"{split}.src", "w") as src, open(raw / f"{split}.tgt", "w") as tgt:
            for _ in range(n):
                sent = [rng.choice(words) for _ in range(rng.randint(*lengths))]
                src.write(" ".join(sent) + "\n")
                tgt.write(" ".join(w.upper() for w in reversed(sent)) + "\n")
    return raw


def preprocess(raw, dest, splits=("train", "valid", "test"), extra=()):
    raw = Path(raw)
    prefixes = {"train": "--trainpref", "valid": "--validpref"}
    args = ["--source-lang", "src", "--target-lang", "tgt", "--destdir", dest, "--workers", "1", *extra]
    tests = []
    for split in splits:
        if split in prefixes:
            args += [prefixes[split], raw / split]
        else:
            tests.append(str(raw / split))
    if tests:
        args += ["--testpref", ",".join(tests)]
    run("preprocess", *args)
    return Path(dest)


def train(data, save_dir, arch, *extra, updates=60, tiny=True, user_dir=True):
    args = [data, "--arch", arch, "--save-dir", save_dir, "--max-update", updates, *TRAIN]
    if tiny:
        args += TINY
    if user_dir:
        args += ["--user-dir", PLUGIN]
    return run("train", *args, *extra)


def hypotheses(output):
    """{sentence id: (score, text)} from fairseq-generate output."""
    hyps = {}
    for line in output.splitlines():
        if line.startswith("H-"):
            head, score, text = (line.split("\t") + [""])[:3]
            hyps[int(head[2:])] = (float(score), text)
    return hyps


def fairseq_train(data, save_dir, arch, *extra, updates, tiny=True, check=True):
    """``train`` quietly (validation and saving only at the end) on one thread."""
    args = [data, "--arch", arch, "--save-dir", save_dir, "--max-update", updates, *TRAIN, *QUIET,
            "--user-dir", PLUGIN, *(TINY if tiny else []), *extra]
    return run("train", *args, check=check, env=ONE_THREAD)


def valid_loss(proc):
    losses = re.findall(r"valid on 'valid' subset \| loss ([0-9.]+)", proc.stdout + proc.stderr)
    assert losses, proc.stdout[-2000:] + proc.stderr[-2000:]
    return float(losses[-1])


def make_reversal_base(root):
    """(data dir, sinusoidal base checkpoint, its valid loss) under ``root``: joined dictionary,
    shared embeddings."""
    raw = write_reversal_corpus(root / "raw", sizes=(("train", 600), ("valid", 40), ("test", 16)),
                                lengths=(3, 10), vocab=16)
    data = preprocess(raw, root / "bin", extra=["--joined-dictionary"])
    proc = fairseq_train(data, root / "base", "transformer", "--share-all-embeddings", updates=BASE_UPDATES)
    return data, root / "base" / "checkpoint_last.pt", valid_loss(proc)
