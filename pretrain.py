#!/usr/bin/env python
"""Pretrain a model on a preprocessed dataset (one CPU or GPU; torchrun for many).

    python pretrain.py --config bert/tiny_config.json --total_steps 1000            # bundled sample corpus
    python pretrain.py --config bert/base_config.json --dataset_path dataset.bin \\
        --vocab_path models/google_zh_vocab.txt --output_model_path models/my_bert.bin
    torchrun --nproc_per_node 8 pretrain.py --config bert/base_config.json --dataset_path dataset.bin ...
    python pretrain.py ... --dev_dataset_path dev.bin --eval_steps 1000     # held-out loss, ppl, accuracy

With no --dataset_path, the bundled sample corpus (corpora/) is preprocessed into .cache/ (once) and used
(a prefix LM, data_processor prefixlm, reads each of its sentences as the source of the next one).
"""
import argparse
import hashlib
import json
import os
import sys

from uer_like.cli import add_model_flags, add_threads_arg, apply_threads, model_flag_overrides, run_main, setup_logging
from uer_like.config import load_config
from uer_like.data.masking import STRATEGY_KEYS
from uer_like.errors import ConfigError
from uer_like.flags import DROPOUT, FRACTION_OPEN, Int, Parser, add_flags, add_train_flags
from uer_like.resources import DEFAULT_VOCAB, SENTINEL_VOCAB
from uer_like.training.args import TrainArgs
from uer_like.training.loop import STOPPED_EXIT

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE_CORPUS = os.path.join(HERE, "corpora", "CLUECorpusSmall_bert_sampled.txt")


def build_parser():
    p = Parser(description=__doc__)
    add_flags(p, TrainArgs)  # every argument of a run, declared once (uer_like/training/args.py)
    add_train_flags(p, ("fp16",))  # UER-py's --precision fp16
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


def sentence_pairs(corpus):
    """A BERT-format corpus (documents of one sentence a line, a blank line between them) as `source<TAB>target`
    lines, each sentence and the next of its document, written once into .cache/ -> its path."""
    path = os.path.join(HERE, ".cache", "sample_sentence_pairs.txt")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(corpus, encoding="utf-8") as f:
            docs = [[s.strip().replace("\t", " ") for s in d.split("\n") if s.strip()] for d in f.read().split("\n\n")]
        pairs = "".join(f"{a}\t{b}\n" for d in docs for a, b in zip(d, d[1:]))
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(pairs)
        os.replace(path + ".tmp", path)
    return path


def default_dataset(config_name, seq_length, whole_word, overrides):
    """Preprocess the bundled sample corpus once into .cache/ and return its path (rank 0 only: see main)."""
    from uer_like.data.preprocess import run_preprocess  # only for this default: the preprocessor's modules

    config = load_config(config_name, **overrides)
    processor = config.data_processor
    corpus, corpus_format = SAMPLE_CORPUS, "bert"
    if processor == "prefixlm":  # source<TAB>target lines: each sentence of a document and the next one
        corpus, corpus_format = sentence_pairs(SAMPLE_CORPUS), "line"
    opts = dict(corpus_path=corpus, vocab_path=SENTINEL_VOCAB if processor == "t5" else DEFAULT_VOCAB,
                data_processor=processor, seq_length=seq_length, dup_factor=1, dynamic_masking=True,
                whole_word_masking=whole_word, corpus_format=corpus_format)
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
    # the training code (the model's modules, the data pipeline): imported once the flags are checked
    from uer_like.training import distributed
    from uer_like.training.trainer import train

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
    targs = TrainArgs.from_flags(args, dataset_path=dataset, precision="fp16" if args.fp16 else args.precision,
                                 config_overrides=overrides)
    targs.validate()
    if targs.tensorboard_dir is None:
        targs.tensorboard_dir = os.path.join(targs.checkpoint_dir, "tensorboard")
    step = train(targs)
    if step < targs.total_steps:  # stopped by SIGTERM, checkpoint saved: not a finished run
        sys.exit(STOPPED_EXIT)


if __name__ == "__main__":
    sys.exit(run_main(main))
