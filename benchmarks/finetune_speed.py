#!/usr/bin/env python
"""Fine-tuning and batch-inference speed: uer_like's classifier against Hugging Face transformers' Trainer and
`pipeline("text-classification")`, same model, same weights, same texts, one process, alternating rounds.

    python benchmarks/finetune_speed.py                     # BERT-mini on 4,000 book_review reviews
    python benchmarks/finetune_speed.py --precision fp32    # both sides in fp32 (auto: bf16 where the CPU has it)
    python benchmarks/finetune_speed.py --hf_default_sampler --also_full_encoder
        # extra columns in the same rounds: the Trainer with its default (random) sampler; uer_like with the
        # classifier's last layer at every position (before first_only)

Needs transformers with accelerate (the Trainer's requirement): `pip install transformers accelerate`.

The model: BERT-mini (4 layers, hidden 256, 4 heads, feed-forward 1024, dropout 0.1) with a 2-class head,
initialised at random once as transformers' BertForSequenceClassification and imported with
uer_like.io.hf_tasks.import_finetuned, so both sides start from the same tensors.

Training: the same examples (the first --examples reviews of train.tsv, at most --seq_length tokens), batch,
learning rate (linear schedule, 10% warmup), weight decay 0.01, gradient clipping at 1.0, precision.
- uer_like: its fine-tuning loop as finetune/run_classifier.py runs it (uer_like.finetune.core.train with the
  script's parsed flags): length-bucketed batches, the unpadded encoder, `--precision` (auto: bf16 autocast
  where the CPU has AVX512_BF16 or AMX).
- transformers: Trainer with the settings a user would pick on a CPU: use_cpu, bf16 autocast when uer_like runs
  bf16, DataCollatorWithPadding (dynamic padding), train_sampling_strategy="group_by_length" (batches of
  similar length), its default optimizer (adamw_torch_fused), SDPA attention, no evaluation, no saving, no
  logging (a log step syncs), no progress bar.
A round is --steps optimizer steps of each side (one call of core.train, one of Trainer.train); the time runs
from the end of a round's first step to the end of its last (set-up and the first step are left out: the
Trainer's set-up is not a cost of its steps), and round 1 is a warm-up. Reported: the median over rounds of
examples/s.

Inference: the fine-tuned classifier (after the training rounds) on the first --infer_examples reviews of
test.tsv, texts in, labels out, tokenisation included on both sides:
- uer_like: uer_like.finetune.predict.Predictor on the saved model, which computes what run_classifier.py
  --load_model_path --test_path does after reading the file (the task's encode, core.evaluate: length-sorted
  batches, autocast in the run's precision, argmax);
- transformers: `pipeline("text-classification", model=<the model exported with export_finetuned>,
  batch_size=...)` with the weights in fp32 and, as a second competitor, in bf16 (`dtype=torch.bfloat16`).
Predictions are compared label by label.

tokens/s are not reported: the two sides pad differently, examples/s is what a user waits for.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DATA = os.path.join(ROOT, "..", "shared", "data")
VOCAB = os.path.join(DATA, "vocab", "google_zh_vocab.txt")
BOOK_REVIEW = os.path.join(DATA, "datasets", "book_review")


def write_subset(src, dst, n):
    """The header and the first n rows of a tsv."""
    with open(src, encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n".join(lines[: n + 1]) + "\n")
    return [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1: n + 1]]


def make_initial_model(work, seed):
    """A random BERT-mini BertForSequenceClassification (2 labels) saved as a transformers directory, and the same
    tensors as a uer_like fine-tuned model file. -> (hf_dir, uer_path)."""
    import transformers

    from uer_like.io.hf_tasks import import_finetuned

    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=21128, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                  intermediate_size=1024, max_position_embeddings=512, num_labels=2,
                                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = transformers.BertForSequenceClassification(cfg)
    hf_dir = os.path.join(work, "hf_init")
    model.save_pretrained(hf_dir)
    transformers.BertTokenizerFast(vocab_file=VOCAB).save_pretrained(hf_dir)
    uer_path = import_finetuned(hf_dir, os.path.join(work, "init.bin"))
    return hf_dir, uer_path


# ====================================================================== uer_like
class Ours:
    """uer_like's fine-tuning as finetune/run_classifier.py runs it, a round at a time."""

    def __init__(self, init_path, train_path, a):
        from uer_like.finetune import cli, core
        from uer_like.training.precision import DTYPES, resolve_precision

        self.core = core
        argv = ["--load_model_path", init_path, "--vocab_path", VOCAB, "--train_path", train_path,
                "--batch_size", str(a.batch_size), "--learning_rate", str(a.learning_rate), "--seq_length",
                str(a.seq_length), "--epochs_num", "1000", "--max_steps", str(a.steps), "--warmup", "0.1",
                "--precision", a.precision, "--no_progress", "--report_steps", str(10 ** 6), "--seed", str(a.seed)]
        self.args = args = cli.build_parser("classification").parse_args(argv)
        args.output_model_path = None  # nothing written: a round is steps, not a run
        self.device = torch.device("cpu")
        self.precision, self.why = resolve_precision(args.precision, self.device)
        self.dtype = DTYPES[self.precision]
        state = cli.check_finetuned_model(init_path, "run_classifier.py")
        meta = core.read_finetune_meta(init_path)
        self.task = task = cli.make_task("classification", args, cli.D.Encoder(cli._build_tokenizer(args)), meta)
        examples = task.read(train_path, labeled=True, train=True)
        self.feats = task.encode(examples, train=True)
        config, _, _ = core.load_backbone(None, init_path[:-4] + "_config.json", cli._embedding_rows(state, 0))
        self.model = task.build_model(config, cli._embedding_rows(state, 0))
        core.load_finetuned(self.model, init_path)
        self.stamps = []
        collate = task.collate

        def timed_collate(feats):  # core.train collates each step's batch as the step starts
            self.stamps.append((time.perf_counter(), len(feats)))
            return collate(feats)

        task.collate = timed_collate

    def round(self):
        """-> (seconds, examples) of the round's steps after the first."""
        self.stamps = []
        self.core.train(self.task, self.model, self.feats, self.args, self.device, self.dtype)
        end = time.perf_counter()
        return end - self.stamps[1][0], sum(n for _, n in self.stamps[1:])


# ====================================================================== transformers
def our_loop_on_book_review(prefix, steps, examples=4000, seed=7):
    """-> (work directory, Ours): this project's fine-tuning loop on the first `examples` book_review reviews from
    the benchmark's initial BERT-mini, with the benchmark's settings (for the scripts that time one lever of it)."""
    args = argparse.Namespace(examples=examples, seq_length=128, batch_size=32, learning_rate=1e-4, steps=steps,
                              precision="auto", seed=seed)
    work = tempfile.mkdtemp(prefix=prefix)
    train_path = os.path.join(work, "train.tsv")
    write_subset(os.path.join(BOOK_REVIEW, "train.tsv"), train_path, examples)
    _, init_path = make_initial_model(work, seed)
    return work, Ours(init_path, train_path, args)


class Theirs:
    """transformers' Trainer, a round at a time (one train() call of --steps steps)."""

    def __init__(self, hf_dir, rows, a, bf16, work, sampler="group_by_length"):
        import transformers

        self.tf = transformers
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
        self.model = transformers.AutoModelForSequenceClassification.from_pretrained(hf_dir, attn_implementation="sdpa")
        enc = self.tokenizer([r["text_a"] for r in rows], truncation=True, max_length=a.seq_length)
        self.dataset = [{"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
                         "attention_mask": enc["attention_mask"][i], "labels": int(r["label"])}
                        for i, r in enumerate(rows)]
        self.stamps = []
        bench = self

        class Stamps(transformers.TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                bench.stamps.append(time.perf_counter())

        self.targs = transformers.TrainingArguments(
            output_dir=os.path.join(work, f"hf_trainer_{sampler}"), use_cpu=True, bf16=bf16,
            per_device_train_batch_size=a.batch_size, learning_rate=a.learning_rate, max_steps=a.steps,
            warmup_steps=0.1, lr_scheduler_type="linear", weight_decay=0.01, max_grad_norm=1.0,
            train_sampling_strategy=sampler, eval_strategy="no", save_strategy="no",
            logging_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0, seed=a.seed)
        self.trainer = transformers.Trainer(
            model=self.model, args=self.targs, train_dataset=self.dataset, processing_class=self.tokenizer,
            data_collator=transformers.DataCollatorWithPadding(self.tokenizer), callbacks=[Stamps()])
        self.trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # its end-of-train line
        self.batch_size = a.batch_size

    def round(self):
        self.stamps = []
        self.trainer.train()
        return self.stamps[-1] - self.stamps[0], self.batch_size * (len(self.stamps) - 1)


def hf_predictor(hf_dir, texts, batch_size, dtype):
    import transformers

    pipe = transformers.pipeline("text-classification", model=hf_dir, tokenizer=hf_dir, device="cpu", dtype=dtype)
    label2id = pipe.model.config.label2id

    def predict():
        return [label2id[o["label"]] for o in pipe(texts, batch_size=batch_size)]
    return predict


def median_rate(xs):
    return statistics.median(n / t for t, n in xs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=4000, help="training reviews (the first N of train.tsv)")
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per round")
    p.add_argument("--rounds", type=int, default=6, help="training rounds of each side (the first is a warm-up)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="uer_like's --precision; transformers gets bf16=True when it resolves to bf16")
    p.add_argument("--infer_examples", type=int, default=1000, help="test reviews predicted (the first N of test.tsv)")
    p.add_argument("--infer_batch_size", type=int, default=64)
    p.add_argument("--infer_rounds", type=int, default=3)
    p.add_argument("--hf_default_sampler", action="store_true",
                   help="also time the Trainer with its default sampler (random batches, dynamic padding: no "
                        "grouping by length), in the same rounds; the ratio stays against group_by_length")
    p.add_argument("--also_full_encoder", action="store_true",
                   help="also time uer_like with the classifier's last layer computed at every position (the "
                        "encoder before first_only), in the same rounds, training and inference")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--skip_train", action="store_true", help="inference only (on the initial weights)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile one training round of each side and print its top N ops")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args()
    if a.steps < 3 or a.rounds < 2:
        sys.exit("--steps must be at least 3 and --rounds at least 2")
    if a.threads:
        torch.set_num_threads(a.threads)
    from machine import cpu_description
    from uer_like.training.memory import cap_shape_caches
    import transformers

    cap_shape_caches()  # as finetune/run_classifier.py does (process-wide: both sides run under it)
    from uer_like.finetune.tasks import set_quiet

    set_quiet(True)  # no per-round log lines from the fine-tuning loop
    transformers.logging.set_verbosity_error()

    work = tempfile.mkdtemp(prefix="finetune_speed_")
    train_path = os.path.join(work, "train.tsv")
    rows = write_subset(os.path.join(BOOK_REVIEW, "train.tsv"), train_path, a.examples)
    hf_dir, init_path = make_initial_model(work, a.seed)
    ours = Ours(init_path, train_path, a)
    bf16 = ours.precision == "bf16"
    theirs = Theirs(hf_dir, rows, a, bf16, work)
    sides = [("uer_like", ours), ("transformers", theirs)]
    if a.hf_default_sampler:
        sides.append(("transformers random", Theirs(hf_dir, rows, a, bf16, work, sampler="random")))
    full = None
    if a.also_full_encoder:
        full = Ours(init_path, train_path, a)
        full.model.encoder.computes_first_only = lambda: False
        sides.append(("uer_like full encoder", full))
    cpu = cpu_description()
    print(f"CPU: {cpu}; {torch.get_num_threads()} torch threads; torch {torch.__version__}, transformers "
          f"{transformers.__version__}; uer_like precision {ours.precision} ({ours.why}); transformers bf16={bf16}",
          flush=True)
    result = {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "transformers": transformers.__version__, "python": platform.python_version(),
              "precision": ours.precision, "settings": vars(a)}

    if not a.skip_train:
        rates = {name: [] for name, _ in sides}
        for r in range(a.rounds):
            for name, side in sides if r % 2 == 0 else sides[::-1]:
                t, n = side.round()
                print(f"round {r + 1} {name}: {n / t:,.1f} examples/s ({n} examples, {t:.2f} s)"
                      + (" (warm-up)" if r == 0 else ""), flush=True)
                if r:
                    rates[name].append((t, n))
        train = {k: median_rate(v) for k, v in rates.items()}
        train["ratio"] = train["uer_like"] / train["transformers"]
        if a.hf_default_sampler:
            train["ratio vs random"] = train["uer_like"] / train["transformers random"]
        if full is not None:
            train["first_only speed-up"] = train["uer_like"] / train["uer_like full encoder"]
        result["train"] = train
        print(f"training: uer_like {train['uer_like']:,.1f} examples/s, transformers {train['transformers']:,.1f} "
              f"examples/s: {train['ratio']:.2f}x" + (f"; transformers with random batches "
              f"{train['transformers random']:,.1f} examples/s: {train['ratio vs random']:.2f}x"
              if a.hf_default_sampler else ""), flush=True)
        if a.profile:
            from torch.profiler import ProfilerActivity, profile

            for name, side in sides:
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    side.round()
                print(f"\nprofile: {name}, one round of {a.steps} steps (self CPU time)")
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.profile,
                                                max_name_column_width=48))

    # ------------------------------------------------------------------ inference
    from uer_like.finetune.core import save_finetuned
    from uer_like.io.hf_tasks import export_finetuned

    tuned = os.path.join(work, "tuned.bin")
    save_finetuned(ours.model, tuned, ours.task.meta())
    export_finetuned(tuned, os.path.join(work, "hf_tuned"), vocab=VOCAB)
    hf_tuned = os.path.join(work, "hf_tuned")
    texts = [r["text_a"] for r in write_subset(os.path.join(BOOK_REVIEW, "test.tsv"), os.path.join(work, "test.tsv"),
                                                a.infer_examples)]
    from uer_like.finetune.predict import Predictor

    mine = Predictor(tuned, batch_size=a.infer_batch_size, device="cpu", precision=a.precision, vocab_path=VOCAB)
    predictors = {"uer_like": lambda: mine.predict(texts),
             "transformers fp32": hf_predictor(hf_tuned, texts, a.infer_batch_size, torch.float32),
             "transformers bf16": hf_predictor(hf_tuned, texts, a.infer_batch_size, torch.bfloat16)}
    if full is not None:  # the same weights, the last layer at every position
        plain = Predictor(tuned, batch_size=a.infer_batch_size, device="cpu", precision=a.precision,
                          vocab_path=VOCAB)
        plain.model.encoder.computes_first_only = lambda: False
        predictors["uer_like full encoder"] = lambda: plain.predict(texts)
    preds, times = {}, {k: [] for k in predictors}
    for r in range(a.infer_rounds + 1):
        for name, fn in predictors.items():
            t = time.perf_counter()
            preds[name] = fn()
            dt = time.perf_counter() - t
            print(f"inference round {r + 1} {name}: {len(texts) / dt:,.1f} examples/s" + (" (warm-up)" if r == 0 else ""),
                  flush=True)
            if r:
                times[name].append((dt, len(texts)))
    infer = {k: median_rate(v) for k, v in times.items()}
    best = max(("transformers fp32", "transformers bf16"), key=infer.get)
    infer["ratio"] = infer["uer_like"] / infer[best]
    infer["ratio_vs"] = best
    if full is not None:
        infer["first_only speed-up"] = infer["uer_like"] / infer["uer_like full encoder"]
    for k in [k for k in predictors if k != "uer_like"]:
        infer[f"agreement with {k}"] = sum(int(x == y) for x, y in zip(preds["uer_like"], preds[k])) / len(texts)
    result["inference"] = infer
    print(f"inference: uer_like {infer['uer_like']:,.1f} examples/s, transformers fp32 "
          f"{infer['transformers fp32']:,.1f}, bf16 {infer['transformers bf16']:,.1f}: {infer['ratio']:.2f}x "
          f"({best}); same labels: {infer['agreement with transformers fp32']:.2%} (fp32), "
          f"{infer['agreement with transformers bf16']:.2%} (bf16)")
    print(json.dumps(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
