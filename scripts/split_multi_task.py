#!/usr/bin/env python
r"""One dataset's model out of a multi-task classifier (finetune/run_classifier_mt.py).

    python scripts/split_multi_task.py --load_model_path models/mt.bin --dataset_id 1 \
        --output_model_path models/dataset1.bin
    python scripts/convert.py --input models/dataset1.bin --output models/dataset1_hf --to hf

The shared encoder and dataset i's head (output_layers_1.i, output_layers_2.i, renamed output_layer_1/2) are
written as a run_classifier.py model, with its _config.json and _finetune.json: it runs with
finetune/run_classifier.py and exports to transformers as ...ForSequenceClassification (transformers has no
multi-head classifier).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.flags import Int, Parser

    p = Parser(description=__doc__)
    p.add_argument("--load_model_path", required=True, help="a model written by finetune/run_classifier_mt.py")
    p.add_argument("--dataset_id", type=Int(min=0), required=True, help="the dataset whose head is kept (0-based)")
    p.add_argument("--output_model_path", required=True, help="the run_classifier.py model written")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _run(args):
    from uer_like.errors import CheckpointError
    from uer_like.finetune.multi_task import split_heads

    if not os.path.isfile(args.load_model_path):
        raise CheckpointError(f"--load_model_path {args.load_model_path}: no such file")
    out = split_heads(args.load_model_path, args.output_model_path, args.dataset_id)
    print(f"dataset {args.dataset_id} of {args.load_model_path} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
