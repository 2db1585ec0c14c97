"""Intermediate-layer distillation (TinyBERT, Jiao et al. 2020), an option of the classifier's distillation
(`run_classifier.py --teacher_model_path`, beside the soft-target logits of --soft_targets).

A teacher (any model uer_like.load_model reads, over the student's vocabulary; only its embedding and encoder
are used) runs on every training batch without gradients, and the student's loss gains, per layer pair
(student layer m, teacher layer g(m)):

  hidden     MSE(H_S^m W_h, H_T^g(m))   each layer's output, over the real tokens
  attention  MSE(A_S^m, A_T^g(m))        pre-softmax attention scores per head, over the (query, key) pairs
                                         attention may use (real tokens; causal order where the mask is causal)
  embedding  MSE(E_S W_h, E_T)           the embedding output (the input of layer 1)

summed over the pairs (as TinyBERT's rep_loss and att_loss), each weighted by its flag, and added to the task's
loss x --distill_task_weight (its cross-entropy, with --soft_targets the soft-target mix):

  loss = task_weight x task + hidden_weight x hidden + attention_weight x attention + embedding_weight x embedding

Layer mapping (--distill_layers): `uniform` (default) is TinyBERT's g(m) = m x N / M (M student, N teacher
layers; N // M teacher layers per student layer), or explicit pairs `1:3,2:6` (student:teacher, 1-based; 0
is the embedding output). W_h (a Linear student width -> teacher width, with bias, one for every layer as
TinyBERT's fit_dense) is learned with the student when the widths differ (--distill_projection auto), always
(`always`) or never (`none`: refused in one line when the widths differ). It is trained, not kept: it is left
out of the saved model (state_dict), so the fine-tuned model is the plain classifier; a resumed run starts it
afresh. Attention scores need as many heads in both models. TextBrewer's IntermediateMatch configures the same
(layer pairs, loss, weight); here the loss is MSE and the pairs and weights are flags.
"""
import os
from contextlib import contextmanager

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..flags import Float
from ..layers.context import EncoderTrace
from .models import TaskModel, init_linear

WEIGHT = Float(min=0)
TERMS = ("hidden", "attention", "embedding")
PROJECTION = "distill_projection"  # the student's submodule holding W_h (never saved)


def add_args(g):
    g.add_argument("--teacher_model_path", default=None,
                   help="intermediate-layer distillation (TinyBERT): a teacher model over the same vocabulary "
                        "whose hidden states and attention scores the student learns (distill.py)")
    g.add_argument("--teacher_config_path", default=None, help="the teacher's config (default: the one beside it)")
    g.add_argument("--distill_layers", default="uniform",
                   help="student:teacher layer pairs, e.g. 1:3,2:6 (1-based; 0 the embedding output), or uniform: "
                        "student layer m learns teacher layer m x N / M (default)")
    g.add_argument("--distill_projection", choices=["auto", "always", "none"], default="auto",
                   help="a learned projection student width -> teacher width for hidden states: when the widths "
                        "differ (auto), always, or none (refused when the widths differ)")
    for term, default in (("task", 1.0), ("hidden", 1.0), ("attention", 1.0), ("embedding", 1.0)):
        g.add_argument(f"--distill_{term}_weight", type=WEIGHT, default=default,
                       help=f"weight of the {term} loss in the distillation's sum (default {default})")


def layer_map(spec, student_layers, teacher_layers):
    """--distill_layers -> [(student layer, teacher layer)], 1-based (0: the embedding output, paired by the
    embedding term, not listed here). ConfigError, one line, for a malformed or out-of-range mapping."""
    if spec == "uniform":
        if teacher_layers < student_layers:
            raise ConfigError(f"--distill_layers uniform: the teacher has {teacher_layers} layers, fewer than the "
                              f"student's {student_layers}; give pairs, e.g. --distill_layers 1:1,2:{teacher_layers}")
        step = teacher_layers // student_layers
        return [(m, m * step) for m in range(1, student_layers + 1)]
    pairs = []
    for part in str(spec).split(","):
        bits = part.strip().split(":")
        if len(bits) != 2 or not all(b.strip().isdigit() for b in bits):
            raise ConfigError(f"--distill_layers {spec!r}: {part.strip()!r} is not student:teacher (two layer "
                              "numbers, e.g. 1:3,2:6), nor is the value uniform")
        m, n = int(bits[0]), int(bits[1])
        if not 1 <= m <= student_layers or not 1 <= n <= teacher_layers:
            raise ConfigError(f"--distill_layers {spec!r}: pair {m}:{n} is outside the student's layers 1..{student_layers} "
                              f"or the teacher's 1..{teacher_layers} (the embedding output is paired by "
                              "--distill_embedding_weight)")
        if m in [p[0] for p in pairs]:
            raise ConfigError(f"--distill_layers {spec!r}: student layer {m} is paired twice")
        pairs.append((m, n))
    return pairs


@contextmanager
def recording(encoder, attentions=True):
    """Record the per-layer outputs of the encoder's forwards inside the block: yields the EncoderTrace."""
    if not hasattr(encoder, "trace"):
        raise ConfigError(f"intermediate-layer distillation reads a transformer encoder's layers; "
                          f"{type(encoder).__name__} does not record them")
    trace = EncoderTrace(attentions)
    old, encoder.trace = encoder.trace, trace
    try:
        yield trace
    finally:
        encoder.trace = old


def _drop_projection(module, state, prefix, local_metadata):
    for k in [k for k in state if k.startswith(prefix + PROJECTION + ".")]:
        del state[k]


class IntermediateDistiller:
    """The teacher and the terms; `attach(student)` adds W_h to the student (when needed), `loss(...)` the sum."""

    def __init__(self, teacher, student_config, spec="uniform", projection="auto", weights=None):
        """teacher: a TaskModel (embedding + encoder), frozen here; weights: {task, hidden, attention,
        embedding} -> float (defaults 1)."""
        self.teacher = teacher.eval().requires_grad_(False)
        t, s = teacher.config, student_config
        self.weights = {"task": 1.0, **{k: 1.0 for k in TERMS}, **(weights or {})}
        self.pairs = layer_map(spec, s.layers_num, t.layers_num)
        self.causal = s.mask == "causal"
        if self.weights["attention"] and s.heads_num != t.heads_num:
            raise ConfigError(f"attention-score distillation compares heads one to one, but the student has "
                              f"{s.heads_num} heads and the teacher {t.heads_num}; pass --distill_attention_weight 0 "
                              "or a teacher with as many heads")
        widths = (s.hidden_size, t.hidden_size)
        self.projected = projection == "always" or (projection == "auto" and widths[0] != widths[1])
        if widths[0] != widths[1] and not self.projected and (self.weights["hidden"] or self.weights["embedding"]):
            raise ConfigError(f"the student's hidden size {widths[0]} differs from the teacher's {widths[1]}: hidden "
                              "states cannot be compared without a projection; pass --distill_projection auto (a "
                              "learned W_h) or set --distill_hidden_weight and --distill_embedding_weight to 0")
        self.widths = widths

    def attach(self, student):
        """Give the student its W_h (a submodule, so the optimizer trains it; left out of its state_dict)."""
        if self.projected:
            proj = nn.Linear(*self.widths)
            init_linear(proj)
            setattr(student, PROJECTION, proj)
            student._register_state_dict_hook(_drop_projection)
        return student

    def teacher_trace(self, batch, device):
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad(), recording(self.teacher.encoder, bool(self.weights["attention"])) as trace:
            self.teacher.encode(batch["src"], batch["seg"])
        return trace

    def terms(self, student, s_trace, t_trace, seg):
        """-> {hidden, attention, embedding}: the unweighted losses (fp32 scalars)."""
        real = seg > 0  # [batch, seq]
        proj = getattr(student, PROJECTION, None) if self.projected else None

        def hidden_mse(hs, ht):
            hs = proj(hs.float()) if proj is not None else hs.float()
            diff = (hs - ht.float()).pow(2).mean(-1)  # [batch, seq]
            return diff[real].mean()

        out = {"hidden": torch.zeros((), device=seg.device), "attention": torch.zeros((), device=seg.device)}
        if self.weights["hidden"]:
            out["hidden"] = sum(hidden_mse(s_trace.hidden[m], t_trace.hidden[n]) for m, n in self.pairs)
        if self.weights["embedding"]:
            out["embedding"] = hidden_mse(s_trace.hidden[0], t_trace.hidden[0])
        else:
            out["embedding"] = torch.zeros((), device=seg.device)
        if self.weights["attention"]:
            mask = real[:, None, :, None] & real[:, None, None, :]  # [batch, 1, queries, keys]
            if self.causal:
                mask = mask & torch.ones(seg.size(1), seg.size(1), dtype=torch.bool, device=seg.device).tril()
            total = 0
            for m, n in self.pairs:
                a_s = torch.where(mask, s_trace.scores[m - 1], 0.0)
                a_t = torch.where(mask, t_trace.scores[n - 1], 0.0)
                total = total + (a_s - a_t).pow(2).sum() / (mask.sum() * a_s.size(1))
            out["attention"] = total
        return out

    def loss(self, task_loss, student, s_trace, batch):
        """The weighted sum; returns (loss, {term: value} with the task's)."""
        t_trace = self.teacher_trace(batch, batch["src"].device)
        terms = self.terms(student, s_trace, t_trace, batch["seg"])
        terms["task"] = task_loss
        return sum(self.weights[k] * terms[k] for k in ("task",) + TERMS), terms


def build_distiller(args, vocab_size, student_config, vocab_file=None):
    """The distiller of the flags (None without --teacher_model_path), the teacher loaded with the project's
    loader (core.load_backbone: the vocabulary checked against its embedding)."""
    path = getattr(args, "teacher_model_path", None)
    if not path:
        return None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--teacher_model_path runs in one process: its projection W_h is trained outside the "
                          "distributed forward; run without torchrun")
    from .core import load_backbone  # the loop's module: imported when a teacher is asked for

    config, backbone, _ = load_backbone(path, args.teacher_config_path, vocab_size, vocab_file=vocab_file)
    teacher = TaskModel(config, vocab_size, backbone)
    weights = {k: getattr(args, f"distill_{k}_weight") for k in ("task",) + TERMS}
    return IntermediateDistiller(teacher, student_config, args.distill_layers, args.distill_projection, weights)
