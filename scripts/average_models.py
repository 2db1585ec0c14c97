#!/usr/bin/env python
r"""The element-wise mean of checkpoints of one architecture (UER-py's average_models.py).

    python scripts/average_models.py --model_list_path out/model.bin-90000 out/model.bin-100000 \
        --config_path bert/base_config.json --output_model_path out/model_avg.bin

--model_list_path: two checkpoints or more, in any format uer_like.load_model reads (mixed formats allowed:
they are compared and averaged under the project's tensor names). Floating-point tensors are averaged in
float64 and written in the first checkpoint's dtype, with its config. Checkpoints whose tensors differ in
name or shape are refused in one line naming the first differing tensor. --output_format: uer (a torch .bin
with UER-py's names), safetensors, or hf (a transformers directory); default: by --output_model_path's
ending (.bin/.pt: uer, .safetensors: safetensors, a directory or no extension: hf).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.cli import add_model_flags, add_threads_arg
    from uer_like.flags import Parser
    from uer_like.io.formats import writable

    p = Parser(description=__doc__)
    p.add_argument("--model_list_path", nargs="+", required=True, help="the checkpoints to average (two or more)")
    p.add_argument("--config_path", default=None, help="UER config of UER checkpoints (default: the one beside each)")
    p.add_argument("--output_model_path", required=True)
    p.add_argument("--output_format", default=None, choices=writable(),
                   help="default: by --output_model_path's ending")
    add_threads_arg(p)
    add_model_flags(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _run(args):
    from uer_like.cli import apply_threads, model_flag_overrides
    from uer_like.errors import CheckpointError
    from uer_like.io import average_models, save_model

    if len(args.model_list_path) < 2:
        raise CheckpointError(f"--model_list_path names {len(args.model_list_path)} checkpoint; average two or more")
    for path in args.model_list_path:
        if not os.path.exists(path):
            raise CheckpointError(f"--model_list_path: {path}: no such file or directory")
    apply_threads(args)
    model = average_models(args.model_list_path, config=args.config_path,
                           config_overrides=model_flag_overrides(args))
    out = save_model(model, args.output_model_path, format=args.output_format)
    print(f"average of {len(args.model_list_path)} checkpoints -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
