#!/usr/bin/env bash
# docs/finetune.md's recipe, whole: the bundled corpus + the book-review corpus, a tiny model pretrained with MLM
# (RoBERTa-tiny) and with ELECTRA (the same discriminator, generator half as wide) at the same wall-clock budget,
# then book_review fine-tuning (3 epochs) from each and from random initialisation, two seeds each; prints the
# table of docs/finetune.md from the runs' JSON reports.
#
#   bash benchmarks/pretrain_vs_random.sh [WORKDIR] [STAGE...]
#   STAGE: data mlm electra finetune table (default: all, in that order)
#
# Environment: DATA (default ../shared/data), MLM_STEPS (8000), ELECTRA_STEPS (5500: the steps ELECTRA-tiny
# runs in MLM_STEPS' wall time on the machine of the table; measure both s/step on yours with --total_steps 300
# and scale), SEEDS ("7 8"). Run nothing else beside the pretraining: its two threads slow down threefold when a
# third process competes for two cores. The fine-tuning runs go two at a time with one thread each.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${1:-recipe}
shift || true
STAGES=${*:-data mlm electra finetune table}
D=${DATA:-$ROOT/../shared/data}
MLM_STEPS=${MLM_STEPS:-8000}
ELECTRA_STEPS=${ELECTRA_STEPS:-5500}
SEEDS=${SEEDS:-7 8}
VOCAB=$ROOT/models/google_zh_vocab.txt
mkdir -p "$W"
cd "$W"
PRE=(--dataset_path dataset.bin --vocab_path "$VOCAB" --batch_size 16 --learning_rate 1e-3 --warmup 0.02 --dropout 0)
FT=(--train_path "$D/datasets/book_review/train.tsv" --dev_path "$D/datasets/book_review/dev.tsv"
    --test_path "$D/datasets/book_review/test.tsv" --epochs_num 3 --batch_size 32 --learning_rate 2e-4
    --seq_length 128 --threads 1 --no_progress)

for stage in $STAGES; do
  case $stage in
    data)
      python "$ROOT/finetune/tsv_to_corpus.py" --input "$D/corpora/book_review_cls.txt" --output book_review_bert.txt
      cat "$ROOT/corpora/CLUECorpusSmall_bert_sampled.txt" book_review_bert.txt > corpus.txt
      python "$ROOT/preprocess.py" --corpus_path corpus.txt --vocab_path "$VOCAB" --dataset_path dataset.bin \
          --data_processor mlm --corpus_format bert --seq_length 128 --dynamic_masking --processes_num 2 ;;
    mlm)
      /usr/bin/time -f "mlm pretraining wall %e s" python "$ROOT/pretrain.py" --config roberta/tiny_config.json \
          "${PRE[@]}" --total_steps "$MLM_STEPS" --output_model_path mlm_tiny.bin 2>&1 | tee mlm.log | grep -v "it/s" ;;
    electra)
      /usr/bin/time -f "electra pretraining wall %e s" python "$ROOT/pretrain.py" --config electra/tiny_config.json \
          "${PRE[@]}" --total_steps "$ELECTRA_STEPS" --output_model_path electra_tiny.bin 2>&1 | tee electra.log \
          | grep -v "it/s" ;;
    finetune)
      jobs=()
      for seed in $SEEDS; do jobs+=("random $seed" "mlm $seed" "electra $seed"); done
      for ((k = 0; k < ${#jobs[@]}; k++)); do
        read -r init seed <<< "${jobs[k]}"
        case $init in
          random) model=(--config_path roberta/tiny_config.json) ;;  # the config's dropout: 0.1
          *) model=(--pretrained_model_path "${init}_tiny.bin" --dropout 0.1) ;;
        esac
        python "$ROOT/finetune/run_classifier.py" "${model[@]}" "${FT[@]}" --seed "$seed" \
            --output_model_path "${init}_s$seed.bin" > "${init}_s$seed.log" 2>&1 &
        if (( k % 2 == 1 )); then wait; fi  # two at a time
      done
      wait ;;
    table)
      python - "$SEEDS" <<'EOF'
import json, os, sys
print("| initialisation | seed | best dev acc (epoch) | test acc | fine-tuning wall |")
print("| --- | ---: | ---: | ---: | ---: |")
for init in ("random", "mlm", "electra"):
    for seed in sys.argv[1].split():
        path = f"{init}_s{seed}_report.json"
        if not os.path.exists(path):
            continue
        r = json.load(open(path))
        best = r["best_epoch"]
        dev = r["history"][best - 1]["dev"]["acc"]
        wall = sum(h["seconds"] for h in r["history"]) / 60
        print(f"| {init} | {seed} | {dev:.4f} ({best}) | {r['test']['acc']:.4f} | {wall:.1f} min |")
EOF
      ;;
    *) echo "unknown stage $stage (data mlm electra finetune table)" >&2; exit 2 ;;
  esac
done
