"""``--user-dir fairseq_relpos`` and ``--user-dir "$(fairseq-relpos user-dir)"`` work from any folder.

fairseq resolves a relative --user-dir against the working directory, then beside its own
package, where set-up links the plugin (scripts/bootstrap.sh). Run as the README writes it
(bash, installed console scripts), from a temporary folder that has no ``fairseq_relpos`` of
its own.
"""
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


def test_printed_folder_is_accepted_after_the_plugin_was_imported(tmp_path):
    """fairseq refuses a --user-dir that is not the imported package's own folder."""
    code = ("import argparse, fairseq_relpos; from fairseq import utils; from fairseq_relpos.cli import main as cli; "
            "import contextlib, io; out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): cli.main(['user-dir'])\n"
            "utils.import_user_module(argparse.Namespace(user_dir=out.getvalue().strip())); print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0 and proc.stdout.split()[-1] == "ok", proc.stderr[-2000:]


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
