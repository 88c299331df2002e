#!/usr/bin/env bash
# One cell of the compatibility matrix: make a venv for a given Python, fairseq and torch with
# scripts/bootstrap.sh, run the test suite in it, and append the counts to MATRIX_DIR/results.tsv.
#
#   bash scripts/matrix.sh PYTHON FAIRSEQ TORCH [pytest arguments, default: tests]
#
# PYTHON   an interpreter, e.g. /root/.pyenv/versions/3.9.18/bin/python
# FAIRSEQ  default  setup.py's choice: fairseq 0.12.2 before Python 3.11, ve-fairseq 0.12.3 after
#          main     fairseq's main branch from source: fairseq-fixed==0.12.3.1 (its public
#                   repository's sdist), built against the cell's torch
#          or any pip requirement or path for another fairseq build
# TORCH    a torch version, e.g. 2.5.1
# The venv is MATRIX_DIR/<cell> (MATRIX_DIR default .matrix, ignored by git) and is reused by a
# re-run. EXTRAS is passed on to bootstrap (default test,ct2). NUMPY=1.26.4 (say) installs that
# numpy into the cell's venv after bootstrap. The log is MATRIX_DIR/<cell>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
PYTHON=$1 FAIRSEQ=$2 TORCH=$3
shift 3
[ $# -gt 0 ] || set -- tests
MATRIX_DIR=${MATRIX_DIR:-.matrix}
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$FAIRSEQ" in
    default) SPEC="" ;;
    main) SPEC="fairseq-fixed==0.12.3.1" ;;
    *) SPEC=$FAIRSEQ ;;
esac
CELL="py$PYVER-torch$TORCH-fairseq-$(tr -c 'A-Za-z0-9.=\n-' _ <<<"$FAIRSEQ" | tr -d '\n')"
mkdir -p "$MATRIX_DIR"
VENV="$MATRIX_DIR/$CELL"
LOG="$MATRIX_DIR/$CELL.log"
COMMAND="${NUMPY:+NUMPY=$NUMPY }bash scripts/matrix.sh $PYTHON $FAIRSEQ $TORCH $*"
echo "== $CELL: set-up" | tee "$LOG"
VENV=$VENV PYTHON=$PYTHON TORCH_SPEC="torch==$TORCH" FAIRSEQ_SPEC=$SPEC EXTRAS=${EXTRAS:-test,ct2} \
    bash scripts/bootstrap.sh 2>&1 | tee -a "$LOG"
[ -z "${NUMPY:-}" ] || "$VENV/bin/python" -m pip install -q "numpy==$NUMPY" 2>&1 | tee -a "$LOG"
VERSIONS=$("$VENV/bin/python" -c "import sys, fairseq, torch, numpy; print('python', sys.version.split()[0], '| fairseq', fairseq.__version__, '| torch', torch.__version__, '| numpy', numpy.__version__)" 2>/dev/null | tail -n 1)
echo "$VERSIONS" | tee -a "$LOG"
echo "== $CELL: tests" | tee -a "$LOG"
set +e
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider "$@" 2>&1 | tee -a "$LOG"
STATUS=${PIPESTATUS[0]}
set -e
SUMMARY=$(grep -E '^=*\s*[0-9]+ (passed|failed|error|skipped)' "$LOG" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%d)" "$CELL" "$VERSIONS" "${SUMMARY:-no summary}" \
    "$STATUS" "$COMMAND" >> "$MATRIX_DIR/results.tsv"
echo "== $CELL: $SUMMARY (exit $STATUS); log $LOG"
exit "$STATUS"
