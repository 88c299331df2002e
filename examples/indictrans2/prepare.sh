#!/usr/bin/env bash
# SentencePiece-encode raw parallel text with an IndicTrans2 directory's own models, put the
# language tags in front of every source line, optionally add pseudo-documents, and binarise
# with the directory's own dictionaries.
set -euo pipefail
usage() {
    cat <<'TXT'
Usage: prepare.sh [-b BUDGET [-s SEP]] IT2_DIR RAW_DIR SRC_LANG TGT_LANG OUT_DIR

  IT2_DIR   IndicTrans2 fairseq release (e.g. en-indic/): vocab/model.{SRC,TGT},
            final_bin/dict.{SRC,TGT}.txt
  RAW_DIR   raw text, one sentence a line: {train,valid,test}.SRC_LANG and .TGT_LANG
            (each split optional, at least one needed; blank lines delimit documents)
  SRC_LANG, TGT_LANG   IndicTrans2 language codes, e.g. eng_Latn hin_Deva
  OUT_DIR   writes OUT_DIR/spm/ (encoded text) and OUT_DIR/bin/ (binarised data)
  -b BUDGET also join consecutive sentences into pseudo-documents of up to BUDGET pieces
            (fairseq-relpos make-docs): train gets sentences + documents, and test's
            documents become subset test1
  -s SEP    join the documents' sentences with the symbol SEP on both sides (use <s>, which
            every fairseq dictionary holds), for fine-tuning and for --doc-decoding

The binarised files use IndicTrans2's literal suffixes SRC and TGT.
TXT
}
BUDGET= SEP=
while getopts "hb:s:" opt; do
    case $opt in
        h) usage; exit 0 ;;
        b) BUDGET=$OPTARG ;;
        s) SEP=$OPTARG ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 5 ] || { usage >&2; exit 2; }
IT2=$1 RAW=$2 SL=$3 TL=$4 OUT=$5
die() { echo "prepare.sh: $*" >&2; exit 2; }
[ -d "$IT2" ] || die "IndicTrans2 directory not found: $IT2"
[ -d "$RAW" ] || die "raw data directory not found: $RAW"
for f in vocab/model.SRC vocab/model.TGT final_bin/dict.SRC.txt final_bin/dict.TGT.txt; do
    [ -f "$IT2/$f" ] || die "missing $IT2/$f (not an IndicTrans2 fairseq directory?)"
done
[[ -z $BUDGET || $BUDGET =~ ^[1-9][0-9]*$ ]] || die "BUDGET must be a positive integer, got '$BUDGET'"
command -v fairseq-preprocess >/dev/null || die "fairseq-preprocess not found: activate the environment first"

SPLITS=()
for split in train valid test; do
    if [ -f "$RAW/$split.$SL" ] || [ -f "$RAW/$split.$TL" ]; then
        [ -f "$RAW/$split.$SL" ] || die "missing $RAW/$split.$SL (its pair $RAW/$split.$TL exists)"
        [ -f "$RAW/$split.$TL" ] || die "missing $RAW/$split.$TL (its pair $RAW/$split.$SL exists)"
        SPLITS+=("$split")
    fi
done
[ ${#SPLITS[@]} -gt 0 ] || die "no {train,valid,test}.$SL/.$TL files in $RAW"

mkdir -p "$OUT/spm"
# Encode; source lines get "SRC_LANG TGT_LANG" in front; blank lines stay blank (document breaks).
python - "$IT2" "$RAW" "$SL" "$TL" "$OUT/spm" "${SPLITS[@]}" <<'PY'
import sys
import sentencepiece as spm
it2, raw, sl, tl, out, *splits = sys.argv[1:]
models = {side: spm.SentencePieceProcessor(model_file=f"{it2}/vocab/model.{side}") for side in ("SRC", "TGT")}
for split in splits:
    counts = []
    for lang, side in ((sl, "SRC"), (tl, "TGT")):
        n = 0
        with open(f"{raw}/{split}.{lang}", encoding="utf-8") as fin, \
                open(f"{out}/{split}.{side}", "w", encoding="utf-8") as fout:
            for line in fin:
                text = line.strip()
                pieces = " ".join(models[side].encode(text, out_type=str)) if text else ""
                if pieces and side == "SRC":
                    pieces = f"{sl} {tl} {pieces}"
                fout.write(pieces + "\n")
                n += 1
        counts.append(n)
    if counts[0] != counts[1]:
        sys.exit(f"prepare.sh: {raw}/{split}.{sl} has {counts[0]} lines, {raw}/{split}.{tl} {counts[1]}")
PY

# Sentence-level files hold no blank lines.
for split in "${SPLITS[@]}"; do
    paste -d '\t' "$OUT/spm/$split.SRC" "$OUT/spm/$split.TGT" | awk -F'\t' 'NF == 2 && $1 != "" && $2 != ""' \
        > "$OUT/spm/$split.pairs"
    cut -f1 "$OUT/spm/$split.pairs" > "$OUT/spm/$split.sent.SRC"
    cut -f2 "$OUT/spm/$split.pairs" > "$OUT/spm/$split.sent.TGT"
    rm "$OUT/spm/$split.pairs"
done

TRAIN=$OUT/spm/train.sent TESTS=$OUT/spm/test.sent
if [ -n "$BUDGET" ]; then
    for split in train test; do
        [[ " ${SPLITS[*]} " == *" $split "* ]] || continue
        fairseq-relpos make-docs "$OUT/spm/$split" "$OUT/spm/$split.docs" -s SRC -t TGT --budget "$BUDGET" \
            ${SEP:+--separator " $SEP "} --force
    done
    if [ -f "$OUT/spm/train.docs.SRC" ]; then
        for side in SRC TGT; do
            cat "$OUT/spm/train.sent.$side" "$OUT/spm/train.docs.$side" > "$OUT/spm/train.all.$side"
        done
        TRAIN=$OUT/spm/train.all
    fi
    [ -f "$OUT/spm/test.docs.SRC" ] && TESTS="$TESTS,$OUT/spm/test.docs"
fi

rm -f "$OUT"/bin/*.bin "$OUT"/bin/*.idx  # no stale subsets from an earlier run
ARGS=()
[[ " ${SPLITS[*]} " == *" train "* ]] && ARGS+=(--trainpref "$TRAIN")
[[ " ${SPLITS[*]} " == *" valid "* ]] && ARGS+=(--validpref "$OUT/spm/valid.sent")
[[ " ${SPLITS[*]} " == *" test "* ]] && ARGS+=(--testpref "$TESTS")
fairseq-preprocess --source-lang SRC --target-lang TGT --srcdict "$IT2/final_bin/dict.SRC.txt" \
    --tgtdict "$IT2/final_bin/dict.TGT.txt" --destdir "$OUT/bin" --workers 1 "${ARGS[@]}" \
    > "$OUT/preprocess.log" 2>&1 || { tail -20 "$OUT/preprocess.log" >&2; die "fairseq-preprocess failed (log: $OUT/preprocess.log)"; }
grep -E "\[(SRC|TGT)\].*(sents|replaced)" "$OUT/preprocess.log" || true
echo "prepare.sh: binarised ${SPLITS[*]}${BUDGET:+ (+ documents of up to $BUDGET pieces)} into $OUT/bin"
