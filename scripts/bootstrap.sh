#!/usr/bin/env bash
# Set up .venv with everything fairseq-relpos needs, from nothing. Safe to re-run.
# torch is installed first and pinned: fairseq's dependencies would otherwise pull the newest
# CUDA build (several GB). Override with TORCH_SPEC, e.g. TORCH_SPEC="torch==2.5.1".
# EXTRAS picks the optional dependencies: by default the tests' and CTranslate2 (for
# `fairseq-relpos export` and its tests) and safetensors (model.safetensors in import-hf/export-hf);
# EXTRAS=test leaves both out.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-test,ct2,hf}
"$PYTHON" - <<'PY'
import sys
if not (3, 10) <= sys.version_info[:2] <= (3, 12):
    sys.exit(f"fairseq-relpos needs Python 3.10 to 3.12 (fairseq has no build for {sys.version.split()[0]})")
PY
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
# fairseq resolves a relative --user-dir against the working directory, then beside its own
# package (site-packages, where a regular install puts the plugin and an editable one puts
# nothing): a link there makes `--user-dir fairseq_relpos` work from any folder. Only a link
# of ours is ever replaced, never a folder.
SITE=$(.venv/bin/python -c "import fairseq, os; print(os.path.dirname(os.path.dirname(os.path.abspath(fairseq.__file__))))" 2>/dev/null)
if [ -L "$SITE/fairseq_relpos" ] || [ ! -e "$SITE/fairseq_relpos" ]; then
    ln -sfn "$PWD/fairseq_relpos" "$SITE/fairseq_relpos"
else
    echo "note: $SITE/fairseq_relpos exists and is not a link; --user-dir fairseq_relpos will load it" >&2
fi
.venv/bin/python -c "import fairseq, torch, fairseq_relpos; print('fairseq', fairseq.__version__, '| torch', torch.__version__, '| fairseq_relpos', fairseq_relpos.__version__)"
