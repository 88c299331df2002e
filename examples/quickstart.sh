#!/usr/bin/env bash
# The paper's workflow in minutes on a CPU, on the toy corpus this project generates:
#   1. train a small sinusoidal base with the stock `transformer` (the stand-in for IndicTrans2)
#      on sentences only;
#   2. switch it to RoPE with minLoRA adapters, fine-tuning on sentences plus a few documents
#      in two of the four toy languages;
#   3. decode documents far longer than anything the base saw, with stock fairseq-generate, in
#      every --doc-decoding mode: split (each sentence alone, joined: what users do today),
#      whole, aligned and window;
#   4. print, by document length, sentence-aligned ChrF++ and the share of context pronouns
#      translated right, for the base and the switched model.
# Sentences are joined by the separator <s> on both sides (fairseq's own begin symbol, in every
# dictionary), so that the sentence-aware modes know where sentences end.
# Usage: bash examples/quickstart.sh [WORKDIR]   (default work/quickstart; re-running reuses it)
# Environment: BASE_UPDATES, SWITCH_UPDATES (training length), DOCS (document test sets to decode).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
W=${1:-work/quickstart}
BASE_UPDATES=${BASE_UPDATES:-1500}
SWITCH_UPDATES=${SWITCH_UPDATES:-600}
command -v fairseq-train >/dev/null || { echo "fairseq-train not found: run 'bash scripts/bootstrap.sh && . .venv/bin/activate' first" >&2; exit 2; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$W"
LOG="$W/log"
: > "$LOG"
PLUGIN=$(fairseq-relpos user-dir 2>> "$LOG")  # --user-dir from any folder
trap 'echo "quickstart failed; the last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2' ERR
DOCS=${DOCS:-"test-doc2 test-doc4 test-doc8 test-doc16 test-doc32"}
MODES=${MODES:-"split whole aligned window"}
SEP='<s>'

echo "== 1. toy corpus and pseudo-documents"
fairseq-relpos toy-corpus "$W/corpus" --doc-separator "$SEP" 2>> "$LOG"
# documents for the two "document languages" only, of 30 to 120 tokens, sentences joined by <s>
fairseq-relpos make-docs "$W/corpus/train-docs" "$W/corpus/docs" --ids "$W/corpus/train-docs.ids" \
    --budget 120 --min-budget 30 --separator " $SEP " --force 2>> "$LOG"
cat "$W/corpus/train.src" "$W/corpus/docs.src" > "$W/corpus/switch.src"
cat "$W/corpus/train.tgt" "$W/corpus/docs.tgt" > "$W/corpus/switch.tgt"
rm -rf "$W/bin" "$W/bin-switch"  # derived from the corpus, which is the same on every run
TESTS=$(for s in test $DOCS; do printf '%s,' "$W/corpus/$s"; done)
fairseq-preprocess --source-lang src --target-lang tgt --joined-dictionary --workers 2 \
    --trainpref "$W/corpus/train" --validpref "$W/corpus/valid" --testpref "${TESTS%,}" \
    --destdir "$W/bin" >> "$LOG" 2>&1
fairseq-preprocess --source-lang src --target-lang tgt --srcdict "$W/bin/dict.src.txt" \
    --tgtdict "$W/bin/dict.tgt.txt" --workers 2 --trainpref "$W/corpus/switch" \
    --validpref "$W/corpus/valid" --destdir "$W/bin-switch" >> "$LOG" 2>&1

COMMON=(--optimizer adam --adam-betas '(0.9,0.98)' --lr-scheduler inverse_sqrt --warmup-updates 200
        --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --dropout 0.1 --max-tokens 4000
        --no-epoch-checkpoints --log-format simple --log-interval 100 --seed 1 --num-workers 0)

echo "== 2. sinusoidal base on sentences ($BASE_UPDATES updates)"
[ -f "$W/base/checkpoint_last.pt" ] || fairseq-train "$W/bin" --user-dir "$PLUGIN" --arch transformer \
    --encoder-layers 3 --decoder-layers 3 --encoder-embed-dim 128 --decoder-embed-dim 128 \
    --encoder-ffn-embed-dim 256 --decoder-ffn-embed-dim 256 --encoder-attention-heads 4 \
    --decoder-attention-heads 4 --share-all-embeddings --activation-fn gelu \
    --max-source-positions 256 --max-target-positions 256 \
    "${COMMON[@]}" --lr 0.002 --max-update "$BASE_UPDATES" --save-dir "$W/base" 2>> "$LOG" | { grep -E "\| (train|valid) \|" || true; }

echo "== 3. switch to RoPE with minLoRA, sentences + documents ($SWITCH_UPDATES updates; shape read from the base)"
[ -f "$W/rope/checkpoint_last.pt" ] || fairseq-train "$W/bin-switch" --user-dir "$PLUGIN" \
    --arch transformer_rope --finetune-from-model "$W/base/checkpoint_last.pt" \
    --task translation_lora --lora-style minlora --lora-rank 8 \
    --max-source-positions 1024 --max-target-positions 1024 \
    "${COMMON[@]}" --lr 0.003 --max-update "$SWITCH_UPDATES" --save-dir "$W/rope" 2>> "$LOG" \
    | { grep -E "trainable|\| (train|valid) \|" || true; }

echo "== 4. decode documents (up to ~390 tokens; the base saw at most 20) in each mode, and score"
# The sinusoidal base saved a 256-token limit; --model-overrides lifts it (its sinusoids extend
# to any length). Relative models take the limit from the command line anyway.
decode() {  # MODEL SUBSET MODE OUT
    fairseq-generate "$W/bin" --user-dir "$PLUGIN" --task translation_doc --path "$1" --gen-subset "$2" \
        --doc-separator "$SEP" --doc-decoding "$3" \
        --beam 4 --batch-size 16 --max-len-a 1.2 --max-len-b 10 \
        --max-source-positions 1024 --max-target-positions 1024 \
        --model-overrides "{'max_source_positions': 1024, 'max_target_positions': 1024}" > "$4" 2> "$4.log"
}
i=0
for subset in test $DOCS; do
    split=$([ $i -eq 0 ] && echo test || echo "test$i")
    for model in base rope; do
        for mode in $([ $i -eq 0 ] && echo whole || echo $MODES); do
            out="$W/$model.$subset.$mode.out"
            decode "$W/$model/checkpoint_last.pt" "$split" "$mode" "$out"
            fairseq-relpos evaluate --generate "$out" --log "$out.log" --doc-separator "$SEP" \
                --json "${out%.out}.json" --force >> "$LOG" 2>&1
        done
    done
    i=$((i + 1))
done
python - "$W" "$SEP" "$MODES" $DOCS <<'PY'
import json, sys
from fairseq_relpos.corpora.toy import pronoun_accuracy
from fairseq_relpos.documents.tags import split_tags
from fairseq_relpos.scoring import read_generate
work, sep, modes, docs = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]

def cell(model, subset, mode):
    chrf = json.load(open(f"{work}/{model}.{subset}.{mode}.json"))["aligned"]["chrf++"]
    sources, hyps, refs = read_generate(f"{work}/{model}.{subset}.{mode}.out")
    right, total = pronoun_accuracy([split_tags(s)[0][1] for s in sources], hyps, refs, sep)
    return f"{chrf:5.1f} {right / total:4.0%}" if total else f"{chrf:5.1f}    -"

sentences = [json.load(open(f"{work}/{m}.test.whole.json"))["overall"]["chrf++"] for m in ("base", "rope")]
print(f"sentence test set, ChrF++: sinusoidal base {sentences[0]:.1f}, RoPE + minLoRA {sentences[1]:.1f}")
print("sentence-aligned ChrF++ and context pronouns translated right, by mode")
for model, name in (("base", "sinusoidal base"), ("rope", "RoPE + minLoRA")):
    print(f"{name:<12}" + "".join(f"{m:>12}" for m in modes))
    for subset in docs:
        print(f"{subset:<12}" + "".join(f"{cell(model, subset, m):>12}" for m in modes))
PY
