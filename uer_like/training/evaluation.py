"""Held-out evaluation during pretraining: the dev set, its figures, and where they are written.

A dev set is either another dataset made by preprocess.py from held-out text (pretrain.py
--dev_dataset_path; it must have the training dataset's processor, tokenization, seq_length and masking), or
a fraction of the training dataset's instances (--dev_fraction), chosen by `held_out` from a seed and never
trained on. The split is recorded in every checkpoint (`split_record`), so a resumed run keeps it.

Evaluation runs the model in eval mode (no dropout) under no_grad, on fixed batches: the first
--eval_batches x --batch_size dev instances in a fixed shuffled order, batch j on rank j mod world. Dynamic masks
(and ELECTRA's sampling noise) come from the collator's counter-based generator keyed by DEV_MASK_SEED, not
by --seed and not by any RNG state, and torch's RNG state is restored afterwards: the same weights always
get the same figures, and a run trains bit-identically with and without evaluation.

Figures per reported target (Model.loss_names), summed over the dev batches and all-reduced:
  loss   the per-batch loss weighted by the batch's count (masked tokens for mlm, next tokens for lm,
         instances for sp/cls, real tokens for ELECTRA's discriminator): the token (or instance) average
  ppl    exp(loss), for targets that declare `perplexity = True` (mlm, lm, ELECTRA's generator)
  acc    correct / count: masked-token (mlm), next-token (lm), sentence-prediction (sp) accuracy, ELECTRA's
         discriminator accuracy, with its `baseline` (predicting "original" everywhere)
and `loss` overall: the sum over the config's targets (what training minimises), which picks the best
checkpoint. Each evaluation is one log line (`format_line`), tensorboard scalars under dev/, and one JSON
line appended to <checkpoint_dir>/dev_eval.jsonl (`DEV_LOG`)."""
import contextlib
import hashlib
import json
import math
import os

import numpy as np
import torch

from ..data.processors import PURPOSE_DEV_MASK, PURPOSE_DEV_SPLIT
from ..data.rng import derive
from ..errors import DataError, TrainingError
from ..registry import TARGETS
from . import distributed as dist_utils

DEV_MASK_SEED = derive(PURPOSE_DEV_MASK) >> 1  # the dev collator's seed: the same for every run and --seed
DEV_LOG = "dev_eval.jsonl"  # in the checkpoint directory, one JSON object per evaluation
# manifest keys a dev dataset shares with the training dataset (its figures are then the training objective's)
FIT_KEYS = ("data_processor", "seq_length", "tokenizer", "do_lower_case", "vocab.sha256", "vocab.size", "segmenter",
            "mask_prob", "whole_word_masking", "mask_decision", "masking.strategy")


def held_out(n, fraction, seed):
    """(dev ids, training ids), each sorted int64: round(fraction x n) instances (at least one when fraction > 0),
    drawn by a generator keyed by (seed, PURPOSE_DEV_SPLIT) alone."""
    k = min(n, max(1, round(fraction * n))) if fraction > 0 else 0
    perm = np.random.Generator(np.random.PCG64([seed, PURPOSE_DEV_SPLIT])).permutation(n)
    return np.sort(perm[:k]).astype(np.int64), np.sort(perm[k:]).astype(np.int64)


def ids_digest(ids):
    return hashlib.sha256(np.ascontiguousarray(ids, np.int64).tobytes()).hexdigest()


def split_record(fraction, seed, dev_ids):
    """What a checkpoint records of a --dev_fraction split (None: no split)."""
    if not fraction:
        return None
    return {"fraction": float(fraction), "seed": int(seed), "instances": int(len(dev_ids)),
            "sha256": ids_digest(dev_ids)}


def _get(m, dotted):
    for part in dotted.split("."):
        if not isinstance(m, dict) or part not in m:
            return None
        m = m[part]
    return m


def check_fits(dev_manifest, train_manifest, dev_path, train_path):
    """DataError in one line when a dev dataset was made otherwise than the training dataset."""
    if train_manifest.get("masking") is not None and dev_manifest.get("masking") is None:
        dev_manifest = dict(dev_manifest, masking={"strategy": "mlm"})  # datasets written before the key
    diff = [(k, _get(dev_manifest, k), _get(train_manifest, k)) for k in FIT_KEYS
            if _get(dev_manifest, k) != _get(train_manifest, k)]
    if diff:
        desc = ", ".join(f"{k} {a!r} (training: {b!r})" for k, a, b in diff)
        raise DataError(f"--dev_dataset_path {dev_path} does not fit the training dataset {train_path}: {desc}; "
                        "re-run preprocess.py on the held-out text with the training dataset's options")


class DevSet:
    """The instances evaluated: `ids` of a dataset (through `collate`, a Collator keyed by DEV_MASK_SEED) in a fixed
    shuffled order (so that a cap samples the whole set, not its first documents), capped at max_batches x
    batch_size (0: all), in batches of batch_size."""

    def __init__(self, collate, ids, batch_size, max_batches, source, dataset_key):
        ids = np.asarray(ids, np.int64)
        ids = ids[np.random.Generator(np.random.PCG64([PURPOSE_DEV_MASK, len(ids)])).permutation(len(ids))]
        if max_batches:
            ids = ids[:max_batches * batch_size]
        if not len(ids):
            raise DataError(f"{source}: the dev set has no instances")
        self.collate = collate
        self.ids = ids
        self.batch_size = batch_size
        self.batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
        self.source = source
        # what the figures are comparable across (a resumed run's best dev loss is kept only for the same one)
        self.identity = f"{dataset_key}:{ids_digest(ids)[:16]}:{len(ids)}"

    def shard(self, rank, world, same_count=False):
        """[(instance ids, counted)] of one rank: batch j on rank j mod world. same_count (FSDP, whose forward
        is a collective): every rank runs as many batches, the extra ones repeat its first and are not counted."""
        mine = [(b, True) for j, b in enumerate(self.batches) if j % world == rank]
        if same_count:
            rounds = -(-len(self.batches) // world)
            filler = mine[0][0] if mine else self.batches[0]
            mine += [(filler, False)] * (rounds - len(mine))
        return mine


def reports_perplexity(name):
    return name in TARGETS and bool(getattr(TARGETS.get(name), "perplexity", False))


@torch.no_grad()
def evaluate(model, dev, info, loss_names, objective_names, autocast=contextlib.nullcontext, to_device=None,
             same_count=False):
    """The dev figures of `model` (the unwrapped module: its forward takes a batch dict) on every rank:
    {"loss": overall, "instances": n, "targets": {name: {"loss", "acc", "count"[, "ppl"][, "baseline"]}}}.
    Eval mode and no_grad inside, the model's mode and torch's RNG state restored after."""
    names = list(loss_names)
    objective = [n for n in objective_names if n not in names]
    rows = names + objective
    sums = torch.zeros(len(rows), 5, dtype=torch.float64, device=info.device)  # loss x count, correct, count,
    instances = torch.zeros(1, dtype=torch.float64, device=info.device)        # baseline, has baseline
    devices = [info.device.index or 0] if info.device.type == "cuda" else []
    was_training = model.training
    with torch.random.fork_rng(devices=devices):
        model.eval()
        try:
            for ids, counted in dev.shard(info.rank, info.world_size, same_count):
                batch = dev.collate(ids, 0)
                if to_device is not None:
                    batch = to_device(batch)
                with autocast():
                    out = model(batch)
                if not counted:
                    continue
                instances += len(ids)
                for i, name in enumerate(rows):
                    if name not in out:
                        continue
                    r = out[name]
                    count = r["count"].double()
                    base = r.get("baseline")
                    sums[i] += torch.stack([r["loss"].detach().double() * count, r["correct"].double(), count,
                                            count.new_zeros(()) if base is None else base.double(),
                                            count.new_ones(()) if base is not None else count.new_zeros(())])
        finally:
            model.train(was_training)
    dist_utils.all_reduce_sum(info, sums)
    dist_utils.all_reduce_sum(info, instances)
    sums = sums.cpu().tolist()
    targets = {}
    for name, (loss_sum, correct, count, base, has_base) in zip(rows, sums):
        c = max(count, 1.0)
        t = {"loss": loss_sum / c, "acc": correct / c, "count": int(count)}
        if name in names and reports_perplexity(name):
            t["ppl"] = _exp(t["loss"])
        if has_base:
            t["baseline"] = base / c
        targets[name] = t
    total = sum(targets[n]["loss"] for n in objective_names)
    return {"loss": total, "instances": int(instances.item()), "targets": {n: targets[n] for n in names}}


def _exp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return float("inf")


def format_line(step, fig, best=None):
    """`dev step N: mlm loss 6.1234, ppl 456.78, acc 0.1234 | sp loss ... | 96 instances | best ...`"""
    parts = []
    for name, t in fig["targets"].items():
        p = f"{name} loss {t['loss']:.4f}"
        if "ppl" in t:
            p += f", ppl {t['ppl']:.2f}"
        p += f", acc {t['acc']:.4f}"
        if "baseline" in t:
            p += f" (baseline {t['baseline']:.4f})"
        parts.append(p)
    if len(fig["targets"]) > 1:
        parts.append(f"loss {fig['loss']:.4f}")
    parts.append(f"{fig['instances']} instances")
    if best is not None:
        parts.append(f"best loss {best['loss']:.4f} at step {best['step']}")
    return f"dev step {step}: " + " | ".join(parts)


def write_record(directory, step, fig, best=None):
    """Append the evaluation to <directory>/dev_eval.jsonl (a resumed run may repeat a step: the last line of a
    step is its record)."""
    rec = {"step": step, **fig}
    if best is not None:
        rec["best_step"] = best["step"]
    path = os.path.join(directory, DEV_LOG)
    try:
        os.makedirs(directory, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
    except OSError as e:
        raise TrainingError(f"could not append the dev figures to {path}: {e.strerror or e}") from None


def add_scalars(tb, step, fig):
    tb.add_scalar("dev/loss", fig["loss"], step)
    for name, t in fig["targets"].items():
        tb.add_scalar(f"dev/loss/{name}", t["loss"], step)
        tb.add_scalar(f"dev/acc/{name}", t["acc"], step)
        if "ppl" in t:
            tb.add_scalar(f"dev/ppl/{name}", t["ppl"], step)
        if "baseline" in t:
            tb.add_scalar(f"dev/baseline_acc/{name}", t["baseline"], step)
