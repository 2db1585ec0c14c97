#!/usr/bin/env python
"""Write a SimCSE model (finetune/run_simcse.py) as a sentence-transformers directory:

    python scripts/export_sentence_transformers.py models/simcse.bin models/simcse_st [--pooling mean]

then `SentenceTransformer("models/simcse_st").encode(texts)`. The pooling defaults to the one the model was
trained with (MODEL_finetune.json beside it). See uer_like/finetune/st_export.py for the layout.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    from uer_like.errors import UerLikeError
    from uer_like.finetune.st_export import POOLING_MODES, export_sentence_transformers

    p = argparse.ArgumentParser(description="Export a sentence encoder as a sentence-transformers directory.")
    p.add_argument("model", help="the model (a SimCSE model from run_simcse.py, or anything load_model reads)")
    p.add_argument("output_dir")
    p.add_argument("--pooling", choices=list(POOLING_MODES), default=None,
                   help="default: the model's (its MODEL_finetune.json), else first ([CLS])")
    p.add_argument("--max_seq_length", type=int, default=None, help="default: the model's fine-tuning seq_length")
    p.add_argument("--config_path", default=None)
    p.add_argument("--vocab_path", default=None, help="written as the directory's tokenizer")
    args = p.parse_args(argv)
    try:
        out = export_sentence_transformers(args.model, args.output_dir, args.pooling, args.max_seq_length,
                                           args.config_path, args.vocab_path)
    except UerLikeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"sentence-transformers directory written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
