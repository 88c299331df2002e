"""The README's first command: examples/quickstart.sh runs end to end (a short version)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # every test here trains or decodes through fairseq's CLIs


def test_quickstart_runs_and_reports_every_mode_by_length(tmp_path):
    env = dict(os.environ, BASE_UPDATES="30", SWITCH_UPDATES="10", DOCS="test-doc4",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(ROOT / "examples" / "quickstart.sh"), str(tmp_path / "w")],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "trainable parameters" in proc.stdout
    assert re.search(r"^sentence test set, ChrF\+\+: sinusoidal base [\d.]+, RoPE \+ minLoRA [\d.]+$",
                     proc.stdout, re.M)
    cell = r"\s+([\d.]+) +(\d+%|-)"
    rows = re.findall(rf"^test-doc4{cell * 4}$", proc.stdout, re.M)
    assert len(rows) == 2, proc.stdout  # the base's and the switched model's
    sources = (tmp_path / "w" / "corpus" / "test-doc4.src").read_text().splitlines()
    for model in ("base", "rope"):
        for mode in ("split", "whole", "aligned", "window"):
            out = (tmp_path / "w" / f"{model}.test-doc4.{mode}.out").read_text()
            hyps = dict(re.findall(r"^H-(\d+)\t[^\t]*\t(.*)$", out, re.M))
            assert len(hyps) == len(sources)  # every document came back
            if mode != "whole":  # the sentence-aware modes keep every document's sentence count
                assert all(hyps[str(i)].count("<s>") == src.count("<s>") for i, src in enumerate(sources))
