#!/usr/bin/env python
"""Pretrain a model on a preprocessed dataset (one CPU or GPU; torchrun for many).

    python pretrain.py --config bert/tiny_config.json --total_steps 1000            # bundled sample corpus
    python pretrain.py --config bert/base_config.json --dataset_path dataset.bin \\
        --vocab_path models/google_zh_vocab.txt --output_model_path models/my_bert.bin
    torchrun --nproc_per_node 8 pretrain.py --config bert/base_config.json --dataset_path dataset.bin ...
    python pretrain.py ... --dev_dataset_path dev.bin --eval_steps 1000     # held-out loss, ppl, accuracy

With no --dataset_path, the bundled sample corpus (corpora/) is preprocessed into .cache/ (once) and used.
"""
import argparse
import hashlib
import json
import os
import sys

from uer_like.cli import add_model_flags, add_threads_arg, apply_threads, model_flag_overrides, run_main, setup_logging
from uer_like.errors import ConfigError
from uer_like.flags import DROPOUT, FRACTION_OPEN, Float, Int, Parser, add_train_flags
from uer_like.resources import DEFAULT_VOCAB, SENTINEL_VOCAB

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE_CORPUS = os.path.join(HERE, "corpora", "CLUECorpusSmall_bert_sampled.txt")
STOPPED_EXIT = 143  # 128 + SIGTERM: what a shell reports for a process the signal ended


def build_parser():
    from uer_like.io.formats import writable

    p = Parser(description=__doc__)
    p.add_argument("--config", "--config_path", dest="config", default="bert/base_config.json",
                   help="a UER-format JSON config: a path or a name in configs/ (e.g. bert/base_config.json)")
    p.add_argument("--dataset_path", default=None, help="made by preprocess.py (default: the bundled sample corpus)")
    p.add_argument("--vocab_path", default=None, help="checked against the dataset's vocabulary")
    p.add_argument("--ngram_path", default=None,
                   help="encoder 'zen': ZEN's n-gram lexicon (ngram.txt), matched in every batch")
    p.add_argument("--spm_model_path", default=None,
                   help="SentencePiece model of a word-based dataset (preprocess.py --spm_model_path); checked "
                        "against the dataset's vocabulary")
    p.add_argument("--pretrained_model_path", default=None, help="initialise from these weights (UER format)")
    p.add_argument("--output_model_path", default="output/model.bin", help="final weights (see --output_format)")
    p.add_argument("--output_format", default="uer", choices=writable(),
                   help="final weights: uer (UER-py's .bin + NAME_config.json, the default), safetensors (same names "
                        "in NAME.safetensors), hf (a directory transformers loads: config, weights, tokenizer files; "
                        "named as --output_model_path without .bin)")
    p.add_argument("--checkpoint_dir", default=None, help="default: <output_model_path without .bin>_checkpoints")
    add_train_flags(p, ("resume", "total_steps", "batch_size", "accumulation_steps", "global_batch_size",
                        "learning_rate", "warmup", "scheduler", "optimizer", "weight_decay", "max_grad_norm", "seed",
                        "report_steps", "save_checkpoint_steps", "keep_checkpoints", "max_nonfinite_steps"),
                    help={"resume": "auto (continue from checkpoint_dir if it has checkpoints), never, or a checkpoint "
                                    "file",
                          "batch_size": "per process and micro-step", "warmup": "fraction of total_steps"})
    p.add_argument("--verify_dataset", action="store_true",
                   help="read the whole dataset at start: section checksums, offsets, every id below the vocabulary "
                        "size (opening it checks only the header, in constant time)")
    add_train_flags(p, ("precision", "fp16"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--fsdp", action="store_true", help="shard parameters, gradients and optimizer state (torchrun)")
    add_train_flags(p, ("device",))
    p.add_argument("--tensorboard_dir", default=None, help="default: <checkpoint_dir>/tensorboard")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--trace_path", default=None, help="write every step's loss, lr and sample ids (JSON lines)")
    p.add_argument("--allow_dataset_change", action="store_true",
                   help="resume a checkpoint that was trained on another dataset than --dataset_path (refused "
                        "otherwise: the checkpoint records its dataset's checksum)")
    p.add_argument("--dev_dataset_path", default=None,
                   help="held-out text made into a dataset by preprocess.py with the training dataset's options "
                        "(processor, vocabulary, seq_length, masking): evaluated every --eval_steps and at the end")
    add_train_flags(p, ("dev_fraction", "eval_steps", "eval_batches"), help={
        "dev_fraction": "hold out this fraction of the training dataset's instances (chosen from --seed, never "
                        "trained on) as the dev set; recorded in the checkpoints: a resumed run keeps it "
                        "(default: the checkpoint's, else none)",
        "eval_steps": "evaluate the dev set every N steps and at the end (default: --save_checkpoint_steps); "
                      "figures in the log, tensorboard and <checkpoint_dir>/dev_eval.jsonl, the lowest dev loss "
                      "kept as <checkpoint_dir>/best.pt",
        "eval_batches": "dev batches (of --batch_size) per evaluation, the same ones each time (0: the whole set)"})
    p.add_argument("--allow_dev_split_change", action="store_true",
                   help="resume a checkpoint with another --dev_fraction than it was trained with (refused "
                        "otherwise: instances held out would be trained on)")
    p.add_argument("--distributed_timeout", type=Float(min=1, max=7 * 24 * 3600), default=1800.0,
                   help="seconds a collective waits for a rank that has stopped answering (a frozen worker) before "
                        "the whole run fails")
    p.add_argument("--seq_length", type=Int(min=8), default=128, help="for the bundled-corpus default dataset only")
    p.add_argument("--whole_word_masking", action="store_true", help="for the bundled-corpus default dataset only")
    p.add_argument("--dropout", type=DROPOUT, default=None, help="override the config's dropout")
    p.add_argument("--world_size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--gpu_ranks", nargs="*", default=None, help=argparse.SUPPRESS)
    p.add_argument("--log_level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    add_threads_arg(p)
    add_model_flags(p)
    g = p.add_argument_group("span masking (UER-py's pretrain flags, as its T5 and BART instructions give them: they "
                             "set the config's keys, which the dataset's masking, made by preprocess.py, must match)")
    g.add_argument("--span_masking", action="store_const", const=True, default=None)
    g.add_argument("--span_geo_prob", type=FRACTION_OPEN, default=None)
    g.add_argument("--span_max_length", type=Int(min=1, max=64), default=None)
    return p


def default_dataset(config_name, seq_length, whole_word, overrides):
    """Preprocess the bundled sample corpus once into .cache/ and return its path (rank 0 only: see main)."""
    from uer_like.config import load_config
    from uer_like.data.preprocess import run_preprocess

    from uer_like.data.masking import STRATEGY_KEYS

    config = load_config(config_name, **overrides)
    processor = config.data_processor
    opts = dict(corpus_path=SAMPLE_CORPUS, vocab_path=SENTINEL_VOCAB if processor == "t5" else DEFAULT_VOCAB,
                data_processor=processor, seq_length=seq_length, dup_factor=1, dynamic_masking=True,
                whole_word_masking=whole_word, corpus_format="bert")
    if processor == "gsg":  # targets as long as the sources (within the model's position table)
        opts["tgt_seq_length"] = seq_length
    # the masking strategy the config pretrains with (PERT's, span, n-gram...) and its parameters
    opts.update({k: True for k in STRATEGY_KEYS if getattr(config, k)})
    strategy = config.masking_strategy
    if strategy == "span":
        opts.update(span_geo_prob=config.span_geo_prob, span_max_length=config.span_max_length)
    elif strategy in ("ngram", "macbert") and config.ngram_probs:
        opts["ngram_probs"] = list(config.ngram_probs)
    elif strategy == "pert":
        opts["pert_window"] = config.pert_window
    key = hashlib.sha256(json.dumps(opts, sort_keys=True).encode()).hexdigest()[:12]
    path = os.path.join(HERE, ".cache", f"sample_{processor}_{seq_length}_{key}.uerds")
    opts["dataset_path"] = path
    if not os.path.exists(path):
        run_preprocess(**opts)
    return path


def main():
    args = build_parser().parse_args()
    apply_threads(args)
    setup_logging(args.log_level if int(os.environ.get("RANK", "0")) == 0 else "WARNING")
    if args.world_size is not None or args.gpu_ranks is not None:
        raise ConfigError("--world_size/--gpu_ranks are UER-py's launcher flags; uer_like uses torchrun: "
                          "torchrun --nproc_per_node N pretrain.py ... (see README, 'Many GPUs and machines')")
    from uer_like.training import distributed
    from uer_like.training.trainer import TrainArgs, train

    overrides = model_flag_overrides(args)
    overrides.update({k: getattr(args, k) for k in ("span_masking", "span_geo_prob", "span_max_length")
                      if getattr(args, k) is not None})
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    dataset = args.dataset_path
    if dataset is None:  # rank 0 prepares it; its failure is every rank's error
        dataset = distributed.run_on_main(
            distributed.setup(args.device),
            lambda: default_dataset(args.config, args.seq_length, args.whole_word_masking, overrides),
            "preparing the bundled-corpus dataset")
    ckpt_dir = args.checkpoint_dir
    tb = args.tensorboard_dir
    targs = TrainArgs(
        dataset_path=dataset, config=args.config, vocab_path=args.vocab_path, spm_model_path=args.spm_model_path,
        ngram_path=args.ngram_path,
        pretrained_model_path=args.pretrained_model_path, output_model_path=args.output_model_path,
        output_format=args.output_format,
        checkpoint_dir=ckpt_dir, total_steps=args.total_steps, batch_size=args.batch_size,
        accumulation_steps=args.accumulation_steps, global_batch_size=args.global_batch_size,
        learning_rate=args.learning_rate, warmup=args.warmup,
        scheduler=args.scheduler, optimizer=args.optimizer, weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm, seed=args.seed, report_steps=args.report_steps,
        save_checkpoint_steps=args.save_checkpoint_steps, keep_checkpoints=args.keep_checkpoints,
        max_nonfinite_steps=args.max_nonfinite_steps, verify_dataset=args.verify_dataset,
        precision="fp16" if args.fp16 else args.precision, compile=args.compile, fsdp=args.fsdp,
        device=args.device, resume=args.resume, tensorboard_dir=tb, deterministic=args.deterministic,
        trace_path=args.trace_path, allow_dataset_change=args.allow_dataset_change,
        distributed_timeout=args.distributed_timeout, dev_dataset_path=args.dev_dataset_path,
        dev_fraction=args.dev_fraction, eval_steps=args.eval_steps, eval_batches=args.eval_batches,
        allow_dev_split_change=args.allow_dev_split_change, config_overrides=overrides)
    targs.validate()
    if targs.tensorboard_dir is None:
        targs.tensorboard_dir = os.path.join(targs.checkpoint_dir, "tensorboard")
    step = train(targs)
    if step < targs.total_steps:  # stopped by SIGTERM, checkpoint saved: not a finished run
        sys.exit(STOPPED_EXIT)


if __name__ == "__main__":
    sys.exit(run_main(main))
