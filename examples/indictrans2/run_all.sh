#!/usr/bin/env bash
# The paper's grid on one IndicTrans2 direction: (full, lora, minlora) x (rope, alibi).
set -euo pipefail
usage() {
    cat <<'TXT'
Usage: run_all.sh IT2_DIR RAW_DIR SRC_LANG TGT_LANG WORK_DIR [extra fairseq-train args]

Runs prepare.sh (with documents of up to BUDGET pieces), decodes the IndicTrans2 checkpoint
itself (row base/sinusoidal), then runs finetune.sh and decode.sh for every METHOD in
$METHODS and POSITIONS in $POSITIONS, and prints ChrF++ on test (sentences) and test1
(documents) per run; WORK_DIR/summary.tsv keeps the table. Finished runs
(WORK_DIR/METHOD-POSITIONS/checkpoint_best.pt) are not trained again.
Environment: METHODS (default "full lora minlora"), POSITIONS (default "rope alibi"),
BUDGET (default 1024).
Extra arguments go to every fairseq-train.
TXT
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[ $# -ge 5 ] || { usage >&2; exit 2; }
IT2=$1 RAW=$2 SL=$3 TL=$4 W=$5
shift 5
HERE=$(cd "$(dirname "$0")" && pwd)
METHODS=${METHODS:-full lora minlora} POSITIONS=${POSITIONS:-rope alibi}
for m in $METHODS; do [[ $m =~ ^(full|lora|minlora)$ ]] || { echo "run_all.sh: unknown METHOD '$m'" >&2; exit 2; }; done
for p in $POSITIONS; do [[ $p =~ ^(rope|alibi|nope)$ ]] || { echo "run_all.sh: unknown POSITIONS '$p'" >&2; exit 2; }; done

bash "$HERE/prepare.sh" -b "${BUDGET:-1024}" "$IT2" "$RAW" "$SL" "$TL" "$W/data"
SUBSETS=test
[ -e "$W/data/bin/test1.SRC-TGT.SRC.bin" ] && SUBSETS="test test1"
printf 'method\tpositions\tsubset\tchrf++\n' > "$W/summary.tsv"
score() {  # CKPT RUN_DIR METHOD POSITIONS: decode and score every subset
    for s in $SUBSETS; do
        bash "$HERE/decode.sh" "$1" "$W/data/bin" "$s" "$2/$s" > /dev/null
        python -c 'import json, sys; print(*sys.argv[2:], round(json.load(open(sys.argv[1]))["overall"]["chrf++"], 2), sep="\t")' \
            "$2/$s.json" "$3" "$4" "$s" >> "$W/summary.tsv"
    done
}
echo "== the IndicTrans2 checkpoint itself"
score "$IT2/model/checkpoint_best.pt" "$W/base" base sinusoidal
for m in $METHODS; do
    for p in $POSITIONS; do
        run=$W/$m-$p
        echo "== $m $p"
        [ -f "$run/checkpoint_best.pt" ] || bash "$HERE/finetune.sh" "$IT2" "$W/data/bin" "$m" "$p" "$run" "$@" > /dev/null \
            || { echo "run_all.sh: fine-tuning $m $p failed; see $run/train.log" >&2; exit 1; }
        grep -m1 "trainable parameters" "$run/train.log" || true
        score "$run/checkpoint_best.pt" "$run" "$m" "$p"
    done
done
column -t -s $'\t' "$W/summary.tsv" 2>/dev/null || cat "$W/summary.tsv"
