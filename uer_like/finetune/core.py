"""One fine-tuning loop for every task: AdamW with linear warmup and decay, evaluation on dev after each
epoch, the best dev checkpoint kept, then test evaluation and prediction with it.

Runs on CPU or GPU; on CUDA with mixed precision (bf16 where supported, else fp16 with loss scaling).
"""
import contextlib
import json
import logging
import math
import os
import random
import sys
import time

import torch
from tqdm import tqdm

from ..config import load_config
from ..errors import CheckpointError, ConfigError
from ..io.checkpoint import load_into, load_state_dict_file
from ..io.uer import from_uer_state_dict, to_uer_state_dict
from . import data as D

logger = logging.getLogger("uer_like.finetune")


def log(msg):
    print(msg, flush=True)


# ====================================================================== setup
def set_seed(seed):
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_device(name="auto"):
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return dev


def amp_dtype(device, amp="auto"):
    """-> the autocast dtype, or None for full precision. Mixed precision only on CUDA."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_dropout(model, p):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = p
        elif hasattr(m, "dropout") and isinstance(getattr(m, "dropout"), float):
            m.dropout = p


def make_optimizer(model, lr, weight_decay=0.01):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "layer_norm" in n or n.endswith("bias") else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def linear_schedule(optimizer, warmup_steps, total_steps):
    def f(step):
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


# ====================================================================== checkpoints
def save_finetuned(model, path, meta):
    """UER-format weights (as UER-py's fine-tuning scripts save them) + PATH_config.json + PATH_finetune.json."""
    state = to_uer_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    stem = os.path.splitext(path)[0]
    with open(stem + "_config.json", "w", encoding="utf-8") as f:
        json.dump(model.config.to_dict(), f, indent=2, ensure_ascii=False)
    with open(stem + "_finetune.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)


def read_finetune_meta(path):
    p = os.path.splitext(path)[0] + "_finetune.json"
    if os.path.isfile(p):
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    return {}


def load_finetuned(model, path):
    load_into(model, from_uer_state_dict(load_state_dict_file(path)), strict=True, source=path)
    return model


def load_backbone(pretrained_model_path, config_path, vocab_size):
    """-> (config, (embedding, encoder), pooler) of a pretrained model, or (config, None, None) for random
    init. Loading goes through uer_like.load_model (UER-format, the framework's own output, Hugging Face
    and Google checkpoints); its target heads are ignored except the pooler (dense + tanh on [CLS], held
    by the pooler / sp / cls target), returned as a state dict to start the classifier's output_layer_1
    from, as Hugging Face's BertForSequenceClassification does."""
    if pretrained_model_path:
        from ..io.checkpoint import load_model

        model = load_model(pretrained_model_path, config=config_path, strict=False, vocab_size=vocab_size)
        rows = model.embedding.word.embedding.weight.shape[0]
        if rows < vocab_size:
            raise CheckpointError(f"{pretrained_model_path}: the word embedding has {rows} rows but the vocabulary has "
                                  f"{vocab_size} tokens; use the model's own vocabulary (--vocab_path)")
        pooler = None
        h = model.config.hidden_size
        for name in ("pooler", "sp", "cls"):
            lin = getattr(getattr(model.target, name, None), "linear_1", None)
            if isinstance(lin, torch.nn.Linear) and tuple(lin.weight.shape) == (h, h):
                pooler = {k: v.detach().clone() for k, v in lin.state_dict().items()}
                break
        return model.config, (model.embedding, model.encoder), pooler
    config = load_config(config_path or "bert/base_config.json")
    if config.vocab_size != vocab_size:
        config = config.replace(vocab_size=vocab_size)
    return config, None, None


# ====================================================================== loops
def run_outputs(task, model, feats, batch_size, device, dtype, desc="eval", progress=True):
    """Forward every feature (no grad, eval mode) -> per-feature outputs in order."""
    model.eval()
    outs = [None] * len(feats)
    n = math.ceil(len(feats) / batch_size)
    with torch.no_grad():
        for idx, batch in tqdm(D.batches(feats, batch_size, pad_id=task.enc.pad_id), total=n, desc=desc,
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


def train(task, model, train_feats, args, device, dtype, dev=None, meta=None):
    """Train for args.epochs_num epochs; after each, evaluate on dev (examples, feats) and keep the best
    checkpoint at args.output_model_path. Returns the per-epoch history."""
    steps_per_epoch = math.ceil(len(train_feats) / args.batch_size)
    total = steps_per_epoch * args.epochs_num
    if args.max_steps:
        total = min(total, args.max_steps)
    optimizer = make_optimizer(model, args.learning_rate, args.weight_decay)
    scheduler = linear_schedule(optimizer, int(total * args.warmup), total)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    rng = random.Random(args.seed)
    history, best, step = [], None, 0
    log(f"training: {len(train_feats)} instances, {args.epochs_num} epoch(s), {steps_per_epoch} steps per epoch, "
        f"batch {args.batch_size}, lr {args.learning_rate}, device {device}"
        + (f", mixed precision {str(dtype).replace('torch.', '')}" if dtype else ""))
    for epoch in range(1, args.epochs_num + 1):
        model.train()
        t0, loss_sum, n_loss = time.time(), torch.zeros((), device=device), 0
        bar = tqdm(D.batches(train_feats, args.batch_size, shuffle=True, rng=rng, pad_id=task.enc.pad_id),
                   total=steps_per_epoch, desc=f"epoch {epoch}/{args.epochs_num}", disable=args.no_progress,
                   mininterval=2.0, file=sys.stderr)
        for _, batch in bar:
            if args.max_steps and step >= args.max_steps:
                break
            batch = task.to_device(batch, device)
            with autocast(device, dtype):
                loss = task.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += loss.detach().float()
            n_loss += 1
            if step % args.report_steps == 0:
                avg = float(loss_sum) / n_loss
                bar.set_postfix(loss=f"{avg:.4f}")
                if args.no_progress:
                    log(f"  step {step}/{total}: loss {avg:.4f}")
        bar.close()
        rec = {"epoch": epoch, "train_loss": float(loss_sum) / max(1, n_loss), "steps": step,
               "seconds": round(time.time() - t0, 1)}
        if dev is not None:
            _, preds = evaluate(task, model, dev[0], dev[1], args, device, dtype, desc="dev")
            m = task.evaluate(dev[0], preds)
            rec["dev"] = _jsonable(m)
            improved = best is None or m[task.main_metric] > best
            if improved:
                best = m[task.main_metric]
                rec["best"] = True
                if args.output_model_path:
                    save_finetuned(model, args.output_model_path, meta or task.meta())
            log(f"epoch {epoch}/{args.epochs_num}: train loss {rec['train_loss']:.4f} | dev {task.summary(m)}"
                + (" | best, saved" if improved and args.output_model_path else (" | best" if improved else ""))
                + f" | {rec['seconds']}s")
        else:
            if args.output_model_path:
                save_finetuned(model, args.output_model_path, meta or task.meta())
            log(f"epoch {epoch}/{args.epochs_num}: train loss {rec['train_loss']:.4f} | {rec['seconds']}s")
        history.append(rec)
        if args.max_steps and step >= args.max_steps:
            break
    return history


def _jsonable(m):
    if isinstance(m, dict):
        return {str(k): _jsonable(v) for k, v in m.items()}
    if isinstance(m, (list, tuple)):
        return [_jsonable(v) for v in m]
    return m
