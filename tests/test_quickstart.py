"""The README's first command: examples/quickstart.sh runs end to end (a short version)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # every test here trains or decodes through fairseq's CLIs


def test_quickstart_runs_and_reports_chrf_by_length(tmp_path):
    env = dict(os.environ, BASE_UPDATES="30", SWITCH_UPDATES="10", DOCS="test-doc4",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(ROOT / "examples" / "quickstart.sh"), str(tmp_path / "w")],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {m.group(1): (float(m.group(2)), float(m.group(3)))
            for m in re.finditer(r"^(test\S*)\s+([\d.]+)\s+([\d.]+)$", proc.stdout, re.M)}
    assert set(rows) == {"test", "test-doc4"}
    assert "trainable parameters" in proc.stdout
    for subset in rows:  # every document came back: one hypothesis per input line
        out = (tmp_path / "w" / f"rope.{subset}.out").read_text()
        lines = (tmp_path / "w" / "corpus" / f"{subset}.src").read_text().count("\n")
        assert len(re.findall(r"^H-\d+", out, re.M)) == lines
