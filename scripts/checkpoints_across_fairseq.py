"""Checkpoints move both ways between two fairseq installs (e.g. 0.12.2 and main).

    python scripts/checkpoints_across_fairseq.py PYTHON_A PYTHON_B [--work DIR]

PYTHON_A and PYTHON_B are the interpreters of two venvs with the plugin installed (e.g. two
cells of scripts/matrix.sh). Under each, fairseq-train makes RoPE, ALiBi and RoPE + minLoRA
checkpoints of a tiny model on a generated corpus; every checkpoint is then loaded strictly,
as fairseq-generate loads it, under both, and its teacher-forced log-probabilities on the test
split must agree (1e-4). Prints one line per checkpoint and load, exits 1 on any difference.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # name: (arch, extra fairseq-train options); "{base}" is the rope checkpoint
    "rope": ("transformer_rope", []),
    "alibi": ("transformer_alibi", []),
    "rope-minlora": ("transformer_rope", ["--task", "translation_lora", "--lora-style", "minlora",
                                          "--finetune-from-model", "{base}"]),
}


def make(work, maker):
    """Under this interpreter: the corpus (once) and this install's checkpoints."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fairseq_helpers import preprocess, train, write_reversal_corpus
    data = work / "bin"
    if not data.exists():
        preprocess(write_reversal_corpus(work / "raw", sizes=(("train", 200), ("valid", 16), ("test", 8))), data)
    for name, (arch, extra) in RUNS.items():
        save = work / maker / name
        extra = [e.format(base=work / maker / "rope" / "checkpoint_last.pt") for e in extra]
        train(data, save, arch, *extra, "--max-epoch", "2", updates=6)


def score(checkpoint, out):
    """Under this interpreter: teacher-forced log-probabilities of the test split."""
    import argparse as ap

    import torch
    from fairseq import checkpoint_utils, utils
    utils.import_user_module(ap.Namespace(user_dir=str(ROOT / "fairseq_relpos")))
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    task.load_dataset("test")
    data = task.dataset("test")
    sample = data.collater([data[i] for i in range(len(data))])
    with torch.no_grad():
        logits = models[0].eval()(**sample["net_input"])[0]
    torch.save(logits.float().log_softmax(-1), out)


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("_make", "_score"):
        return make(Path(sys.argv[2]), sys.argv[3]) if sys.argv[1] == "_make" else score(*sys.argv[2:4])
    parser = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1].strip())
    parser.add_argument("pythons", nargs=2, metavar="PYTHON")
    parser.add_argument("--work", type=Path, help="folder for the corpus and checkpoints (default: a temporary one)")
    args = parser.parse_args()
    import torch
    work = args.work or Path(tempfile.mkdtemp(prefix="ckpt-across-"))
    work.mkdir(parents=True, exist_ok=True)
    pythons = dict(zip("AB", args.pythons))
    versions = {}
    for tag, python in pythons.items():
        versions[tag] = subprocess.run([python, "-c", "import fairseq, torch; print(f'fairseq {fairseq.__version__} torch {torch.__version__}')"],
                                       capture_output=True, text=True, check=True).stdout.strip()
        print(f"{tag}: {python} ({versions[tag]})", flush=True)
        subprocess.run([python, __file__, "_make", str(work), tag], check=True)
    failures = 0
    for maker in pythons:
        for name in RUNS:
            checkpoint = work / maker / name / "checkpoint_last.pt"
            outs = {}
            for loader, python in pythons.items():
                outs[loader] = work / f"{maker}-{name}-loaded-by-{loader}.pt"
                proc = subprocess.run([python, __file__, "_score", str(checkpoint), str(outs[loader])],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    failures += 1
                    print(f"FAIL {name} made by {maker}, loaded by {loader}: {proc.stderr.strip().splitlines()[-1]}")
                    outs.pop(loader)
            if len(outs) == 2:
                gap = (torch.load(outs["A"]) - torch.load(outs["B"])).abs().max().item()
                ok = gap <= 1e-4
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} made by {maker} ({versions[maker]}): loads under both, "
                      f"log-probabilities differ by at most {gap:.1e}")
    print(f"{failures} failures; work folder {work}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
