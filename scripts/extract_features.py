#!/usr/bin/env python
"""Text features from released weights (UER, Hugging Face, safetensors or TF checkpoints).

    python scripts/extract_features.py --model hf_dir --input texts.txt --output feats.npy --pooling mean

--input: one text per line; a tab separates a sentence pair. --output: .npy (pooled, [n, hidden]) or
.npz (--pooling none: one [tokens, hidden] array per line, named f0, f1, ...).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    from uer_like.cli import add_model_flags, model_flag_overrides
    from uer_like.flags import COUNT, Int, Parser

    p = Parser(description=__doc__)
    p.add_argument("--model", required=True, help="checkpoint file or directory")
    p.add_argument("--config", help="UER config for UER checkpoints")
    p.add_argument("--vocab_path", help="vocab.txt (default: the release's own)")
    p.add_argument("--spm_model_path", help="SentencePiece model whose pieces are the vocabulary (word-based "
                                            "releases, as UER-py)")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--pooling", default="mean", choices=["first", "mean", "max", "last", "none"])
    p.add_argument("--seq_length", type=Int(min=3), default=None,
                   help="longest input in tokens (default: min(128, the model's max_seq_length)); a value above the "
                        "model's position embedding is an error")
    p.add_argument("--batch_size", type=COUNT, default=32)
    add_model_flags(p)
    args = p.parse_args(argv)

    import numpy as np

    from uer_like.errors import UerLikeError
    from uer_like.io import load_model
    from uer_like.io.features import extract_features

    try:
        model = load_model(args.model, config=args.config, vocab=args.vocab_path, seq_length=args.seq_length,
                           vocab_size=_spm_size(args.spm_model_path),
                           config_overrides=model_flag_overrides(args))
        if args.seq_length is None:
            args.seq_length = min(128, model.config.max_seq_length)
        with open(args.input, encoding="utf-8") as f:
            texts = [tuple(line.rstrip("\n").split("\t", 1)) if "\t" in line else line.rstrip("\n") for line in f]
        texts = [t for t in texts if t]
        feats = extract_features(model, texts, vocab_path=args.vocab_path, seq_length=args.seq_length,
                                 pooling=args.pooling, batch_size=args.batch_size, spm_model_path=args.spm_model_path)
    except UerLikeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.pooling == "none":
        np.savez(args.output, **{f"f{i}": a for i, a in enumerate(feats)})
    else:
        np.save(args.output, feats)
    print(f"{len(texts)} texts -> {args.output}")
    return 0


def _spm_size(spm_model_path):
    if not spm_model_path:
        return None
    from uer_like.tokenizers.spm import load_processor

    return load_processor(spm_model_path).GetPieceSize()


if __name__ == "__main__":
    sys.exit(main())
