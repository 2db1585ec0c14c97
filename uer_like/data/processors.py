"""Data processors (the Python reference path): documents of a chunk -> training instances.

An instance is (ids, word_start bits, seg_a_len, label): `ids` already holds [CLS]/[SEP]; the first
`seg_a_len` tokens are segment 1 and the rest segment 2; `label` is the sentence-prediction or
class label (-1 when none). Processors:
  bert    sentence pairs, 50% random next sentence (NSP), targets mlm + sp
  albert  sentence pairs, 50% swapped order (SOP), targets mlm + sp
  mlm     [CLS] document piece [SEP], target mlm
  lm      [CLS] document [SEP] cut into seq_length + 1 pieces, target lm (or bilm: the collator derives
          the next-token and previous-token targets of UER-py's bidirectional LM from the same pieces)
  cls     `label<TAB>text_a[<TAB>text_b]` lines, target cls
  prefixlm `source<TAB>target` lines -> [CLS] source [SEP] target [SEP], target lm on the target tokens with
          mask causal_with_prefix (the prefix LM, UniLM; data/prefixlm.py)
Encoder-decoder processors (UER-py's; an instance is a source for the encoder and a target for the decoder, built
into the batch by data/seq2seq.py):
  t5      mlm's instances; the collator replaces each run of masked tokens by a sentinel (T5 span corruption)
  bart    [CLS] permuted sentences [SEP] [CLS] the sentences in order [SEP]; the source is masked and each run of
          [MASK] becomes one (text infilling + sentence permutation)
  gsg     [CLS] source, one [MASK] per gap sentence [SEP] [CLS] the gap sentences [SEP] (PEGASUS)
"""
from dataclasses import dataclass
from typing import List

from ..errors import DataError

SEQ2SEQ_PROCESSOR_NAMES = ("t5", "bart", "gsg")  # encoder-decoder pretraining: data/seq2seq.py
DATA_PROCESSOR_NAMES = ("bert", "mlm", "lm", "albert", "cls", "prefixlm") + SEQ2SEQ_PROCESSOR_NAMES
# What each processor's datasets supply, for the batch-field builders (data/fields.py) to read: tokens (every
# instance, as the model input), masks (maskable instances: word-start bits or static masks), sentence_label
# (NSP / SOP), class_label (cls), next_tokens (the next token of every position that has one to predict: lm
# pieces of seq_length + 1; prefixlm: the target segment's), previous_tokens (lm: the backward LM's targets),
# seq2seq (a source for an encoder and a target for a decoder: t5, bart, gsg)
PROCESSOR_SOURCES = {"bert": ("tokens", "masks", "sentence_label"), "albert": ("tokens", "masks", "sentence_label"),
                     "mlm": ("tokens", "masks"), "lm": ("tokens", "next_tokens", "previous_tokens"),
                     "cls": ("tokens", "class_label"), "prefixlm": ("tokens", "next_tokens"),
                     "t5": ("seq2seq",), "bart": ("seq2seq",), "gsg": ("seq2seq",)}
PURPOSE_PAIRS, PURPOSE_STATIC_MASK, PURPOSE_DYNAMIC_MASK, PURPOSE_ELECTRA_SAMPLE = 1, 2, 3, 4
PURPOSE_DEV_SPLIT, PURPOSE_DEV_MASK = 5, 6  # the held-out split and the dev set's masks (training/evaluation.py)
PURPOSE_SEQ2SEQ = 7  # bart's sentence permutation, gsg's random gap sentences


@dataclass(frozen=True)
class InstanceShape:
    """What every instance of a processor looks like, checked per batch at training time (cheap checks that
    catch a corrupt dataset body whose header is intact: offsets out of order or shifted)."""
    framed: bool  # [CLS] first and [SEP] last, segment 1 of at least [CLS] + one token
    extra: int = 0  # tokens allowed beyond seq_length (lm: seq_length + 1, the target shifted by one)
    # segment 1 is a source [CLS] ... [SEP] followed by at least one target token (prefixlm; a target cut at
    # seq_length ends without [SEP] and keeps the next token, `extra`, as the label of the last position the
    # model reads); the next-token targets begin at the source's [SEP] (fields.py)
    prefix: bool = False
    # a source (segment 1, at most seq_length, masked alone) then a target (at most the manifest's tgt_seq_length),
    # each framed [CLS] ... [SEP] (bart, gsg)
    target: bool = False

    def problem(self, ids, seg_a_len, seq_length, cls_id, sep_id, tgt_seq_length=0):
        """None, or what is wrong with one instance."""
        n = len(ids)
        if n < 2:
            return f"{n} token(s)"
        longest = seq_length + (tgt_seq_length if self.target else self.extra)
        if n > longest:
            return f"{n} tokens, more than {longest}"
        if self.framed:
            if ids[0] != cls_id or ids[-1] != sep_id:
                return f"does not start with [CLS] ({cls_id}) and end with [SEP] ({sep_id}): {int(ids[0])} ... " \
                       f"{int(ids[-1])}"
            if not 2 <= seg_a_len <= n:
                return f"segment 1 of {seg_a_len} tokens in an instance of {n}"
        if self.prefix:
            if not 3 <= seg_a_len < n:
                return f"a source (segment 1) of {seg_a_len} tokens in an instance of {n}"
            if ids[0] != cls_id or ids[seg_a_len - 1] != sep_id:
                return f"a source that does not run [CLS] ({cls_id}) ... [SEP] ({sep_id}): {int(ids[0])} ... " \
                       f"{int(ids[seg_a_len - 1])}"
        if self.target:
            if not 2 <= seg_a_len <= min(seq_length, n - 2) or ids[seg_a_len - 1] != sep_id or ids[seg_a_len] != cls_id:
                return f"no [SEP] [CLS] between a source of {seg_a_len} tokens and its target ({n} in all)"
        return None

    def maskable(self, n, seg_a_len):
        """The tokens of an instance of n that masking may touch: the source of a source-target instance."""
        return seg_a_len if self.target else n


INSTANCE_SHAPES = {"bert": InstanceShape(framed=True), "albert": InstanceShape(framed=True),
                   "mlm": InstanceShape(framed=True), "cls": InstanceShape(framed=True),
                   "lm": InstanceShape(framed=False, extra=1),  # lm: only the first piece of a document is framed
                   "prefixlm": InstanceShape(framed=False, extra=1, prefix=True),  # a cut target: + its next token
                   "t5": InstanceShape(framed=True), "bart": InstanceShape(framed=True, target=True),
                   "gsg": InstanceShape(framed=True, target=True)}


@dataclass
class Sentence:
    ids: List[int]
    bits: List[int]


@dataclass
class Instance:
    ids: List[int]
    bits: List[int]
    seg_a_len: int
    label: int = -1


class SentenceEncoder:
    """Text -> ids and word-start bits. Bits mark the first piece of each word: a word is the
    tokenizer's own word (a CJK character or a whitespace/punctuation-delimited run) or, with
    whole-word segmentation, a jieba word (`segment` returns the word list of the text). Ids never
    depend on the segmentation."""

    def __init__(self, tokenizer, segment=None):
        self.tokenizer = tokenizer
        self.vocab = tokenizer.vocab
        self.segment = segment

    def __call__(self, text):
        pieces, starts = self.tokenizer.tokenize_with_starts(text)
        ids = self.vocab.convert_tokens_to_ids(pieces)
        if self.segment is None:
            bits = [1 if s >= 0 else 0 for s in starts]
        else:
            word_starts = set()
            off = 0
            for w in self.segment(text):
                word_starts.add(off)
                off += len(w)
            bits = [1 if s >= 0 and s in word_starts else 0 for s in starts]
        return Sentence(ids, bits)


def _concat(sentences):
    ids, bits = [], []
    for s in sentences:
        ids.extend(s.ids)
        bits.extend(s.bits)
    return Sentence(ids, bits)


def _truncate_pair(a, b, max_tokens, rng):
    while len(a.ids) + len(b.ids) > max_tokens:
        t = a if len(a.ids) > len(b.ids) else b
        if rng.random() < 0.5:
            del t.ids[0], t.bits[0]
        else:
            t.ids.pop(), t.bits.pop()


def _pair_instance(a, b, cls_id, sep_id, label):
    ids = [cls_id] + a.ids + [sep_id] + b.ids + [sep_id]
    bits = [1] + a.bits + [1] + b.bits + [1]
    return Instance(ids, bits, len(a.ids) + 2, label)


def sentence_pair_instances(docs, rng, seq_length, cls_id, sep_id, sop=False, short_seq_prob=0.1):
    """Google's create_instances_from_document, over the documents of one chunk (random next
    sentences come from another document of the same chunk)."""
    max_tokens = seq_length - 3
    out = []
    for d_idx, doc in enumerate(docs):
        target_len = max_tokens
        if rng.random() < short_seq_prob:
            target_len = rng.randint(2, max_tokens)
        current, cur_len, i = [], 0, 0
        while i < len(doc):
            current.append(doc[i])
            cur_len += len(doc[i].ids)
            if i == len(doc) - 1 or cur_len >= target_len:
                a_end = rng.randint(1, len(current) - 1) if len(current) >= 2 else 1
                a = _concat(current[:a_end])
                label = 0
                if len(docs) > 1 and (len(current) == 1 or (not sop and rng.random() < 0.5)):
                    label = 1
                    target_b = target_len - len(a.ids)
                    r = rng.randint(0, len(docs) - 2)
                    r = r + 1 if r >= d_idx else r
                    rdoc = docs[r]
                    b_sents, b_len = [], 0
                    for j in range(rng.randint(0, len(rdoc) - 1), len(rdoc)):
                        b_sents.append(rdoc[j])
                        b_len += len(rdoc[j].ids)
                        if b_len >= target_b:
                            break
                    b = _concat(b_sents)
                    i -= len(current) - a_end
                else:
                    b = _concat(current[a_end:])
                    if sop and rng.random() < 0.5:
                        a, b, label = b, a, 1
                _truncate_pair(a, b, max_tokens, rng)
                if a.ids and b.ids:
                    out.append(_pair_instance(a, b, cls_id, sep_id, label))
                current, cur_len = [], 0
            i += 1
    return out


def mlm_instances(docs, seq_length, cls_id, sep_id):
    out = []
    n = seq_length - 2
    for doc in docs:
        s = _concat(doc)
        for k in range(0, len(s.ids), n):
            ids = [cls_id] + s.ids[k:k + n] + [sep_id]
            bits = [1] + s.bits[k:k + n] + [1]
            out.append(Instance(ids, bits, len(ids)))
    return out


def lm_instances(docs, seq_length, cls_id, sep_id):
    out = []
    n = seq_length + 1
    for doc in docs:
        s = _concat(doc)
        ids = [cls_id] + s.ids + [sep_id]
        bits = [1] + s.bits + [1]
        for k in range(0, len(ids), n):
            piece = ids[k:k + n]
            if len(piece) >= 2:
                out.append(Instance(piece, bits[k:k + n], len(piece) - 1))
    return out


def cls_instance(a, b, label, seq_length, cls_id, sep_id):
    if b is None:
        a = Sentence(a.ids[: seq_length - 2], a.bits[: seq_length - 2])
        return Instance([cls_id] + a.ids + [sep_id], [1] + a.bits + [1], len(a.ids) + 2, label)
    a, b = Sentence(list(a.ids), list(a.bits)), Sentence(list(b.ids), list(b.bits))
    while len(a.ids) + len(b.ids) > seq_length - 3:
        t = a if len(a.ids) > len(b.ids) else b
        t.ids.pop(), t.bits.pop()
    return _pair_instance(a, b, cls_id, sep_id, label)


def parse_cls_line(text, line_no, path):
    """`label<TAB>text_a[<TAB>text_b]` -> (label, text_a, text_b). Raises DataError naming the line."""
    cols = text.split("\t")
    if len(cols) not in (2, 3):
        raise DataError(f"{path}:{line_no}: expected 2 or 3 tab-separated columns (label, text_a[, text_b]), "
                        f"got {len(cols)}")
    try:
        label = int(cols[0])
    except ValueError:
        raise DataError(f"{path}:{line_no}: the label {cols[0]!r} is not an integer") from None
    if label < 0:
        raise DataError(f"{path}:{line_no}: negative label {label}")
    return label, cols[1], cols[2] if len(cols) == 3 else None
