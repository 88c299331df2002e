"""The command line and the light modules load neither torch nor fairseq (issue 15).

``fairseq-relpos user-dir`` sits inside every recipe's command line, and make-docs, evaluate and
the CTranslate2 serving helper have no use for torch: importing it costs seconds and prints
warnings that are not about the user's input. Checked in a fresh interpreter in which importing
torch or fairseq raises.
"""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "fairseq"):
            raise ImportError(f"{name} imported")
sys.meta_path.insert(0, Refuse())
"""
LIGHT = ["fairseq_relpos", "fairseq_relpos.cli.main", "fairseq_relpos.ct2.translate", "fairseq_relpos.scoring",
         "fairseq_relpos.documents.make_docs", "fairseq_relpos.positions", "fairseq_relpos.repetition_options", "fairseq_relpos.corpora.bible",
         "fairseq_relpos.corpora.toy"]


def run_blocked(code, cwd=REPO):
    return subprocess.run([sys.executable, "-c", BLOCK + code], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("module", LIGHT)
def test_module_imports_without_torch_or_fairseq(module):
    proc = run_blocked(f"import {module}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""


def test_the_blocker_blocks():
    """The check itself: a module that needs torch fails under it."""
    assert run_blocked("import fairseq_relpos.checkpoints").returncode != 0


@pytest.mark.parametrize("argv", [["user-dir"], ["make-docs", "--help"], ["evaluate", "--help"], ["convert", "--help"],
                                  ["export", "--help"], ["--help"]])
def test_light_commands_run_silently_without_torch(argv):
    proc = run_blocked(f"from fairseq_relpos.cli.main import main; sys.exit(main({argv!r}))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""
    assert proc.stdout.strip()


def test_make_docs_and_evaluate_run_without_torch(tmp_path):
    (tmp_path / "a.src").write_text("eng_Latn hin_Deva one .\neng_Latn hin_Deva two .\n")
    (tmp_path / "a.tgt").write_text("ONE .\nTWO .\n")
    proc = run_blocked("from fairseq_relpos.cli.main import main; sys.exit(main(['make-docs', 'a', 'd', '--budget', "
                       "'64']))", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "d.src").read_text().count("\n") == 1
    (tmp_path / "hyp").write_text("ONE .\nTWO .\n")
    proc = run_blocked("from fairseq_relpos.cli.main import main; sys.exit(main(['evaluate', '--hyp', 'hyp', "
                       "'--ref', 'a.tgt', '--src', 'a.src']))", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "100.0" in proc.stdout
