#!/usr/bin/env bash
# Translate a binarised subset with every input kept (--task translation_doc), then score it.
set -euo pipefail
usage() {
    cat <<'TXT'
Usage: decode.sh CKPT DATA_BIN SUBSET OUT [extra fairseq-generate args]

  CKPT      a checkpoint from finetune.sh (full or adapters; adapters apply themselves)
  DATA_BIN  binarised data from prepare.sh (OUT_DIR/bin)
  SUBSET    test, valid, or test1 (the test documents, with prepare.sh -b)
  OUT       writes OUT.pieces (fairseq-generate output), OUT.gen (the same, SentencePiece removed),
            OUT.json and OUT.txt (ChrF++ from fairseq-relpos evaluate)

Defaults: beam 5, batch size 16, --max-len-a 1.5 --max-len-b 20, 4096 max positions;
extra arguments are passed last and override them. Documents prepared with prepare.sh -s '<s>'
decode sentence by sentence with e.g. --doc-separator '<s>' --doc-decoding aligned (or window,
split); the separator is then also given to evaluate, which scores sentence by sentence.
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
PLUGIN=$(fairseq-relpos user-dir)
SEP=
for ((i = 1; i < $#; i++)); do [ "${!i}" = --doc-separator ] && { j=$((i + 1)); SEP=${!j}; }; done

mkdir -p "$(dirname "$OUT")"
fairseq-generate "$DATA" --user-dir "$PLUGIN" --task translation_doc --path "$CKPT" \
    --source-lang SRC --target-lang TGT --gen-subset "$SUBSET" \
    --beam 5 --batch-size 16 --max-len-a 1.5 --max-len-b 20 \
    --max-source-positions 4096 --max-target-positions 4096 \
    "$@" > "$OUT.pieces" 2> "$OUT.log" \
    || { tail -20 "$OUT.log" >&2; die "fairseq-generate failed (log: $OUT.log)"; }
# Remove SentencePiece from S/T/H/D lines, keeping the source's language tags as words
# (fairseq's --post-process sentencepiece would glue them together: eng_Latnhin_Deva).
python - "$OUT.pieces" "$OUT.gen" <<'PY'
import sys
from fairseq_relpos.documents.tags import join_source, split_tags
with open(sys.argv[1], encoding="utf-8") as fin, open(sys.argv[2], "w", encoding="utf-8") as fout:
    for line in fin:
        fields = line.rstrip("\n").split("\t")
        if line[:2] in ("S-", "T-", "H-", "D-") and len(fields) >= 2:
            tags, text = split_tags(fields[-1]) if line[0] == "S" else (None, fields[-1])
            fields[-1] = join_source(tags, [text.replace(" ", "").replace("\u2581", " ").strip()])
        fout.write("\t".join(fields) + "\n")
PY
fairseq-relpos evaluate --generate "$OUT.gen" --log "$OUT.log" ${SEP:+--doc-separator "$SEP"} \
    --json "$OUT.json" --force | tee "$OUT.txt"
