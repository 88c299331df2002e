#!/usr/bin/env bash
# Set up .venv with everything fairseq-relpos needs, from nothing. Safe to re-run.
# torch is installed first and pinned: fairseq's dependencies would otherwise pull the newest
# CUDA build (several GB). Override with TORCH_SPEC, e.g. TORCH_SPEC="torch==2.5.1".
# EXTRAS picks the optional dependencies: by default the tests' and CTranslate2 (for
# `fairseq-relpos export` and its tests) and safetensors (model.safetensors in import-hf/export-hf);
# EXTRAS=test leaves both out.
# FAIRSEQ_SPEC installs another fairseq instead of setup.py's choice (fairseq 0.12.2 before
# Python 3.11, ve-fairseq after), e.g. FAIRSEQ_SPEC=fairseq-fixed==0.12.3.1 (fairseq main from
# source, built against the installed torch) or FAIRSEQ_SPEC=/path/to/a/fairseq/checkout.
# VENV names the environment's folder (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-test,ct2,hf}
FAIRSEQ_SPEC=${FAIRSEQ_SPEC:-}
"$PYTHON" - <<'PY'
import sys
if not (3, 9) <= sys.version_info[:2] <= (3, 12):
    sys.exit(f"fairseq-relpos needs Python 3.9 to 3.12 (fairseq has no build for {sys.version.split()[0]})")
PY
# torch 2.8 is the last release for Python 3.9; 2.5.1 is the one IndicTrans2's install.sh takes
DEFAULT_TORCH=$("$PYTHON" -c 'import sys; print("torch==2.5.1" if sys.version_info < (3, 10) else "torch==2.13.0")')
TORCH_SPEC=${TORCH_SPEC:-$DEFAULT_TORCH}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
# fairseq 0.12.2 needs omegaconf 2.0.6, whose metadata (`PyYAML (>=5.1.*)`) pip >= 24.1 refuses,
# both to install it and, once installed, to install anything beside it: keep pip below 24.1
# there, on every run (upgrading and downgrading again would break a re-run).
if [ -z "$FAIRSEQ_SPEC" ] && "$PY" -c 'import sys; sys.exit(sys.version_info >= (3, 11))'; then
    PIP_SPEC="pip<24.1"
else
    PIP_SPEC="pip"
fi
"$PY" -m pip install -q --upgrade "$PIP_SPEC"
# torchaudio of the same release with it (there is one up to 2.11): fairseq requires torchaudio,
# whose newest release would otherwise replace an older torch
TORCHAUDIO=$("$PY" -c 'import re, sys
m = re.fullmatch(r"torch==2\.(\d+)\.(\d+)", sys.argv[1])
print(f"torchaudio==2.{m[1]}.{m[2]}" if m and int(m[1]) <= 11 else "")' "$TORCH_SPEC")
"$PY" -m pip install -q "$TORCH_SPEC" $TORCHAUDIO
if [ -z "$FAIRSEQ_SPEC" ]; then
    "$PY" -m pip install -q -e ".[$EXTRAS]"
else
    # fairseq main from source builds its C extensions against this torch (hence no isolation)
    "$PY" -m pip install -q setuptools wheel cython numpy
    "$PY" -m pip install -q --no-build-isolation "$FAIRSEQ_SPEC"
    "$PY" -m pip install -q --no-deps -e .
    # the plugin's other requirements and extras, as its metadata states them, without fairseq
    # (pip then notes that setup.py's fairseq is not installed: FAIRSEQ_SPEC's stands in for it)
    "$PY" - "$EXTRAS" <<'PY' | xargs -r "$PY" -m pip install -q
import sys
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
extras = [e for e in sys.argv[1].split(",") if e]
for line in requires("fairseq-relpos"):
    req = Requirement(line)
    if req.name in ("fairseq", "ve-fairseq"):
        continue
    if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or [""]):
        print(str(req.specifier and req.name + str(req.specifier) or req.name))
PY
fi
# fairseq resolves a relative --user-dir against the working directory, then beside its own
# package (site-packages, where a regular install puts the plugin and an editable one puts
# nothing): a link there makes `--user-dir fairseq_relpos` work from any folder. Only a link
# of ours is ever replaced, never a folder.
SITE=$("$PY" -c "import fairseq, os; print(os.path.dirname(os.path.dirname(os.path.abspath(fairseq.__file__))))" 2>/dev/null)
if [ -L "$SITE/fairseq_relpos" ] || [ ! -e "$SITE/fairseq_relpos" ]; then
    ln -sfn "$PWD/fairseq_relpos" "$SITE/fairseq_relpos"
else
    echo "note: $SITE/fairseq_relpos exists and is not a link; --user-dir fairseq_relpos will load it" >&2
fi
"$PY" -c "import fairseq, torch, numpy, fairseq_relpos; print('fairseq', fairseq.__version__, '| torch', torch.__version__, '| numpy', numpy.__version__, '| fairseq_relpos', fairseq_relpos.__version__)"
