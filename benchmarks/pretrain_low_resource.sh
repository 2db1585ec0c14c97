#!/usr/bin/env bash
# docs/finetune.md's "Does pretraining pay? Little labelled data": the recipe's MLM pretraining (bundled corpus +
# book-review corpus, RoBERTa-tiny) with a held-out 2% of its instances evaluated as it trains, then book_review
# fine-tuning from it and from random initialisation on small labelled subsets of train.tsv (the first N rows
# after a fixed shuffle), several seeds each, one run at a time; prints the table from the runs' JSON reports.
#
#   bash benchmarks/pretrain_low_resource.sh [WORKDIR] [STAGE...]
#   STAGE: data mlm subsets finetune table (default: all, in that order)
#
# Environment: DATA (default ../shared/data), MLM_STEPS (4000), EVAL_STEPS (1000), SIZES ("500 2000"),
# EPOCHS ("500:10 2000:5": epochs per train size; a size not listed gets 3), SEEDS ("1 2 3"), DEV_ROWS (2000:
# the first rows of dev.tsv; 0 for all 8,000), THREADS (1). Test is always the whole test.tsv; the best dev
# epoch is kept and tested. Runs go one at a time, nothing beside them. THREADS 1, not 2: on a shared 2-core
# machine (load average 10) a 2-thread step keeps waiting for its descheduled partner thread; MLM steps took
# 3.2 s with 2 threads and 0.3 s with 1 there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${1:-lowres}
shift || true
STAGES=${*:-data mlm subsets finetune table}
D=${DATA:-$ROOT/../shared/data}
MLM_STEPS=${MLM_STEPS:-4000}
EVAL_STEPS=${EVAL_STEPS:-1000}
SIZES=${SIZES:-500 2000}
EPOCHS=${EPOCHS:-500:10 2000:5}
SEEDS=${SEEDS:-1 2 3}
DEV_ROWS=${DEV_ROWS:-2000}
THREADS=${THREADS:-1}
VOCAB=$ROOT/models/google_zh_vocab.txt
BR=$D/datasets/book_review
mkdir -p "$W"
cd "$W"

epochs_for() {  # the epochs of train size $1 from $EPOCHS (default 3)
  local pair
  for pair in $EPOCHS; do
    if [[ ${pair%%:*} == "$1" ]]; then echo "${pair##*:}"; return; fi
  done
  echo 3
}

for stage in $STAGES; do
  case $stage in
    data)
      python "$ROOT/finetune/tsv_to_corpus.py" --input "$D/corpora/book_review_cls.txt" --output book_review_bert.txt
      cat "$ROOT/corpora/CLUECorpusSmall_bert_sampled.txt" book_review_bert.txt > corpus.txt
      python "$ROOT/preprocess.py" --corpus_path corpus.txt --vocab_path "$VOCAB" --dataset_path dataset.bin \
          --data_processor mlm --corpus_format bert --seq_length 128 --dynamic_masking --processes_num 2 ;;
    mlm)
      # 2% of the instances held out (never trained on), evaluated every EVAL_STEPS steps and at the end:
      # mlm_tiny_checkpoints/dev_eval.jsonl has the held-out loss, perplexity and accuracy
      /usr/bin/time -f "mlm pretraining wall %e s" python "$ROOT/pretrain.py" --config roberta/tiny_config.json \
          --dataset_path dataset.bin --vocab_path "$VOCAB" --batch_size 16 --learning_rate 1e-3 --warmup 0.02 \
          --dropout 0 --threads "$THREADS" --dev_fraction 0.02 --eval_steps "$EVAL_STEPS" --total_steps "$MLM_STEPS" \
          --output_model_path mlm_tiny.bin 2>&1 | tee mlm.log | grep -v "it/s" ;;
    subsets)
      for n in $SIZES; do
        python "$ROOT/benchmarks/subset_tsv.py" --input "$BR/train.tsv" --output "train_$n.tsv" --rows "$n" --seed 1
      done
      if (( DEV_ROWS > 0 )); then
        python "$ROOT/benchmarks/subset_tsv.py" --input "$BR/dev.tsv" --output dev.tsv --rows "$DEV_ROWS" --no_shuffle
      else
        cp "$BR/dev.tsv" dev.tsv
      fi ;;
    finetune)
      # one run at a time; seeds outermost so that a cut-short run still has every (size, init) pair
      for seed in $SEEDS; do
        for n in $SIZES; do
          for init in random mlm; do
            case $init in
              random) model=(--config_path roberta/tiny_config.json) ;;  # the config's dropout: 0.1
              mlm) model=(--pretrained_model_path mlm_tiny.bin --dropout 0.1) ;;
            esac
            name=${init}_n${n}_s$seed
            if [[ -f ${name}_report.json ]]; then echo "$name: done before, kept"; continue; fi
            /usr/bin/time -f "$name wall %e s" python "$ROOT/finetune/run_classifier.py" "${model[@]}" \
                --train_path "train_$n.tsv" --dev_path dev.tsv --test_path "$BR/test.tsv" \
                --epochs_num "$(epochs_for "$n")" --batch_size 32 --learning_rate 2e-4 --seq_length 128 \
                --threads "$THREADS" --no_progress --seed "$seed" --output_model_path "$name.bin" > "$name.log" 2>&1
            tail -n 1 "$name.log"
            rm -f "$name.bin"  # the table needs only the report
          done
        done
      done ;;
    table)
      python - "$SIZES" "$SEEDS" <<'EOF'
import json, os, statistics, sys
sizes, seeds = sys.argv[1].split(), sys.argv[2].split()
if os.path.exists("mlm_tiny_checkpoints/dev_eval.jsonl"):
    last = [json.loads(line) for line in open("mlm_tiny_checkpoints/dev_eval.jsonl")][-1]
    m = last["targets"]["mlm"]
    print(f"pretraining, held-out at step {last['step']} ({last['instances']} instances): "
          f"MLM loss {m['loss']:.4f}, perplexity {m['ppl']:.1f}, accuracy {m['acc']:.4f}\n")
print("| initialisation | train size | seed | best dev acc (epoch/epochs) | test acc | epochs' wall | run wall |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
means = {}
for n in sizes:
    for init in ("random", "mlm"):
        for seed in seeds:
            path = f"{init}_n{n}_s{seed}_report.json"
            if not os.path.exists(path):
                continue
            r = json.load(open(path))
            best = r["best_epoch"]
            dev = r["history"][best - 1]["dev"]["acc"]
            epochs = sum(h["seconds"] for h in r["history"])
            run = [line.split()[-2] for line in open(f"{init}_n{n}_s{seed}.log") if " wall " in line]
            run = f"{float(run[-1]):.0f} s" if run else "-"
            means.setdefault((init, n), []).append((dev, r["test"]["acc"]))
            print(f"| {init} | {n} | {seed} | {dev:.4f} ({best}/{len(r['history'])}) | {r['test']['acc']:.4f} | "
                  f"{epochs:.0f} s | {run} |")
print("\n| initialisation | train size | runs | mean best dev acc | mean test acc (sd) |")
print("| --- | ---: | ---: | ---: | ---: |")
for (init, n), runs in means.items():
    tests = [t for _, t in runs]
    sd = statistics.stdev(tests) if len(tests) > 1 else float("nan")
    print(f"| {init} | {n} | {len(runs)} | {statistics.mean(d for d, _ in runs):.4f} | "
          f"{statistics.mean(tests):.4f} ({sd:.4f}) |")
for n in sizes:
    if ("random", n) in means and ("mlm", n) in means:
        gap = statistics.mean(t for _, t in means[("mlm", n)]) - statistics.mean(t for _, t in means[("random", n)])
        print(f"train size {n}: MLM-pretrained minus random, mean test accuracy: {gap * 100:+.2f} points")
EOF
      ;;
    *) echo "unknown stage $stage (data mlm subsets finetune table)" >&2; exit 2 ;;
  esac
done
