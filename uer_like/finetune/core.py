"""Fine-tuning for every task (tasks.py), on the training loop pretraining runs on (training/loop.py): AdamW
with a warmup schedule (training/optim.py), mixed precision (training/precision.py), evaluation on dev after
each epoch, the best dev checkpoint kept (io/checkpoint.py's save_model, UER format), then test evaluation and
prediction with it.

A step whose loss or gradient norm is NaN/inf is skipped, --max_nonfinite_steps of them in a row stop the run,
and weights holding NaN/inf are never saved: pretraining's guard (training/guard.py).

Training tricks every task gets: FGM adversarial training on the word embedding (--use_adv, adversarial.py),
layer-wise learning-rate decay (--layerwise_lr_decay), the scheduler (--scheduler linear|cosine|constant).

Besides the loop (its steps, guard, report line, progress bar and SIGTERM: a checkpoint at the next step
boundary, then exit status 143), fine-tuning shares pretraining's pieces (training/): --precision
(precision.py; the CLI resolves it), the DDP wrap of a torchrun launch (parallel.py: each rank its weighted
share of every global batch, rank 0 evaluates and writes), training checkpoints with exact resume
(checkpoint.CheckpointManager) and the flags' declarations (flags.TrainFlags). What is its own: the batches
(epochs of shuffled, length-grouped batches, the position in the epoch recorded) and the epoch's end (dev
evaluation, the best model kept, the epoch's record).
"""
import json
import math
import os
import random
import re
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from ..config import load_config, read_json
from ..errors import CheckpointError, ConfigError, TrainingError
from ..io.checkpoint import load_into, load_model, load_state_dict_file, save_model
from ..io.tokenizer import check_rows
from ..io.uer import from_uer_state_dict
from ..flags import check_value, train_flag, train_rules
from ..layers.dropout import Dropout
from ..outputs import atomic_write
from ..training import distributed as dist_utils
from ..training import parallel
from ..training.checkpoint import CheckpointManager, _to_tuple, load_checkpoint
from ..training.device import resolve_device
from ..training.distributed import DistInfo
from ..training.guard import FIX, NonfiniteGuard, cause, check_weights_finite, count_nonfinite
from ..training.loop import Micro, StepLoop, Stopped
from ..training.metrics import Report
from ..training.optim import build_optimizer, lr_at, set_lr  # noqa: F401  (set_lr: this module's API too)
from ..training.precision import autocast, grad_scaler
from . import data as D
from .adversarial import FGM
from .tasks import log, logger

__all__ = ["set_seed", "get_device", "autocast", "set_dropout", "layer_depth", "layerwise_lr_scale",
           "save_finetuned", "read_finetune_meta", "load_finetuned", "load_backbone", "run_outputs", "evaluate",
           "train", "log"]


NONFINITE_STEPS = train_flag("max_nonfinite_steps").default  # as pretraining's
NOTHING_KEPT = "no model was written"
# the numeric flags train() reads, with their ranges (flags.TrainFlags): cli.py declares the flags with them,
# train() checks them again for callers from Python
TRAIN_ARG_RULES = train_rules(("epochs_num", "batch_size", "learning_rate", "warmup", "weight_decay", "max_grad_norm",
                               "max_steps", "seed", "report_steps", "max_nonfinite_steps", "layerwise_lr_decay",
                               "fgm_epsilon", "save_checkpoint_steps"))


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
        try:
            model = load_model(pretrained_model_path, config=config_path, strict=False,
                               config_overrides=config_overrides)
        except ConfigError:
            saved = _training_checkpoint_config(pretrained_model_path) if config_path is None else None
            if saved is None:
                raise
            model = load_model(pretrained_model_path, config=saved, strict=False, config_overrides=config_overrides)
        model.config.refuse_decoder("fine-tuning")
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


def train_step(task, model, batch, optimizer, scaler, args, device, dtype, fgm=None, guard=None, step=0,
               weight=1.0):
    """One optimizer step on a batch at args.learning_rate, outside train(): the training loop's step
    (training/loop.py: loss, backward plus the FGM adversarial pass, clipping, the non-finite guard, the
    update). guard: a training.guard.NonfiniteGuard counting skipped steps across calls (default a fresh one);
    step: the steps done before; weight: the loss's factor (train: this rank's share of the global batch x the
    world size). Returns (the weighted loss, the gradient norm); the gradients stay in place."""
    loop = StepLoop(model, optimizer, scaler, DistInfo(device=device), dtype=dtype, adversary=fgm, step=step,
                    schedule=lambda s: args.learning_rate, total_steps=step + 1, max_grad_norm=args.max_grad_norm,
                    guard=guard or NonfiniteGuard(NONFINITE_STEPS))
    loss, gnorm, _ = loop.train_step([Micro(batch, weight)], lambda b: task.loss(model, b))
    return loss, gnorm


def build_training(model, args):
    """-> (optimizer, fgm or None) for the flags: AdamW (eps 1e-8) with layer-wise learning rates when
    --layerwise_lr_decay < 1, FGM when --use_adv."""
    decay = _setting(args, "layerwise_lr_decay")
    scale = layerwise_lr_scale(model, decay) if decay != 1.0 else None
    optimizer = build_optimizer("adamw", model, args.learning_rate, args.weight_decay, eps=1e-8, lr_scale=scale)
    fgm = FGM(model, args.fgm_epsilon) if getattr(args, "use_adv", False) else None
    return optimizer, fgm


def _setting(args, name):
    """args.name, or the training flag's default (flags.TrainFlags) for a caller from Python that left it out."""
    value = getattr(args, name, None)
    return train_flag(name).default if value is None else value


def check_train_args(args):
    """ConfigError naming the argument for a value outside its range (TRAIN_ARG_RULES; the command line
    refuses them already, this is for callers from Python)."""
    for name, rule in TRAIN_ARG_RULES.items():
        if getattr(args, name, None) is not None:
            check_value(getattr(args, name), rule, f"--{name}")


def checkpoint_dir(args):
    """Where a run's training checkpoints go: MODEL_checkpoints beside --output_model_path (None: no
    checkpoints, for a run that keeps no model)."""
    path = getattr(args, "output_model_path", None)
    return os.path.splitext(path)[0] + "_checkpoints" if path else None


def shard(idx, rank, world):
    """-> (this rank's part of a global batch's feature indices, its weight): the parts as even as can be,
    weight = part size x world / batch size, so that DDP's mean of the ranks' gradients is the global batch's
    mean. A rank left without a feature (a last batch smaller than the world) computes on the batch's first
    one with weight 0."""
    if world == 1:
        return list(idx), 1.0
    mine = [int(i) for i in np.array_split(np.asarray(idx), world)[rank]]
    if not mine:
        return [idx[0]], 0.0
    return mine, len(mine) * world / len(idx)


def _tokens(feat):
    src = feat["src"]
    return sum(len(s) for s in src) if src and isinstance(src[0], (list, tuple)) else len(src)


# what a resumed run must share with the checkpoint's run (else the data order and the position in it mean
# nothing), and the settings it may change (a lower learning rate after a divergence, say), with a warning
RESUME_KEYS = ("epochs_num", "max_steps", "seed")
CHANGEABLE_KEYS = ("learning_rate", "warmup", "scheduler", "weight_decay", "max_grad_norm", "layerwise_lr_decay",
                   "use_adv", "fgm_epsilon")


def _run_identity(task, args, n_feats, global_batch):
    ident = {k: getattr(args, k, None) for k in RESUME_KEYS + CHANGEABLE_KEYS}
    ident.update(task=getattr(task, "name", None), train_path=os.path.abspath(args.train_path) if getattr(args, "train_path", None)
                 else None, train_instances=n_feats, global_batch=global_batch)
    return ident


def _check_resumable(path, saved, now, warn=True):
    """ConfigError when the checkpoint at `path` was made by another run (data, batch, seed, epochs); a
    warning for each setting changed since (training continues with the new one)."""
    def diff(keys):
        return [f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in keys if saved.get(k) != now[k]]

    refused = diff([k for k in now if k not in CHANGEABLE_KEYS])
    if refused:
        raise ConfigError(f"{path}: the checkpoint was made by another run ({'; '.join(refused)}); run the same "
                          "command to resume it, or pass --resume never (or another --output_model_path) to start "
                          "afresh")
    changed = diff([k for k in CHANGEABLE_KEYS if k in now])
    if changed and warn:
        logger.warning("%s: resuming with other settings than the checkpoint's run (%s): training goes on with the "
                       "new ones", path, "; ".join(changed))


def train(task, model, train_feats, args, device, dtype, dev=None, meta=None, info=None):
    """Train for args.epochs_num epochs; after each, evaluate on dev (examples, feats) and keep the best
    checkpoint at args.output_model_path. A step with a NaN/inf loss or gradient norm is skipped;
    args.max_nonfinite_steps of them in a row stop the run (TrainingError), and weights holding NaN/inf are
    never saved. An epoch that ends in skipped steps, or whose dev outputs or metric are NaN, is never kept;
    TrainingError when no epoch is. Returns the per-epoch history.

    info (training.distributed.DistInfo, from a torchrun launch): the model is wrapped for DDP
    (training/parallel.py), each rank trains on its part of each global batch of batch_size x world features,
    rank 0 evaluates dev and writes the model. Training checkpoints (model, optimizer, scaler, RNG states,
    epoch and position in it) are written beside the output model after each epoch and every
    --save_checkpoint_steps steps; the same command continues from the newest after a crash (--resume), and
    they are removed when the run ends. SIGTERM: a checkpoint at the next step boundary, then
    training.loop.Stopped."""
    check_train_args(args)
    info = info or DistInfo(device=device)
    world, is_main = info.world_size, info.is_main
    reduce = (lambda t: dist_utils.all_reduce_sum(info, t)) if info.enabled else None
    say = log if is_main else (lambda msg: None)
    global_batch = args.batch_size * world
    steps_per_epoch = math.ceil(len(train_feats) / global_batch)
    total = steps_per_epoch * args.epochs_num
    if args.max_steps:
        total = min(total, args.max_steps)
    optimizer, fgm = build_training(model, args)
    scheduler, decay = _setting(args, "scheduler"), _setting(args, "layerwise_lr_decay")
    scaler = grad_scaler(device, dtype)
    wrapped = parallel.wrap(model, info, find_unused_parameters=True)
    net = parallel.Forward(wrapped) if wrapped is not model else model
    rng = random.Random(args.seed)
    st = {"history": [], "best": None, "kept": NOTHING_KEPT, "last_problem": None, "epoch": 1, "pos": 0,
          "loss_sum": 0.0, "n_loss": 0, "skipped_before": 0, "seconds": 0.0}
    loop = StepLoop(model, optimizer, scaler, info, dtype=dtype, module=wrapped, adversary=fgm,
                    schedule=lambda step: lr_at(step, total, args.learning_rate, args.warmup, scheduler),
                    total_steps=total, max_grad_norm=args.max_grad_norm, kept=lambda: st["kept"],
                    guard=NonfiniteGuard(_setting(args, "max_nonfinite_steps"), scaler,
                                         reduce, warn=is_main))
    guard = loop.guard
    identity = _run_identity(task, args, len(train_feats), global_batch)
    ckdir = checkpoint_dir(args)
    manager = CheckpointManager(ckdir, getattr(args, "keep_checkpoints", 1) or 1, info, reduce) if ckdir else None
    every = getattr(args, "save_checkpoint_steps", 0) or 0
    found = manager.resume(_setting(args, "resume")) if manager else None
    if found is not None:
        path, ck = found
        _check_resumable(path, ck.get("run") or {}, identity, warn=is_main)
        loop.step = manager.restore(path, ck, model, optimizer, scaler)
        st.update({k: v for k, v in ck["loop"].items() if k != "step"})
        guard.streak, guard.skipped = ck["guard"]
        say(f"resumed from {path} at step {loop.step} (epoch {st['epoch']}, batch {st['pos']} of it)")

    def save(epoch, what):
        path = args.output_model_path
        check_weights_finite(model.parameters(), f"the model {path}", loop.step, st["kept"], device, reduce)
        dist_utils.on_main(info, lambda: save_finetuned(model, path, meta or task.meta()))
        st["kept"] = f"{what} (epoch {epoch}) is at {path}"

    def checkpoint(epoch_rng):
        if manager is None:
            return
        mean = loss_sum.detach().clone().float()  # each rank resumes with an equal share of the ranks' sum
        if reduce is not None:
            reduce(mean)
        state = dict(st, loss_sum=float(mean) / world, epoch_rng=epoch_rng)
        manager.save(loop.step, lambda: {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "guard": (guard.streak, guard.skipped),
            "loop": state, "run": identity, "world_size": world}, model.parameters(), device, guard.streak)

    say(f"training: {len(train_feats)} instances, {args.epochs_num} epoch(s), {steps_per_epoch} steps per epoch, "
        f"batch {global_batch}" + (f" ({args.batch_size} on each of {world} processes)" if world > 1 else "")
        + f", lr {args.learning_rate} ({scheduler}), device {device}"
        + (f", mixed precision {str(dtype).replace('torch.', '')}" if dtype else "")
        + (f", FGM epsilon {args.fgm_epsilon}" if fgm else "")
        + (f", layer-wise lr decay {args.layerwise_lr_decay}" if decay != 1.0 else ""))
    report = Report(info, total, args.report_steps, say=say if args.no_progress else None)  # else: the bar's
    resumed_rng = st.pop("epoch_rng", None)
    loss_sum = torch.tensor(st["loss_sum"], device=device)
    with loop.sigterm_stops():
        for epoch in range(st["epoch"], args.epochs_num + 1):
            # (a checkpoint at --max_steps within an epoch resumes into that epoch, to finish it)
            if args.max_steps and loop.step >= args.max_steps and st["pos"] == 0:
                break
            if resumed_rng is not None:
                rng.setstate(_to_tuple(resumed_rng))
                resumed_rng = None
            epoch_rng = rng.getstate()
            model.train()
            if st["pos"] == 0:
                st.update(loss_sum=0.0, n_loss=0, skipped_before=guard.skipped, seconds=0.0)
                loss_sum = torch.zeros((), device=device)
            clock = [time.time()]  # since when st["seconds"] has not counted the epoch's time
            groups = [idx for idx, _ in D.batches(train_feats, global_batch, lambda fs: None, shuffle=True, rng=rng,
                                                  length=task.length)]

            def batches():
                """The epoch's steps from its recorded position: this rank's share of each global batch."""
                for i in range(st["pos"], len(groups)):
                    mine, weight = shard(groups[i], info.rank, world)
                    batch = task.to_device(task.collate([train_feats[j] for j in mine]), device)
                    st["pos"] = i + 1
                    yield [Micro(batch, weight, sum(_tokens(train_feats[j]) for j in mine) if weight else 0,
                                 len(mine) if weight else 0)]

            def after_step(loss, skipped):
                if not skipped:
                    loss_sum.add_(loss.float())
                    st["n_loss"] += 1

            def save_within_epoch(epoch_rng=epoch_rng):
                if st["pos"] < len(groups) or loop.stopping:  # the epoch's end has its own checkpoint
                    st["seconds"] += time.time() - clock[0]
                    clock[0] = time.time()
                    checkpoint(epoch_rng)

            stopped = loop.run(batches(), lambda batch: task.loss(net, batch), report, after_step=after_step,
                               save=save_within_epoch, save_every=every, save_at_end=False,
                               progress=dict(desc=f"epoch {epoch}/{args.epochs_num}", total=steps_per_epoch,
                                             initial=st["pos"], disable=bool(args.no_progress), mininterval=2.0))
            if stopped:
                raise Stopped(f"stopped by SIGTERM at step {loop.step}")
            st["seconds"] += time.time() - clock[0]
            rec = {"epoch": epoch, "train_loss": _mean_loss(loss_sum, st["n_loss"], world, reduce),
                   "steps": loop.step, "seconds": round(st["seconds"], 1)}
            if guard.skipped > st["skipped_before"]:
                rec["skipped_steps"] = guard.skipped - st["skipped_before"]
            # an epoch that ends in skipped steps is never kept (as pretraining writes no checkpoint then), nor one
            # whose dev outputs or metric are NaN
            problem = f"it ends in {guard.streak} non-finite step(s)" if guard.streak else None
            if dev is not None:
                def dev_eval():
                    outputs, preds = evaluate(task, model, dev[0], dev[1], args, device, dtype, desc="dev")
                    m = task.evaluate(dev[0], preds)
                    return m, _finite_outputs(outputs) and math.isfinite(m[task.main_metric]), task.summary(m)

                m, finite, summary = dist_utils.on_main(info, dev_eval)  # rank 0 evaluates, every rank decides
                model.train()
                rec["dev"] = _jsonable(m)
                if problem is None and not finite:
                    problem = f"its dev outputs or {task.main_metric} are NaN/inf"
                improved = problem is None and (st["best"] is None or m[task.main_metric] > st["best"])
                if improved:
                    st["best"] = m[task.main_metric]
                    rec["best"] = True
                    if args.output_model_path:
                        save(epoch, "the best model so far")
                say(f"epoch {epoch}/{args.epochs_num}: train loss {rec['train_loss']:.4f} | dev {summary}"
                    + (" | best, saved" if improved and args.output_model_path else (" | best" if improved else ""))
                    + f" | {rec['seconds']}s")
            else:
                if args.output_model_path and problem is None:
                    save(epoch, "the model")
                say(f"epoch {epoch}/{args.epochs_num}: train loss {rec['train_loss']:.4f} | {rec['seconds']}s")
            if problem:
                if is_main:
                    logger.warning("epoch %d is not kept: %s", epoch, problem)
                st["last_problem"] = f"epoch {epoch}: {problem}"
            st["history"].append(rec)
            st.update(epoch=epoch + 1, pos=0)
            if epoch < args.epochs_num and not (args.max_steps and loop.step >= args.max_steps):
                checkpoint(rng.getstate())
                if loop.stop_agreed():  # SIGTERM during the epoch's end: its checkpoint is the one to resume
                    loop.announce_stop()
                    raise Stopped(f"stopped by SIGTERM at step {loop.step}")
    if (dev is not None and st["best"] is None) or (args.output_model_path and st["kept"] == NOTHING_KEPT):
        raise TrainingError(f"no epoch gave a model to keep ({st['last_problem']}); {NOTHING_KEPT}; "
                            + (cause(count_nonfinite(model.parameters(), device, reduce)) if guard.skipped else FIX))
    if manager is not None:  # the run's result is written: its checkpoints have served
        manager.remove()
    return st["history"]


def _mean_loss(loss_sum, n, world, reduce):
    """The mean training loss over the steps so far (each the global batch's mean: the ranks' weighted losses
    summed over the ranks / world)."""
    t = loss_sum.detach().clone().float()
    if reduce is not None:
        reduce(t)
    return float(t) / world / max(1, n)


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
