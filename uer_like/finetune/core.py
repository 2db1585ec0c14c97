"""One fine-tuning loop for every task (tasks.py): AdamW with a warmup schedule (training/optim.py), mixed
precision (training/precision.py), evaluation on dev after each epoch, the best dev checkpoint kept
(io/checkpoint.py's save_model, UER format), then test evaluation and prediction with it.

A step whose loss or gradient norm is NaN/inf is skipped, --max_nonfinite_steps of them in a row stop the run,
and weights holding NaN/inf are never saved: pretraining's guard (training/guard.py).

Training tricks every task gets: FGM adversarial training on the word embedding (--use_adv, adversarial.py),
layer-wise learning-rate decay (--layerwise_lr_decay), the scheduler (--scheduler linear|cosine|constant).
Runs on CPU or GPU; on CUDA with mixed precision (bf16 where supported, else fp16 with loss scaling).
"""
import json
import math
import os
import random
import re
import sys
import time

import torch
from tqdm import tqdm

from ..config import load_config, read_json
from ..errors import CheckpointError, ConfigError, TrainingError
from ..io.checkpoint import load_into, load_state_dict_file, save_model
from ..io.uer import from_uer_state_dict
from ..flags import COUNT, GRAD_NORM, LEARNING_RATE, SEED, WARMUP, Float, Int, check_value
from ..layers.dropout import Dropout
from ..outputs import atomic_write
from ..training.device import resolve_device
from ..training.guard import FIX, NonfiniteGuard, cause, check_weights_finite, count_nonfinite
from ..training.optim import build_optimizer, lr_at, set_lr
from ..training.precision import amp_dtype, autocast, grad_scaler  # noqa: F401  (amp_dtype: the CLI's)
from . import data as D
from .adversarial import FGM
from .tasks import log, logger

__all__ = ["set_seed", "get_device", "amp_dtype", "autocast", "set_dropout", "layer_depth", "layerwise_lr_scale",
           "save_finetuned", "read_finetune_meta", "load_finetuned", "load_backbone", "run_outputs", "evaluate",
           "train", "log"]


NONFINITE_STEPS = 5  # --max_nonfinite_steps' default, as pretraining's
NOTHING_KEPT = "no model was written"
# the numeric flags train() reads, with their ranges: cli.py declares the flags with them, train() checks them
# again for callers from Python
TRAIN_ARG_RULES = {"epochs_num": Int(min=1, max=10 ** 6), "batch_size": COUNT, "learning_rate": LEARNING_RATE,
                   "warmup": WARMUP, "weight_decay": Float(min=0, max=1), "max_grad_norm": GRAD_NORM,
                   "max_steps": Int(min=0, max=10 ** 9), "seed": SEED, "report_steps": Int(min=1, max=10 ** 9),
                   "max_nonfinite_steps": COUNT, "layerwise_lr_decay": Float(min=0, max=1, min_open=True),
                   "fgm_epsilon": Float(min=0)}


# ====================================================================== setup
def set_seed(seed):
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_device(name="auto"):
    return resolve_device(name)


def set_dropout(model, p):
    """Set every dropout rate in the model to p: torch's nn.Dropout, the library's layers.dropout.Dropout
    (embedding and residual dropouts) and float `dropout` attributes (attention's SDPA dropout, RNN
    inter-layer dropout); the model's config records it."""
    for m in model.modules():
        if isinstance(m, (torch.nn.Dropout, Dropout)):
            m.p = float(p)
        elif isinstance(getattr(m, "dropout", None), float):
            m.dropout = float(p)
    if getattr(model, "config", None) is not None:
        model.config = model.config.replace(dropout=float(p))


# ====================================================================== layer-wise learning rates
_LAYER = re.compile(r"^encoder\.transformer\.(\d+)\.")


def layer_depth(name, layers_num):
    """Depth of a parameter from the output: 0 for the task head (and anything above the encoder layers,
    e.g. a final layer norm), i for encoder layer layers_num - i (layer L-1, the top, is 1), layers_num + 1
    for the embedding (and an ALBERT-style embedding projection)."""
    if name.startswith("embedding.") or name.startswith("encoder.linear."):
        return layers_num + 1
    m = _LAYER.match(name)
    if m:
        return layers_num - int(m.group(1))
    return 0


def layerwise_lr_scale(model, decay):
    """-> name -> decay ** depth (layer_depth): the head trains at the learning rate, each encoder layer below
    it at `decay` times the one above, the embedding at decay ** (layers_num + 1). Parameters shared by every
    layer (ALBERT) count as the top layer."""
    layers_num = model.config.layers_num
    if model.config.parameter_sharing:
        return lambda n: decay ** (layers_num + 1 if n.startswith("embedding.") or n.startswith("encoder.linear.")
                                   else 1 if n.startswith("encoder.transformer.") else 0)
    return lambda n: decay ** layer_depth(n, layers_num)


# ====================================================================== checkpoints
def save_finetuned(model, path, meta):
    """UER-format weights (as UER-py's fine-tuning scripts save them) + PATH_config.json (save_model) +
    PATH_finetune.json (the task settings inference needs), each written atomically."""
    save_model(model, path, format="safetensors" if path.lower().endswith(".safetensors") else "uer")
    text = json.dumps(meta, indent=2, ensure_ascii=False)
    atomic_write(os.path.splitext(path)[0] + "_finetune.json", lambda f: f.write(text.encode("utf-8")),
                 error=CheckpointError, what="task settings")


def read_finetune_meta(path):
    p = os.path.splitext(path)[0] + "_finetune.json"
    return read_json(p) if os.path.isfile(p) else {}


def load_finetuned(model, path):
    load_into(model, from_uer_state_dict(load_state_dict_file(path)), strict=True, source=path)
    return model


def load_backbone(pretrained_model_path, config_path, vocab_size, config_overrides=None, vocab_file=None):
    """-> (config, (embedding, encoder), pooler) of a pretrained model, or (config, None, None) for random
    init. Loading goes through uer_like.load_model (UER-format, the framework's own output, Hugging Face
    and Google checkpoints); its target heads are ignored except the pooler (dense + tanh on [CLS], held
    by the pooler / sp / cls target), returned as a state dict to start the classifier's output_layer_1
    from, as Hugging Face's BertForSequenceClassification does."""
    if pretrained_model_path:
        from ..io.checkpoint import load_model

        try:
            model = load_model(pretrained_model_path, config=config_path, strict=False,
                               config_overrides=config_overrides)
        except ConfigError:
            saved = _training_checkpoint_config(pretrained_model_path) if config_path is None else None
            if saved is None:
                raise
            model = load_model(pretrained_model_path, config=saved, strict=False, config_overrides=config_overrides)
        model.config.refuse_decoder("fine-tuning")
        from ..io.tokenizer import check_rows

        # the vocabulary against the word embedding: equal, or padding rows (one-line error naming both)
        check_rows(vocab_size, model.embedding.word.embedding.weight.shape[0], vocab_file or "(the vocabulary)",
                   model.load_info.path or pretrained_model_path)
        pooler = None
        h = model.config.hidden_size
        for name in ("pooler", "sp", "cls"):
            lin = getattr(getattr(model.target, name, None), "linear_1", None)
            if isinstance(lin, torch.nn.Linear) and tuple(lin.weight.shape) == (h, h):
                pooler = {k: v.detach().clone() for k, v in lin.state_dict().items()}
                break
        return model.config, (model.embedding, model.encoder), pooler
    config = load_config(config_path or "bert/base_config.json", **(config_overrides or {}))
    config.refuse_decoder("fine-tuning")
    if config.vocab_size != vocab_size:
        config = config.replace(vocab_size=vocab_size)
    return config, None, None


def _training_checkpoint_config(path):
    """The config stored in a pretrain.py training checkpoint (step_*.pt), or None for any other file."""
    if not os.path.isfile(path) or not path.endswith(".pt"):
        return None
    from ..training.checkpoint import load_checkpoint

    try:
        cfg = load_checkpoint(path).get("config")
    except CheckpointError:
        return None
    return cfg if isinstance(cfg, dict) else None


# ====================================================================== loops
def run_outputs(task, model, feats, batch_size, device, dtype, desc="eval", progress=True):
    """Forward every feature (no grad, eval mode) -> per-feature outputs in order."""
    model.eval()
    outs = [None] * len(feats)
    n = math.ceil(len(feats) / batch_size)
    with torch.no_grad():
        for idx, batch in tqdm(D.batches(feats, batch_size, task.collate, length=task.length), total=n, desc=desc,
                               disable=not progress, leave=False, mininterval=1.0, file=sys.stderr):
            batch = task.to_device(batch, device)
            with autocast(device, dtype):
                res = task.outputs(model, batch)
            for i, r in zip(idx, res):
                outs[i] = r
    return outs


def evaluate(task, model, examples, feats, args, device, dtype, desc="eval"):
    outputs = run_outputs(task, model, feats, args.batch_size, device, dtype, desc, not args.no_progress)
    preds = task.decode(examples, feats, outputs)
    return outputs, preds


def train_step(task, model, batch, optimizer, scaler, args, device, dtype, fgm=None, guard=None, step=0):
    """One optimizer step on a batch: loss, backward (plus the FGM adversarial pass), clipping, step; the
    step is skipped when the loss or the gradient norm is NaN/inf (guard: a training.guard.NonfiniteGuard
    counting such steps across calls; default a fresh one). Returns the (clean) loss."""
    guard = guard or NonfiniteGuard(NONFINITE_STEPS)
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, dtype):
        loss = task.loss(model, batch)
    scaler.scale(loss).backward()
    if fgm is not None:
        fgm.attack()
        with autocast(device, dtype):
            adv_loss = task.loss(model, batch)
        scaler.scale(adv_loss).backward()
        fgm.restore()  # a NaN adversarial loss shows in the gradient norm
    scaler.unscale_(optimizer)
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
    if not guard.skip(loss, gnorm, step):
        scaler.step(optimizer)
    scaler.update()
    return loss


def build_training(model, args):
    """-> (optimizer, fgm or None) for the flags: AdamW (eps 1e-8) with layer-wise learning rates when
    --layerwise_lr_decay < 1, FGM when --use_adv."""
    decay = getattr(args, "layerwise_lr_decay", 1.0)
    scale = layerwise_lr_scale(model, decay) if decay != 1.0 else None
    optimizer = build_optimizer("adamw", model, args.learning_rate, args.weight_decay, eps=1e-8, lr_scale=scale)
    fgm = FGM(model, args.fgm_epsilon) if getattr(args, "use_adv", False) else None
    return optimizer, fgm


def check_train_args(args):
    """ConfigError naming the argument for a value outside its range (TRAIN_ARG_RULES; the command line
    refuses them already, this is for callers from Python)."""
    for name, rule in TRAIN_ARG_RULES.items():
        if getattr(args, name, None) is not None:
            check_value(getattr(args, name), rule, f"--{name}")


def train(task, model, train_feats, args, device, dtype, dev=None, meta=None):
    """Train for args.epochs_num epochs; after each, evaluate on dev (examples, feats) and keep the best
    checkpoint at args.output_model_path. A step with a NaN/inf loss or gradient norm is skipped;
    args.max_nonfinite_steps of them in a row stop the run (TrainingError), and weights holding NaN/inf are
    never saved. An epoch that ends in skipped steps, or whose dev outputs or metric are NaN, is never kept;
    TrainingError when no epoch is. Returns the per-epoch history."""
    check_train_args(args)
    steps_per_epoch = math.ceil(len(train_feats) / args.batch_size)
    total = steps_per_epoch * args.epochs_num
    if args.max_steps:
        total = min(total, args.max_steps)
    optimizer, fgm = build_training(model, args)
    scheduler = getattr(args, "scheduler", "linear")
    scaler = grad_scaler(device, dtype)
    guard = NonfiniteGuard(getattr(args, "max_nonfinite_steps", None) or NONFINITE_STEPS, scaler)
    rng = random.Random(args.seed)
    history, best, step = [], None, 0
    kept, last_problem = NOTHING_KEPT, None

    def save(epoch, what):
        nonlocal kept
        path = args.output_model_path
        check_weights_finite(model.parameters(), f"the model {path}", step, kept, device)
        save_finetuned(model, path, meta or task.meta())
        kept = f"{what} (epoch {epoch}) is at {path}"

    log(f"training: {len(train_feats)} instances, {args.epochs_num} epoch(s), {steps_per_epoch} steps per epoch, "
        f"batch {args.batch_size}, lr {args.learning_rate} ({scheduler}), device {device}"
        + (f", mixed precision {str(dtype).replace('torch.', '')}" if dtype else "")
        + (f", FGM epsilon {args.fgm_epsilon}" if fgm else "")
        + (f", layer-wise lr decay {args.layerwise_lr_decay}" if getattr(args, "layerwise_lr_decay", 1.0) != 1.0 else ""))
    for epoch in range(1, args.epochs_num + 1):
        model.train()
        t0, loss_sum, n_loss, skipped = time.time(), torch.zeros((), device=device), 0, guard.skipped
        bar = tqdm(D.batches(train_feats, args.batch_size, task.collate, shuffle=True, rng=rng, length=task.length),
                   total=steps_per_epoch, desc=f"epoch {epoch}/{args.epochs_num}", disable=args.no_progress,
                   mininterval=2.0, file=sys.stderr)
        for _, batch in bar:
            if args.max_steps and step >= args.max_steps:
                break
            lr = lr_at(step, total, args.learning_rate, args.warmup, scheduler)
            set_lr(optimizer, lr)
            batch = task.to_device(batch, device)
            loss = train_step(task, model, batch, optimizer, scaler, args, device, dtype, fgm, guard, step + 1)
            step += 1
            if guard.stopped:
                bar.close()
                raise guard.error(step, lr, kept, model.parameters(), device)
            if not guard.last_skipped:
                loss_sum += loss.detach().float()
                n_loss += 1
            if step % args.report_steps == 0:
                avg = float(loss_sum) / max(1, n_loss)
                bar.set_postfix(loss=f"{avg:.4f}")
                if args.no_progress:
                    log(f"  step {step}/{total}: loss {avg:.4f}")
        bar.close()
        rec = {"epoch": epoch, "train_loss": float(loss_sum) / max(1, n_loss), "steps": step,
               "seconds": round(time.time() - t0, 1)}
        if guard.skipped > skipped:
            rec["skipped_steps"] = guard.skipped - skipped
        # an epoch that ends in skipped steps is never kept (as pretraining writes no checkpoint then), nor one
        # whose dev outputs or metric are NaN
        problem = f"it ends in {guard.streak} non-finite step(s)" if guard.streak else None
        if dev is not None:
            outputs, preds = evaluate(task, model, dev[0], dev[1], args, device, dtype, desc="dev")
            m = task.evaluate(dev[0], preds)
            rec["dev"] = _jsonable(m)
            if problem is None and not (_finite_outputs(outputs) and math.isfinite(m[task.main_metric])):
                problem = f"its dev outputs or {task.main_metric} are NaN/inf"
            improved = problem is None and (best is None or m[task.main_metric] > best)
            if improved:
                best = m[task.main_metric]
                rec["best"] = True
                if args.output_model_path:
                    save(epoch, "the best model so far")
            log(f"epoch {epoch}/{args.epochs_num}: train loss {rec['train_loss']:.4f} | dev {task.summary(m)}"
                + (" | best, saved" if improved and args.output_model_path else (" | best" if improved else ""))
                + f" | {rec['seconds']}s")
        else:
            if args.output_model_path and problem is None:
                save(epoch, "the model")
            log(f"epoch {epoch}/{args.epochs_num}: train loss {rec['train_loss']:.4f} | {rec['seconds']}s")
        if problem:
            logger.warning("epoch %d is not kept: %s", epoch, problem)
            last_problem = f"epoch {epoch}: {problem}"
        history.append(rec)
        if args.max_steps and step >= args.max_steps:
            break
    if (dev is not None and best is None) or (args.output_model_path and kept == NOTHING_KEPT):
        raise TrainingError(f"no epoch gave a model to keep ({last_problem}); {NOTHING_KEPT}; "
                            + (cause(count_nonfinite(model.parameters(), device)) if guard.skipped else FIX))
    return history


def _finite_outputs(outputs):
    """Whether per-feature outputs (tensors, numbers, or tuples/lists of them) hold no NaN and no +inf (-inf
    marks a masked slot, e.g. a missing choice)."""
    for o in outputs:
        for t in (o if isinstance(o, (tuple, list)) else (o,)):
            t = torch.as_tensor(t, dtype=torch.float)
            if torch.isnan(t).any() or torch.isposinf(t).any():
                return False
    return True


def _jsonable(m):
    if isinstance(m, dict):
        return {str(k): _jsonable(v) for k, v in m.items()}
    if isinstance(m, (list, tuple)):
        return [_jsonable(v) for v in m]
    return m
