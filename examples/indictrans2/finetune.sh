#!/usr/bin/env bash
# Switch an IndicTrans2 checkpoint to relative positions and fine-tune it: one fairseq-train.
set -euo pipefail
usage() {
    cat <<'TXT'
Usage: finetune.sh IT2_DIR DATA_BIN METHOD POSITIONS SAVE_DIR [extra fairseq-train args]

  IT2_DIR    IndicTrans2 fairseq release: starts from IT2_DIR/model/checkpoint_best.pt
  DATA_BIN   binarised data from prepare.sh (OUT_DIR/bin; suffixes SRC and TGT)
  METHOD     full | lora | minlora
  POSITIONS  rope | alibi | nope
  SAVE_DIR   checkpoints and train.log go here

The architecture's shape is read from the checkpoint. Defaults follow IndicTrans2's
fine-tuning (label smoothing 0.1, adam (0.9,0.98), inverse_sqrt from 1e-7, dropout 0.2,
clip-norm 1.0, patience 10) with lr 3e-5 for full fine-tuning and 1e-3 for adapters, and
4096 max positions; any extra argument is passed last, so it overrides them (e.g.
--max-update 2000 --lr 5e-5 --lora-rank 16; on a GPU add --fp16).
TXT
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[ $# -ge 5 ] || { usage >&2; exit 2; }
IT2=$1 DATA=$2 METHOD=$3 POS=$4 SAVE=$5
shift 5
die() { echo "finetune.sh: $*" >&2; exit 2; }
case $METHOD in
    full) TASK=(--task translation) LR=3e-5 ;;
    lora|minlora) TASK=(--task translation_lora --lora-style "$METHOD") LR=1e-3 ;;
    *) die "unknown METHOD '$METHOD' (full, lora or minlora)" ;;
esac
case $POS in
    rope|alibi|nope) ;;
    *) die "unknown POSITIONS '$POS' (rope, alibi or nope)" ;;
esac
[ -d "$IT2" ] || die "IndicTrans2 directory not found: $IT2"
CKPT=$IT2/model/checkpoint_best.pt
[ -f "$CKPT" ] || die "missing $CKPT"
[ -f "$DATA/dict.SRC.txt" ] && [ -f "$DATA/dict.TGT.txt" ] \
    || die "$DATA is not prepare.sh output (no dict.SRC.txt / dict.TGT.txt)"
command -v fairseq-train >/dev/null || die "fairseq-train not found: activate the environment first"
PLUGIN=$(fairseq-relpos user-dir)

mkdir -p "$SAVE"
fairseq-train "$DATA" --user-dir "$PLUGIN" "${TASK[@]}" --source-lang SRC --target-lang TGT \
    --arch "transformer_$POS" --finetune-from-model "$CKPT" \
    --max-source-positions 4096 --max-target-positions 4096 \
    --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --dropout 0.2 \
    --optimizer adam --adam-betas '(0.9,0.98)' --clip-norm 1.0 \
    --lr "$LR" --lr-scheduler inverse_sqrt --warmup-init-lr 1e-07 --warmup-updates 1000 \
    --max-tokens 4096 --max-update 20000 \
    --patience 10 --no-epoch-checkpoints \
    --log-format simple --log-interval 100 --save-dir "$SAVE" "$@" 2>&1 | tee "$SAVE/train.log"
