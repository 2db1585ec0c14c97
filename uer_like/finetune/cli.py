"""Command lines of the finetune/run_*.py scripts (UER-py's flags), built from the task registry (tasks.py):
the shared flags below, then the chosen task's own (Task.add_args). A script serving several tasks
(run_classifier.py: classification, regression, multi_label) takes --task.

Modes:
- train: --train_path (and --dev_path to select the best epoch, which is what --output_model_path keeps),
  then --test_path is evaluated with the best model and, with --prediction_path, predicted;
- inference: no --train_path; --load_model_path is a fine-tuned model written by a training run
  (its task settings are read from MODEL_finetune.json beside it); --test_path is evaluated when it
  has labels, and --prediction_path receives the predictions.
"""
import argparse
import contextlib
import json
import logging
import os
import sys
import time

from ..cli import _bool, add_model_flags, add_threads_arg, apply_threads, model_flag_overrides
from ..config import load_config
from ..errors import CheckpointError, ConfigError, DataError, TrainingError, UerLikeError
from ..flags import DROPOUT, Int, Parser, add_train_flags
from ..io.checkpoint import check_tensors, load_into, load_state_dict_file
from ..io.tokenizer import check_rows
from ..io.uer import from_uer_state_dict
from ..outputs import OutputLock, atomic_path, atomic_write, check_writable
from ..registry import TOKENIZERS
from ..resources import resolve
from ..tokenizers import build_tokenizer, detect_tokenizer, file_in, tokenizer_from_dir
from ..training.memory import cap_shape_caches
from ..tokenizers.xlnet import SPM_FILE
from ..training import distributed as dist_utils
from ..training.loop import STOPPED_EXIT, Stopped
from ..training.precision import AMP_CHOICES, choose_precision
from . import core
from . import data as D
from .tasks import get_task, set_quiet, tasks_of_script

DEFAULT_VOCAB = os.path.join("models", "google_zh_vocab.txt")


def build_parser(task_name):
    """The argparse parser of a task: shared flags, then the task's own group (and --task when its script
    serves several tasks)."""
    task_cls = get_task(task_name)
    siblings = tasks_of_script(task_cls.script)
    p = Parser(prog=task_cls.script, description=f"Fine-tune / run: {task_cls.description}.")
    if len(siblings) > 1:
        p.add_argument("--task", choices=siblings, default=task_name,
                       help="the task (default: the fine-tuned model's with --load_model_path); "
                            + "; ".join(f"{n}: {get_task(n).description}" for n in siblings))
    g = p.add_argument_group("model")
    g.add_argument("--pretrained_model_path", default=None,
                   help="pretrained model to start from (anything uer_like.load_model reads); none: random init")
    g.add_argument("--load_model_path", default=None,
                   help="a fine-tuned model of this task (inference, or to continue training)")
    g.add_argument("--output_model_path", default="models/finetuned_model.bin",
                   help="where the best dev checkpoint is saved")
    g.add_argument("--config_path", default=None,
                   help="model config (default: the one beside the model, else bert/base_config.json)")
    g.add_argument("--vocab_path", default=None,
                   help="default: vocab.txt beside/in the pretrained model if there is one, else " + DEFAULT_VOCAB)
    g.add_argument("--spm_model_path", default=None,
                   help="sentencepiece model (default for xlnet: spiece.model in/beside the pretrained model)")
    g.add_argument("--ngram_path", default=None,
                   help="a ZEN model's n-gram lexicon, ngram.txt (default: the one beside --pretrained_model_path, "
                        "or the fine-tuned model's)")
    g.add_argument("--tokenizer", default=None, choices=TOKENIZERS.names(),
                   help="default: the model directory's (its tokenizer_config.json / config.json / files: xlnet for "
                        "an XLNet model, with its input layout a <sep> b <sep> <cls>; roformer_word for RoFormer, "
                        "word_wordpiece for WoBERT; byte_bpe for GPT-2 / RoBERTa-English ...), else bert")
    g.add_argument("--do_lower_case", default=None, type=_bool, metavar="{true,false}",
                   help="lower-case (and strip accents) before WordPiece; default: the vocabulary's directory's "
                        "tokenizer_config.json (a cased release says false), else true")
    g.add_argument("--dropout", type=DROPOUT, default=None, help="override the config's dropout")
    g = p.add_argument_group("data")
    g.add_argument("--train_path", default=None)
    g.add_argument("--dev_path", default=None)
    g.add_argument("--test_path", default=None)
    g.add_argument("--prediction_path", default=None, help="write predictions for --test_path here")
    g.add_argument("--seq_length", type=Int(min=3), default=None,
                   help=f"max tokens per instance (default: the fine-tuned model's, else "
                        f"{task_cls.defaults.get('seq_length', 128)})")
    task_cls.add_args(p.add_argument_group(f"{task_name} task"))
    g = p.add_argument_group("training")
    add_train_flags(g, ("epochs_num", "batch_size", "learning_rate", "warmup", "scheduler", "layerwise_lr_decay",
                        "weight_decay", "max_grad_norm", "max_nonfinite_steps", "max_steps", "seed", "report_steps",
                        "device", "precision"),
                    defaults={"learning_rate": 2e-5, "warmup": 0.1})  # UER-py's for fine-tuning
    g.add_argument("--amp", choices=AMP_CHOICES, default=None,
                   help="deprecated: use --precision (--amp off is --precision fp32, the others the same name)")
    g.add_argument("--fp16", action="store_true", help="deprecated (UER-py's flag): use --precision fp16")
    add_train_flags(g, ("resume", "save_checkpoint_steps"), defaults={"save_checkpoint_steps": None}, help={
        "resume": "auto: continue from the newest training checkpoint in MODEL_checkpoints beside "
                  "--output_model_path when a run was interrupted (the same command again); never: start afresh; "
                  "or a checkpoint path",
        "save_checkpoint_steps": "a training checkpoint every this many steps, besides the one after each epoch "
                                 "(default: after each epoch only); removed when the run ends"})
    add_threads_arg(g)
    g.add_argument("--no_progress", action="store_true", help="no progress bars (log lines instead)")
    g.add_argument("--report_path", default=None,
                   help="JSON report of the run (default: MODEL_report.json beside --output_model_path)")
    g = p.add_argument_group("adversarial training")
    g.add_argument("--use_adv", action="store_true", help="FGM adversarial training on the word embedding")
    g.add_argument("--adv_type", choices=["fgm"], default="fgm", help="the adversarial method")
    add_train_flags(g, ("fgm_epsilon",))
    add_model_flags(p)
    return p


def choose_task(task_name, argv):
    """The task a script runs: --task, else the fine-tuned model's (--load_model_path) when the script serves
    it, else the script's own."""
    siblings = tasks_of_script(get_task(task_name).script)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=None)
    pre.add_argument("--load_model_path", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.task in siblings:
        return known.task
    if known.load_model_path and len(siblings) > 1:
        saved = core.read_finetune_meta(known.load_model_path).get("task")
        if saved in siblings:
            return saved
    return task_name


def _resolve_vocab(path):
    return resolve(path)


def make_task(name, args, enc, meta):
    return get_task(name)(args, enc, meta)


def check_finetuned_model(path, script, task_cls=None):
    """Refuse, in one line, a --load_model_path that is not a model fine-tuned by these scripts (a pretrained
    model or pretraining checkpoint: those go to --pretrained_model_path)."""
    hint = f"to fine-tune from it, pass it as --pretrained_model_path {path}"
    if not os.path.exists(path):
        raise CheckpointError(f"--load_model_path {path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"--load_model_path {path}: a directory, not a fine-tuned model file written by {script} "
                              f"(a pretrained model? {hint})")
    state = load_state_dict_file(path)
    heads = sorted({k.split(".")[1] for k in state if k.startswith("target.") and k.count(".") > 1})
    head_keys = getattr(task_cls, "head_keys", ("output_layer", "crf."))
    if not any(k.startswith(head_keys) for k in state):
        what = f"a pretrained model (pretraining heads: {', '.join(heads)})" if heads else "not a fine-tuned model"
        desc = getattr(task_cls, "head_description", "no fine-tuned task head (output_layer*)")
        raise CheckpointError(f"--load_model_path {path}: {what}, with {desc}; "
                              f"--load_model_path takes a model written by {script}'s training; {hint}")
    check_tensors(state, f"--load_model_path {path}")  # before the task's data is read, and in its own words
    return state


def _feed_encoder_inputs(task, model, args, meta, vocab, task_cls, task_name):
    """Let the task's batches carry the encoder's own fields: the zen encoder's n-grams, matched with its
    lexicon (--ngram_path, else the fine-tuned model's, else the ngram.txt beside --pretrained_model_path)."""
    from ..data.ngram import INPUT_KEYS, NGRAM_FILE, NgramLexicon, input_builder

    encoder = model.config.encoder
    if not task.feeds_encoder_inputs or set(model.input_keys) != set(INPUT_KEYS) or task.enc.pad_left:
        raise ConfigError(f"{task_cls.script} --task {task_name} does not feed encoder '{encoder}' its inputs "
                          f"({', '.join(model.input_keys)}); fine-tune it with run_classifier.py (classification, "
                          "regression, multi_label)")
    path = args.ngram_path or meta.get("ngram_path")
    if path is None and args.pretrained_model_path:
        p = args.pretrained_model_path
        path = os.path.join(p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p)), NGRAM_FILE)
    if path is None:
        raise ConfigError(f"encoder '{encoder}' adds the n-grams of its lexicon: pass --ngram_path (ZEN's ngram.txt)")
    lexicon = NgramLexicon.load(path, vocab).check_rows(model.config.ngram_vocab_size)
    task.extra_inputs = input_builder(lexicon, model.config.max_ngrams)
    task.inputs_meta = {"ngram_path": os.path.abspath(lexicon.path)}
    core.log(f"n-grams of {lexicon.path} ({lexicon.size - 1}) matched in every batch, at most "
             f"{model.config.max_ngrams} per sequence")


def run(task_name, argv=None):
    """Parse a task's command line and run it: one fine-tuning and/or inference run (run_args), or the task's
    own command (Task.command: cross-validation, a grid search, a multi-task run's dataset list), which
    calls run_args in its turn."""
    task_name = choose_task(task_name, argv)
    args = build_parser(task_name).parse_args(argv)
    command = get_task(task_name).command
    if command is not None:
        return command(args, argv)
    return run_args(task_name, args, argv)


def run_args(task_name, args, argv=None):
    """One run of a task on its parsed flags (build_parser(task_name)'s namespace): fine-tune on
    --train_path, and/or evaluate and predict --test_path. -> the run's report (a dict)."""
    args.precision = requested_precision(args)
    # a task that predicts with a pretrained model as it is (prompts, sentence embeddings) needs no training
    untrained = getattr(get_task(task_name), "predicts_untrained", False) and args.pretrained_model_path
    if not args.train_path and not args.load_model_path and not untrained:
        raise ConfigError("nothing to do: give --train_path to fine-tune, or --load_model_path (a fine-tuned model) "
                          "with --test_path/--prediction_path for inference")
    if not args.train_path and not args.test_path:
        raise ConfigError("inference needs --test_path")
    if args.prediction_path and not args.test_path:
        raise ConfigError("--prediction_path writes predictions for --test_path; give --test_path")
    if args.load_model_path and args.pretrained_model_path:
        raise ConfigError("give --pretrained_model_path (a model to fine-tune) or --load_model_path (a fine-tuned "
                          "model), not both")
    check_outputs(args)
    info = dist_utils.setup(args.device) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    lock, finished = None, False
    quiet = set_quiet(info is not None and not info.is_main)
    try:
        # one run per output model (two would overwrite each other); under torchrun rank 0 writes, and holds
        # it (its failure stops the other ranks at once)
        with dist_utils.start_up(info) if info is not None else contextlib.nullcontext():
            if args.train_path and args.output_model_path and (info is None or info.is_main):
                d, name = os.path.split(os.path.abspath(args.output_model_path))
                lock = OutputLock(d, "--output_model_path", error=TrainingError, name=f".{name}.lock").acquire()
        report = _run_checked(task_name, args, argv, info)
        finished = True
        return report
    except Stopped:  # by SIGTERM on some rank, at a step boundary every rank agreed on
        finished = True
        raise
    except RuntimeError as e:
        failure = dist_utils.collective_failure(info, e) if info is not None else None
        if failure is None:
            raise
        raise failure from e
    finally:
        set_quiet(quiet)
        if lock is not None:
            lock.release()
        if info is not None:
            dist_utils.teardown(info, finished=finished)


def requested_precision(args):
    """--precision, or what the deprecated aliases ask for (--fp16: fp16; --amp off: fp32, --amp NAME: NAME)."""
    if args.fp16:
        return "fp16"
    if args.amp is not None:
        return {"off": "fp32"}.get(args.amp, args.amp)
    return args.precision


def _run_checked(task_name, args, argv, info=None):
    cap_shape_caches()  # flat host memory as batch shapes vary (training/memory.py)
    apply_threads(args)
    core.set_seed(args.seed)  # every rank: the same initial weights
    device = info.device if info is not None else core.get_device(args.device)
    main = info is None or info.is_main
    if main and (args.fp16 or args.amp is not None):
        core.logger.warning("%s is deprecated: use --precision %s", "--fp16" if args.fp16 else f"--amp {args.amp}",
                            args.precision)
    dtype = choose_precision(args.precision, device, *((core.log, core.logger.warning) if main else ()))[1]
    task_cls = get_task(task_name)

    loaded_state = None
    meta = {}
    if args.load_model_path:
        loaded_state = check_finetuned_model(args.load_model_path, task_cls.script, task_cls)
        meta = core.read_finetune_meta(args.load_model_path)
        if meta.get("task") and meta["task"] != task_name:
            raise ConfigError(f"{args.load_model_path}: a fine-tuned {meta['task']} model, not a {task_name} model")
    tokenizer = _build_tokenizer(args, meta)
    enc = D.Encoder(tokenizer)
    if args.seq_length is None:
        args.seq_length = meta.get("seq_length", task_cls.defaults.get("seq_length", 128))
    task = make_task(task_name, args, enc, meta)
    report = {"task": task_name, "argv": sys.argv[1:] if argv is None else list(argv), "device": str(device)}

    # ---------------------------------------------------------------- data
    train_ex = dev = None
    if args.train_path:
        train_ex = task.read(args.train_path, labeled=True, train=True)
        train_feats = task.encode(train_ex, train=True)
        if not train_feats:
            raise ConfigError(f"{args.train_path}: no training instance left")
        if args.dev_path:
            dev_ex = task.read(args.dev_path, labeled=True)
            dev = (dev_ex, task.encode(dev_ex))
        core.log(f"train {len(train_ex)} examples" + (f", dev {len(dev[0])}" if dev else ""))
    if args.test_path:  # read before any training, so that its errors come first
        labeled = task.is_labeled(args.test_path)
        test_ex = task.read(args.test_path, labeled=labeled)
        test_feats = task.encode(test_ex)

    # ---------------------------------------------------------------- model
    if args.load_model_path:
        model = load_finetuned_model(task, args, tokenizer, loaded_state)
    else:
        load = getattr(task, "load_backbone", core.load_backbone)  # a task that keeps a pretrained head has its own
        config, backbone, pooler = load(args.pretrained_model_path, args.config_path, len(tokenizer.vocab),
                                        model_flag_overrides(args), vocab_file=_vocab_file(tokenizer))
        if config.max_seq_length < args.seq_length:
            raise ConfigError(f"--seq_length {args.seq_length} exceeds the model's max_seq_length {config.max_seq_length}")
        model = task.build_model(config, len(tokenizer.vocab), backbone=backbone, pooler=pooler)
        core.log(f"model: {'pretrained ' + args.pretrained_model_path if backbone else 'random initialisation'} "
                 f"({config.layers_num} layers, hidden {config.hidden_size}, "
                 f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    if args.train_path and args.output_model_path:  # room for the weights (and their temporary copy)
        check_writable(os.path.dirname(os.path.abspath(args.output_model_path)), "the directory of --output_model_path",
                       need_bytes=4 * sum(p.numel() for p in model.parameters()), error=TrainingError)
    if model.input_keys:  # an encoder with fields of its own (ZEN's n-grams): the task's batches must carry them
        _feed_encoder_inputs(task, model, args, meta, tokenizer.vocab, task_cls, task_name)
    if args.dropout is not None:
        core.set_dropout(model, args.dropout)
    model.to(device)

    # ---------------------------------------------------------------- train
    if args.train_path:
        report["history"] = core.train(task, model, train_feats, args, device, dtype, dev=dev, meta=task.meta(),
                                       info=info)
        report["train_examples"] = len(train_ex)
        if dev is not None and args.output_model_path and main:
            core.load_finetuned(model, args.output_model_path)
            model.to(device)
            best = [r for r in report["history"] if r.get("best")][-1]
            core.log(f"best dev {task.main_metric} {best['dev'][task.main_metric]:.4f} at epoch {best['epoch']}; "
                     f"model saved to {args.output_model_path}")
            report["best_epoch"] = best["epoch"]

    if not main:  # rank 0 evaluates the test set and writes the predictions and the report
        return report

    # ---------------------------------------------------------------- test / predict
    if args.test_path:
        t0 = time.time()
        outputs, preds = core.evaluate(task, model, test_ex, test_feats, args, device, dtype, desc="test")
        if labeled and task.has_gold(test_ex):
            m = task.evaluate(test_ex, preds)
            report["test"] = core._jsonable(m)
            core.log(f"test ({args.test_path}): {task.summary(m)}")
        if args.prediction_path:
            # the whole file or none of it: an interrupted write leaves no partial predictions behind
            with atomic_path(args.prediction_path, TrainingError, "--prediction_path") as tmp:
                task.write(tmp, test_ex, test_feats, outputs, preds)
            core.log(f"predictions for {len(test_ex)} examples written to {args.prediction_path} "
                     f"({time.time() - t0:.1f}s)")
    report_path = _report_path(args)
    if report_path:
        text = json.dumps(report, indent=2, ensure_ascii=False)
        atomic_write(report_path, lambda f: f.write(text.encode("utf-8")), error=TrainingError, what="report")
    return report


def load_finetuned_model(task, args, tokenizer, loaded_state):
    """The model of --load_model_path (a fine-tuned model of `task`, its state dict already read by
    check_finetuned_model), built from its config (--config_path, else MODEL_config.json beside it)."""
    config_path = args.config_path or _beside(args.load_model_path, "_config.json")
    if config_path is None:
        raise ConfigError(f"--load_model_path {args.load_model_path}: no {os.path.splitext(args.load_model_path)[0]}"
                          "_config.json beside it; pass the model's config with --config_path")
    rows = _embedding_rows(loaded_state, len(tokenizer.vocab))
    check_rows(len(tokenizer.vocab), rows, _vocab_file(tokenizer), args.load_model_path)
    config, _, _ = getattr(task, "load_backbone", core.load_backbone)(None, config_path, rows)
    if config.max_seq_length < args.seq_length:
        raise ConfigError(f"--seq_length {args.seq_length} exceeds the model's max_seq_length {config.max_seq_length}")
    task.check_inference(args.load_model_path)
    model = task.build_model(config, rows)
    try:
        load_into(model, from_uer_state_dict(loaded_state), strict=True, source=f"--load_model_path {args.load_model_path}")
    except CheckpointError as e:
        msg = str(e).replace(" (pass strict=False to load the matching tensors only)", "")
        raise CheckpointError(f"{msg}; was it fine-tuned for another task ({type(task).script} --task {task.name}) or "
                              "with another config (--config_path)?") from None
    core.log(f"loaded the fine-tuned model {args.load_model_path}")
    return model


def _report_path(args):
    return args.report_path or (os.path.splitext(args.output_model_path)[0] + "_report.json"
                                if args.train_path and args.output_model_path else None)


INPUT_FLAGS = ("train_path", "dev_path", "test_path", "config_path", "vocab_path", "spm_model_path")


def check_outputs(args):
    """Refuse at start, in one line naming the flag, an output the run could only fail to write after the
    work: a directory given as the file, an input given as the output, a directory that cannot be created
    or written, a full disk (outputs.check_writable)."""
    outputs = {"--output_model_path": args.output_model_path if args.train_path else None,
               "--prediction_path": args.prediction_path, "--report_path": _report_path(args)}
    inputs = {os.path.realpath(getattr(args, k)): k for k in INPUT_FLAGS if getattr(args, k, None)}
    for flag, path in outputs.items():
        if not path:
            continue
        if os.path.isdir(path) or not os.path.basename(path):
            raise ConfigError(f"{flag} {path} is a directory; give a file in it, e.g. "
                              f"{os.path.join(path, 'model.bin' if flag == '--output_model_path' else 'out.txt')}")
        if os.path.realpath(path) in inputs:
            raise ConfigError(f"{flag} {path} is also --{inputs[os.path.realpath(path)]}: writing it would "
                              "overwrite the input; give another path")
        check_writable(os.path.dirname(os.path.abspath(path)), f"the directory of {flag}", error=TrainingError)


def _model_dirs(args):
    for p in (args.pretrained_model_path, args.load_model_path):
        if p:
            yield p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))


def _model_tokenizer(args):
    """The tokenizer named by the model's UER config (`tokenizer`: --config_path, or the _config.json beside
    the model file), None when it names none but bert."""
    cfg = args.config_path or (_beside(args.load_model_path, "_config.json") if args.load_model_path else None) \
        or (_beside(args.pretrained_model_path, "_config.json") if args.pretrained_model_path else None)
    if cfg:
        try:
            name = load_config(cfg).tokenizer
        except UerLikeError:
            return None  # the config's own error comes where it is loaded
        return name if name != "bert" else None
    return None


def _build_tokenizer(args, meta=None):
    """--tokenizer / --vocab_path / --spm_model_path when given; else the model directory's own tokenizer
    (tokenizers.tokenizer_from_dir: its tokenizer_config.json, config.json and files); else bert over
    Google's Chinese vocabulary. Lower-casing: --do_lower_case, else the fine-tuned model's (`meta`, its
    _finetune.json), else what the vocabulary's directory says (tokenizers.text_settings), else true."""
    name = args.tokenizer or _model_tokenizer(args)
    spm = args.spm_model_path
    dirs = list(_model_dirs(args))
    if name is None and not args.vocab_path and not spm:
        for d in dirs:
            name = detect_tokenizer(d)
            if name is not None:
                break
    name = name or "bert"
    if name == "xlnet" and spm is None:
        found = [os.path.join(d, SPM_FILE) for d in dirs if os.path.isfile(os.path.join(d, SPM_FILE))]
        if not found:
            where = dirs[0] if dirs else "the model"
            raise DataError(f"{where}: an XLNet model without its sentencepiece model ({SPM_FILE}, which the "
                            f"release ships beside the weights); copy it there or pass --spm_model_path")
        spm = found[0]
    lower = args.do_lower_case
    if lower is not None and (not getattr(TOKENIZERS.get(name), "basic_settings", False) or (spm and name == "bert")):
        raise ConfigError(f"--do_lower_case applies to the WordPiece tokenizers "
                          f"({', '.join(n for n in TOKENIZERS.names() if getattr(TOKENIZERS.get(n), 'basic_settings', False))}); "
                          f"the {name} tokenizer normalises text as its model was trained: drop the flag")
    saved = (meta or {}).get("do_lower_case")
    if lower is None and isinstance(saved, bool) and getattr(TOKENIZERS.get(name), "basic_settings", False):
        lower = saved  # as the model was fine-tuned
    if not args.vocab_path and not spm:
        for d in dirs:
            if file_in(name, d):
                return tokenizer_from_dir(d, name, lower)
    return build_tokenizer(name, _resolve_vocab(args.vocab_path or _model_vocab(args)), spm, lower)


def _vocab_file(tokenizer):
    return tokenizer.vocab.path or f"the {type(tokenizer).__name__}"


def _embedding_rows(state, default):
    """Rows of the word embedding of a fine-tuned model's UER state dict (default when it has none)."""
    for k in ("embedding.word.embedding.weight", "embedding.word_embedding.weight"):
        if k in state and getattr(state[k], "dim", lambda: 0)() == 2:
            return int(state[k].shape[0])
    return default


def _model_vocab(args):
    """vocab.txt in a pretrained model's directory (Hugging Face / Google releases) or beside its file."""
    for p in (args.pretrained_model_path, args.load_model_path):
        if not p:
            continue
        d = p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))
        if os.path.isfile(os.path.join(d, "vocab.txt")):
            return os.path.join(d, "vocab.txt")
    return DEFAULT_VOCAB


def _beside(path, suffix):
    p = os.path.splitext(path)[0] + suffix
    return p if os.path.isfile(p) else None


def main(task_name, argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(task_name, argv)
    except UerLikeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Stopped:  # the checkpoint is written; the same command resumes
        return STOPPED_EXIT
    return 0
