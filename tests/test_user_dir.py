"""``--user-dir fairseq_relpos`` and ``--user-dir "$(fairseq-relpos user-dir)"`` work from any folder.

fairseq resolves a relative --user-dir against the working directory, then beside its own
package, where set-up links the plugin (scripts/bootstrap.sh). Run as the README writes it
(bash, installed console scripts), from a temporary folder that has no ``fairseq_relpos`` of
its own.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairseq_helpers import TINY, TRAIN, hypotheses, preprocess, write_reversal_corpus

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def shell(command, cwd):
    proc = subprocess.run(["bash", "-c", f"set -euo pipefail; {command}"], cwd=cwd, capture_output=True,
                          text=True, env=ENV)
    assert proc.returncode == 0, f"{command} failed in {cwd}:\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_user_dir_command_works_from_another_folder(tmp_path):
    raw = write_reversal_corpus(tmp_path / "raw", sizes=(("train", 40), ("valid", 8), ("test", 5)))
    data = preprocess(raw, tmp_path / "bin")
    work = tmp_path / "elsewhere"
    work.mkdir()
    # the editable install's code, i.e. this checkout (through set-up's link in site-packages)
    assert os.path.realpath(shell("fairseq-relpos user-dir", work).strip()) == str(REPO / "fairseq_relpos")
    options = " ".join(map(str, TINY + TRAIN))
    shell(f'fairseq-train {data} --user-dir "$(fairseq-relpos user-dir)" --arch transformer_rope '
          f'{options} --max-update 2 --save-dir ckpt', work)
    out = shell(f'fairseq-generate {data} --user-dir "$(fairseq-relpos user-dir)" --task translation_doc '
                f'--path ckpt/checkpoint_last.pt --gen-subset test --beam 1 --max-len-b 5', work)
    assert len(hypotheses(out)) == 5


AFTER_A_LIGHT_IMPORT = """
import argparse, importlib, json, os, sys
importlib.import_module(sys.argv[1])
loaded_before = sorted(m for m in ("torch", "fairseq", "fairseq_relpos.plugin") if m in sys.modules)
import numpy as np
import torch
from fairseq import checkpoint_utils, utils
from fairseq.data import data_utils
from fairseq.file_io import PathManager
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.tasks import TASK_REGISTRY, FairseqTask
utils.import_user_module(argparse.Namespace(user_dir=sys.argv[2]))

class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[3] + ".ran",))

torch.save({"model": {}, "cfg": RunsCode()}, sys.argv[3])
# torch < 2.6 as IndicTrans2 pins it: torch.load unpickles anything, and the plugin reads the file
# weights-only first (the flag is read when a checkpoint is loaded)
os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
from fairseq_relpos import checkpoints
checkpoints.TORCH_LOADS_WEIGHTS_ONLY = False
try:
    checkpoint_utils.load_checkpoint_to_cpu(sys.argv[3])
    refused = ""
except Exception as err:
    refused = str(err)
batches = data_utils.batch_by_size(np.arange(10, dtype=np.int64), lambda i: 1, max_sentences=4,
                                   required_batch_size_multiple=4)
print(json.dumps({
    "loaded_before": loaded_before,
    "archs": sorted(a for a in ARCH_MODEL_REGISTRY if a.startswith(("transformer_rope", "transformer_alibi",
                                                                    "transformer_nope", "transformer_18_18"))),
    "tasks": sorted(t for t in TASK_REGISTRY if t in ("translation_doc", "translation_lora")),
    "refused": refused,
    "ran": os.path.exists(sys.argv[3] + ".ran"),
    "batched": int(sum(len(b) for b in batches)),
    "patched": [bool(getattr(f, flag, False)) for f, flag in (
        (data_utils.load_indexed_dataset, "_refuses_empty_split"),
        (FairseqTask.get_batch_iterator, "_refuses_nothing_to_batch"),
        (PathManager.copy, "_copies_atomically"))],
}))
"""


@pytest.mark.parametrize("spelling", ["printed", "link"])
@pytest.mark.parametrize("light", ["fairseq_relpos", "fairseq_relpos.scoring", "fairseq_relpos.ct2.translate"])
def test_user_dir_after_a_light_import_installs_the_plugin(light, spelling, tmp_path):
    """A light import before fairseq puts ``fairseq_relpos`` in sys.modules, which fairseq's
    import_user_module takes as "already imported": the plugin must be installed all the same
    (architectures, tasks, the checkpoint pre-read that refuses a pickle running code under
    torch < 2.6, the adaptations of fairseq_patches), whichever spelling of the folder is given."""
    folder = shell("fairseq-relpos user-dir", tmp_path).strip()
    if spelling == "link":  # as set-up links the package beside fairseq's own
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "fairseq_relpos").symlink_to(folder)
        folder = str(tmp_path / "site" / "fairseq_relpos")
    evil = tmp_path / "evil.pt"
    proc = subprocess.run([sys.executable, "-c", AFTER_A_LIGHT_IMPORT, light, folder, str(evil)], cwd=tmp_path,
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["loaded_before"] == []
    assert seen["archs"] == ["transformer_18_18", "transformer_alibi", "transformer_nope", "transformer_rope"]
    assert seen["tasks"] == ["translation_doc", "translation_lora"]
    assert not seen["ran"]
    assert seen["refused"].startswith(f"refused to load {evil}: its pickle references the global posix.system")
    assert seen["batched"] == 10  # fairseq main drops the last 2 (not a multiple of 4)
    assert seen["patched"] == [True, True, True]


def test_short_user_dir_works_from_another_folder(tmp_path):
    """The mission's own command line, from a folder that is not the repository root."""
    raw = write_reversal_corpus(tmp_path / "raw", sizes=(("train", 40), ("valid", 8), ("test", 5)))
    data = preprocess(raw, tmp_path / "bin")
    work = tmp_path / "elsewhere"
    work.mkdir()
    options = " ".join(map(str, TINY + TRAIN))
    shell(f"fairseq-train {data} --user-dir fairseq_relpos --arch transformer_rope {options} --max-update 2 "
          f"--save-dir ckpt", work)
    out = shell(f"fairseq-generate {data} --user-dir fairseq_relpos --task translation_doc "
                f"--path ckpt/checkpoint_last.pt --gen-subset test --beam 1 --max-len-b 5", work)
    assert len(hypotheses(out)) == 5
    src = (raw / "test.src").read_text().splitlines()[:2]
    out = subprocess.run(["bash", "-c", f"fairseq-interactive {data} --user-dir fairseq_relpos --task translation_doc "
                          f"--path ckpt/checkpoint_last.pt --beam 1 --max-len-b 5 --source-lang src --target-lang tgt"],
                         cwd=work, input="\n".join(src) + "\n", capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len([line for line in out.stdout.splitlines() if line.startswith("H-")]) == 2
