"""Batch fields: a registry of builders, field name -> the function that makes it from a micro-batch.

A target declares the fields its loss reads (`batch_keys`), an encoder the inputs it takes beside src and seg
(`input_keys`); the collator (training/batches.py) builds exactly those, through this registry, and refuses at
start a field that has no builder or that the dataset's processor cannot supply. A builder names the
`sources` it reads, which a processor declares it supplies (processors.PROCESSOR_SOURCES), and the runtime
`resources` it needs (the zen encoder's n-gram lexicon), which whoever makes the collator passes in. A new
field is one registration, in the module that needs it:

    from uer_like.data.fields import register_field

    @register_field("tgt_first", sources=("tokens",))
    def build_first(mb):
        return mb.src[:, 1].copy()  # numpy [batch]

A builder returns a numpy array (the collator makes it a tensor) or a Python int; it reads the micro-batch `mb`
(MicroBatch: src/seg as the model sees them, the instance rows, labels, masks) and never the model.
"""
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np

from ..registry import Registry
from .processors import PURPOSE_ELECTRA_SAMPLE
from .rng import derive

BATCH_FIELDS = Registry("batch field")
BASE_FIELDS = ("src", "seg", "n_tokens")  # every batch has them: the model's inputs and the token count


@dataclass(frozen=True)
class FieldBuilder:
    name: str
    build: Callable  # (MicroBatch) -> numpy array or int
    sources: Tuple[str, ...] = ()  # what it reads of the dataset (processors.PROCESSOR_SOURCES)
    masks: bool = False  # it reads the masks: src then holds the masked tokens
    resources: Tuple[str, ...] = ()  # runtime objects it reads from mb.resources


def register_field(name, sources=(), masks=False, resources=()):
    """Decorator: register `fn(mb)` as the builder of batch field `name`."""
    def deco(fn):
        BATCH_FIELDS.register(name)(FieldBuilder(name, fn, tuple(sources), masks, tuple(resources)))
        return fn

    return deco


class MicroBatch:
    """What builders read: the rows of one micro-batch, padded to `L`, as the model sees them.

    indices, epoch: the instance ids and the epoch; rows: each instance's stored token ids; lengths: the tokens
    each row gives the model; src, seg: [B, L] int64 (src masked when a field reads masks); masks: per row
    (positions, labels) or None; labels: the instances' labels [B]; collator: the Collator (seed, dataset);
    targets: an encoder-decoder instance's target ids per row, [CLS] ... [SEP] (src then holds the sources), or None."""

    def __init__(self, collator, indices, epoch, rows, lengths, src, seg, masks, resources, targets=None):
        self.collator, self.indices, self.epoch, self.rows = collator, indices, epoch, rows
        self.lengths, self.src, self.seg, self.masks, self.resources = lengths, src, seg, masks, resources
        self.targets = targets
        self.B, self.L = src.shape
        self._cache = {}

    @property
    def labels(self):
        return np.asarray(self.collator.ds.labels[np.asarray(self.indices)], np.int64)

    def cached(self, key, fn):
        """fn() once per micro-batch (for fields computed together)."""
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]


# ------------------------------------------------------------------------------------------ built-in fields
@register_field("mlm_pos", sources=("masks",), masks=True)
def _mlm_pos(mb):
    """Flat indices into batch*seq of the masked tokens."""
    return np.concatenate([pos + b * mb.L for b, (pos, _) in enumerate(mb.masks)]).astype(np.int64)


@register_field("mlm_labels", sources=("masks",), masks=True)
def _mlm_labels(mb):
    """The original ids of the masked tokens (PERT: their original positions)."""
    return np.concatenate([labels for _, labels in mb.masks]).astype(np.int64)


@register_field("tgt_sp", sources=("sentence_label",))
def _tgt_sp(mb):
    return mb.labels


@register_field("tgt_cls", sources=("class_label",))
def _tgt_cls(mb):
    return mb.labels


def _next_tokens(mb):
    """[B, L]: the next token of every position that predicts one, 0 elsewhere (UER's tgt_lm). An lm piece: every position
    the model reads (the piece's last token is only a target). A prefix instance (the processor's instance
    shape says `prefix`): from the source's last token ([SEP], which predicts the first target token) to the
    last but one token (the last one the model reads when the target was cut); the source predicts nothing."""
    return _next_token_rows(mb)[0]


def _next_token_rows(mb):
    """(next tokens [B, L] as _next_tokens, which positions predict one [B, L] bool): the positions come
    from the rows, not from the ids, since id 0 is a real token in some vocabularies (GPT-2's '!')."""
    def build():
        tgt = np.zeros((mb.B, mb.L), np.int64)
        has = np.zeros((mb.B, mb.L), bool)
        if mb.collator.shape.prefix:
            for b, (i, ids, n) in enumerate(zip(mb.indices, mb.rows, mb.lengths)):
                a = int(mb.collator.ds.seg_a_len[int(i)])
                end = min(len(ids) - 1, n)  # a cut instance holds one token beyond the n the model reads
                tgt[b, a - 1:end] = ids[a:end + 1]
                has[b, a - 1:end] = True
            return tgt, has
        for b, (ids, n) in enumerate(zip(mb.rows, mb.lengths)):
            tgt[b, :n] = ids[1:n + 1]
            has[b, :n] = True
        return tgt, has

    return mb.cached("next_tokens", build)


@register_field("tgt_lm", sources=("next_tokens",))
def _tgt_lm(mb):
    """Next-token ids [B, L], 0 = ignore."""
    return _next_tokens(mb)


@register_field("lm_pos", sources=("next_tokens",))
def _lm_pos(mb):
    """Flat positions of the real next-token targets (the loss gathers them without a device sync), whatever
    their ids (0 included)."""
    return np.flatnonzero(_next_token_rows(mb)[1].reshape(-1))


@register_field("tgt_forward", sources=("next_tokens",))
def _tgt_forward(mb):
    return _next_tokens(mb)


@register_field("tgt_backward", sources=("previous_tokens",))
def _tgt_backward(mb):
    """The backward LM's targets: the previous token [B, L], 0 = ignore."""
    tgt = np.zeros((mb.B, mb.L), np.int64)
    for b, (ids, n) in enumerate(zip(mb.rows, mb.lengths)):
        tgt[b, 1:n] = ids[:n - 1]
    return tgt


@register_field("electra_seed")
def _electra_seed(mb):
    """ELECTRA's sampling noise: a function of the step (a resumed run draws the same)."""
    c = mb.collator
    return derive(c.seed, PURPOSE_ELECTRA_SAMPLE, int(mb.epoch), int(mb.indices[0])) >> 1


def _decoder_rows(mb):
    """tgt_in, tgt_out (0 = padding) [B, T] of the targets: the decoder reads a target without its last token and
    predicts it without its first; T is the longest rounded up as the sources are."""
    def build():
        pad_to = mb.collator.pad_to
        T = max(len(t) for t in mb.targets) - 1
        T = (T + pad_to - 1) // pad_to * pad_to
        tgt_in = np.full((mb.B, T), mb.collator.pad_id, np.int64)
        tgt_out = np.zeros((mb.B, T), np.int64)
        for b, t in enumerate(mb.targets):
            tgt_in[b, :len(t) - 1] = t[:-1]
            tgt_out[b, :len(t) - 1] = t[1:]
        return tgt_in, tgt_out

    return mb.cached("decoder_rows", build)


@register_field("tgt_in", sources=("seq2seq",))
def _tgt_in(mb):
    """The decoder's input: each target but its last token, [B, T], padded."""
    return _decoder_rows(mb)[0]


@register_field("tgt_out", sources=("seq2seq",))
def _tgt_out(mb):
    """What the decoder predicts: each target but its first token, [B, T], 0 = padding."""
    return _decoder_rows(mb)[1]


@register_field("tgt_seg", sources=("seq2seq",))
def _tgt_seg(mb):
    """1 over each target's tokens in tgt_in, 0 over padding [B, T]."""
    tgt_in = _decoder_rows(mb)[0]
    seg = np.zeros(tgt_in.shape, np.int64)
    for b, t in enumerate(mb.targets):
        seg[b, :len(t) - 1] = 1
    return seg
