#!/usr/bin/env bash
# Translate a binarised subset with every input kept (--task translation_doc), then score it.
set -euo pipefail
usage() {
    cat <<'TXT'
Usage: decode.sh CKPT DATA_BIN SUBSET OUT [extra fairseq-generate args]

  CKPT      a checkpoint from finetune.sh (full or adapters; adapters apply themselves)
  DATA_BIN  binarised data from prepare.sh (OUT_DIR/bin)
  SUBSET    test, valid, or test1 (the test documents, with prepare.sh -b)
  OUT       writes OUT.gen (fairseq-generate output, SentencePiece removed),
            OUT.json and OUT.txt (ChrF++ from fairseq-relpos evaluate)

Defaults: beam 5, batch size 16, --max-len-a 1.5 --max-len-b 20, 4096 max positions;
extra arguments are passed last and override them.
TXT
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[ $# -ge 4 ] || { usage >&2; exit 2; }
CKPT=$1 DATA=$2 SUBSET=$3 OUT=$4
shift 4
die() { echo "decode.sh: $*" >&2; exit 2; }
[ -f "$CKPT" ] || die "checkpoint not found: $CKPT"
[ -f "$DATA/dict.SRC.txt" ] || die "$DATA is not prepare.sh output (no dict.SRC.txt)"
ls "$DATA/$SUBSET".SRC-TGT.SRC.* >/dev/null 2>&1 || die "no subset '$SUBSET' in $DATA"
command -v fairseq-generate >/dev/null || die "fairseq-generate not found: activate the environment first"
PLUGIN=$(python -c 'import fairseq_relpos, os; print(os.path.dirname(fairseq_relpos.__file__))')

mkdir -p "$(dirname "$OUT")"
fairseq-generate "$DATA" --user-dir "$PLUGIN" --task translation_doc --path "$CKPT" \
    --source-lang SRC --target-lang TGT --gen-subset "$SUBSET" \
    --beam 5 --batch-size 16 --max-len-a 1.5 --max-len-b 20 \
    --max-source-positions 4096 --max-target-positions 4096 \
    --post-process sentencepiece "$@" > "$OUT.gen" 2> "$OUT.log" \
    || { tail -20 "$OUT.log" >&2; die "fairseq-generate failed (log: $OUT.log)"; }
fairseq-relpos evaluate --generate "$OUT.gen" --json "$OUT.json" | tee "$OUT.txt"
