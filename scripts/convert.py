#!/usr/bin/env python
"""Convert checkpoints between UER, Hugging Face, safetensors (and from Google TF).

    python scripts/convert.py --input models/bert.bin --config bert/base --output out/hf --to hf
    python scripts/convert.py --input hf_dir --output model.bin --to uer
    python scripts/convert.py --input electra.bin --electra_part discriminator --output disc.bin --to uer
    python scripts/convert.py --input google/bert_model.ckpt --output model.safetensors --to safetensors
    python scripts/convert.py --input old_zoo_model.bin --config models/bert_base_config.json \
        --embedding word_pos_seg --encoder transformer --target bert --output new.bin --to uer --layout uer

The input format is detected (UER .bin/.pt/.safetensors, Hugging Face directory, TF checkpoint).
--to uer writes UER-py's key names in a torch .bin (+ NAME_config.json); --to safetensors the same names
in a .safetensors file; --to hf a directory transformers loads (with the tokenizer files). UER files of every
UER-py era are read (their layout detected from the tensor names); --layout picks the era written.
UER-py's model flags (--embedding, --encoder, --target, ...) override the config, as in UER-py.
A model fine-tuned by finetune/run_*.py (MODEL_finetune.json beside it) converts --to hf as a transformers task
class (ForSequenceClassification, ForTokenClassification, ForQuestionAnswering, ForMultipleChoice), and such
a directory converts back (--to uer) to a fine-tuned model finetune/ runs; --to uer / --to safetensors rewrite
such a model in the other UER format, its task head, MODEL_config.json and MODEL_finetune.json kept.
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.cli import add_model_flags
    from uer_like.flags import Parser
    from uer_like.io.formats import writable
    from uer_like.io.uer import LAYOUTS

    p = Parser(description=__doc__)
    p.add_argument("--input", required=True, help="checkpoint file, Hugging Face directory or TF checkpoint")
    p.add_argument("--output", required=True, help="output file (uer, safetensors) or directory (hf)")
    p.add_argument("--to", required=True, choices=writable())
    p.add_argument("--config", help="UER config (name in configs/ or path) for UER input; HF/Google config for others")
    p.add_argument("--vocab_path", help="vocabulary to check against the checkpoint and to write for --to hf")
    p.add_argument("--tf_model", choices=["discriminator", "generator"], help="which half of an ELECTRA TF checkpoint")
    p.add_argument("--electra_part", choices=["discriminator", "generator"],
                   help="an ELECTRA pretraining model (target 'electra'): convert only this half (without it, --to hf "
                        "writes OUTPUT/discriminator and OUTPUT/generator, --to uer the whole model)")
    p.add_argument("--no_strict", action="store_true", help="load what matches; print missing/unexpected keys")
    p.add_argument("--layout", choices=LAYOUTS, default=None,
                   help="UER key names of a UER-py era for --to uer/safetensors: uer (since July 2023), uer_2023 "
                        "(Feb 2022 - July 2023), uer_2021 / uer_2021_albert (before 2022); default: the input's "
                        "layout when it is a UER file, else uer")
    add_model_flags(p)
    return p


def main(argv=None):
    from uer_like.cli import model_flag_overrides

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from uer_like.errors import ConfigError, UerLikeError
    from uer_like.io import hf_tasks, load_model, save_model
    from uer_like.io.formats import LoadInfo

    try:
        if args.to == "hf" and not os.path.isdir(args.input) and hf_tasks.read_meta(args.input) is not None:
            out = hf_tasks.export_finetuned(args.input, args.output, config=args.config, vocab=args.vocab_path)
            print(f"{args.input} (fine-tuned {hf_tasks.read_meta(args.input)['task']}) -> {out} (hf)")
            return 0
        if args.to != "hf" and not os.path.isdir(args.input) and hf_tasks.read_meta(args.input) is not None:
            if args.layout not in (None, "uer"):
                raise ConfigError(f"--layout {args.layout}: {args.input} is a fine-tuned model, written in the 'uer' "
                                  "layout only")
            out = hf_tasks.convert_finetuned(args.input, args.output, args.to, config=args.config)
            print(f"{args.input} (fine-tuned {hf_tasks.read_meta(args.input).get('task')}) -> {out} ({args.to})")
            return 0
        if args.to != "hf" and hf_tasks.is_task_dir(args.input):
            out = hf_tasks.import_finetuned(args.input, args.output)
            print(f"{args.input} (Hugging Face task model) -> {out} (fine-tuned, uer)")
            return 0
        model = load_model(args.input, config=args.config, strict=not args.no_strict, vocab=args.vocab_path,
                           tf_model=args.tf_model, config_overrides=model_flag_overrides(args))
        if args.electra_part:
            from uer_like.targets.electra import electra_parts

            if "electra" not in model.config.target:
                raise ConfigError(f"--electra_part: {args.input} is not an ELECTRA pretraining model (targets "
                                  f"{model.config.target})")
            info = model.load_info
            model = electra_parts(model)[0 if args.electra_part == "discriminator" else 1]
            model.load_info = LoadInfo(format=info.format, path=info.path, names=info.names)
        out = save_model(model, args.output, format=args.to, vocab=args.vocab_path, layout=args.layout)
    except UerLikeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = model.load_info
    src = info.format + (f", layout {info.layout}" if info.layout else "")
    print(f"{args.input} ({src}) -> {out} ({args.to}); targets {model.config.target}; "
          f"{sum(p.numel() for p in model.parameters())} parameters"
          + (f"; missing {info.missing}" if info.missing else "")
          + (f"; unexpected {info.unexpected}" if info.unexpected else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
