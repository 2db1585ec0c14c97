#!/usr/bin/env python
r"""Adapt a pretrained model to a new vocabulary (UER-py's dynamic_vocab_adapter.py).

    python scripts/dynamic_vocab_adapter.py --old_model_path models/google_model.bin \
        --old_vocab_path models/google_zh_vocab.txt --new_vocab_path models/my_vocab.txt \
        --new_model_path models/my_model.bin

The rows of every token both vocabularies hold are copied, bit for bit, into the new ids: the word embedding,
the MLM (and LM) output layer and its bias. New tokens get normal(0, --init_std) rows and bias 0 (drawn with
--seed); tokens only in the old vocabulary are dropped. Everything else is kept. This is
uer_like.io.resize_vocab. --old_model_path: any format uer_like.load_model reads (--config_path for UER
checkpoints); --old_vocab_path: the vocabulary it was trained with (default: its tokenizer's). The new model
is written in --output_format (default: by --new_model_path's ending: .bin uer, .safetensors, a directory hf).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.cli import add_model_flags
    from uer_like.flags import SEED, Float, Parser
    from uer_like.io.formats import writable

    p = Parser(description=__doc__)
    p.add_argument("--old_model_path", required=True, help="the pretrained model")
    p.add_argument("--config_path", default=None, help="UER config of a UER checkpoint (default: the one beside it)")
    p.add_argument("--old_vocab_path", default=None, help="its vocabulary (default: the model's own vocab.txt)")
    p.add_argument("--new_vocab_path", required=True)
    p.add_argument("--new_model_path", required=True)
    p.add_argument("--output_format", default=None, choices=writable(), help="default: by --new_model_path's ending")
    p.add_argument("--init_std", type=Float(min=0, max=10), default=0.02, help="std of the new tokens' rows")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the new rows' normal draws")
    add_model_flags(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _run(args):
    from uer_like.cli import model_flag_overrides
    from uer_like.io import load_model, resize_vocab, save_model
    from uer_like.io.tokenizer import model_tokenizer
    from uer_like.tokenizers.vocab import Vocab

    new_vocab = Vocab.load(args.new_vocab_path, required=())
    model = load_model(args.old_model_path, config=args.config_path, config_overrides=model_flag_overrides(args))
    if args.old_vocab_path:
        old_vocab = Vocab.load(args.old_vocab_path, required=())
    else:  # the model directory's own tokenizer's vocabulary, else the Google Chinese one
        old_vocab = model_tokenizer(model).vocab
    new_model, report = resize_vocab(model, old_vocab, new_vocab, init_std=args.init_std, seed=args.seed)
    out = save_model(new_model, args.new_model_path, format=args.output_format, vocab=new_vocab)
    print(f"{report['kept']} tokens kept, {len(report['new'])} new, {report['dropped']} dropped -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
