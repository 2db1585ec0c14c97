"""Encoder-decoder pretraining objectives (UER-py's t5, bart and gsg data processors).

Preprocessing builds the instances (`bart_instances`, `gsg_instances`; t5 takes mlm's); at training time the
collator turns each instance (and its masks) into a source for the encoder and a target for the decoder with the
processor's `PAIR_MAKERS` entry. A target is framed [CLS] ... [SEP]: the decoder reads it without its last token
and predicts it without its first (tgt_in / tgt_out, data/fields.py).

  t5    span corruption: every run of masked positions of an mlm instance becomes one sentinel in the source; the
        target lists each sentinel and the tokens it hides, then one more sentinel: [CLS] s0 x x s1 y ... sN [SEP].
        Sentinels are the vocabulary's <extra_id_0>, <extra_id_1>, ... (UER-py's google_zh_with_sentinel_vocab.txt
        appends 100 of them to the Chinese BERT vocabulary); past the last, the last is reused.
  bart  text infilling and sentence permutation: the instance holds the document piece's sentences permuted (the
        source) and in order (the target); the source is masked (mlm or --span_masking spans, 80/10/10) and each
        run of [MASK] becomes one [MASK].
  gsg   PEGASUS gap sentences: round(0.3 x sentences) of a document (the first ones: lead; or drawn: random) are
        the target, each replaced in the source by one [MASK]. Nothing is masked at training time.
"""
from ..errors import DataError
from .processors import Instance, Sentence, _concat

SENTINEL = "<extra_id_{}>"
MAX_SENTINELS = 1000


def sentinel_ids(vocab, path="the vocabulary"):
    """The ids of <extra_id_0>, <extra_id_1>, ... (as many as the vocabulary has in a row from 0). DataError when
    it has none: the t5 processor needs them."""
    ids = []
    while len(ids) < MAX_SENTINELS:
        i = vocab.get(SENTINEL.format(len(ids)))
        if i is None:
            break
        ids.append(i)
    if not ids:
        raise DataError(f"the t5 processor replaces masked spans by sentinel tokens <extra_id_0>, <extra_id_1>, ..., "
                        f"which {path} lacks: use models/google_zh_with_sentinel_vocab.txt (UER-py's Chinese BERT "
                        "vocabulary with 100 sentinels) or another vocabulary that has them")
    return ids


# ------------------------------------------------------------------------------------------ preprocessing
def _frame(src, tgt, cls_id, sep_id):
    """[CLS] src [SEP] [CLS] tgt [SEP]; segment 1 is the source."""
    ids = [cls_id] + src.ids + [sep_id, cls_id] + tgt.ids + [sep_id]
    bits = [1] + src.bits + [1, 1] + tgt.bits + [1]
    return Instance(ids, bits, len(src.ids) + 2)


def bart_instances(docs, rng, seq_length, cls_id, sep_id):
    """UER-py's BartDataset: each document cut into pieces of whole sentences under seq_length - 2 tokens (a
    longer sentence is skipped); a piece's source is its sentences shuffled, its target the same in order."""
    limit = seq_length - 2
    out = []

    def emit(chunk):
        if chunk:
            shuffled = list(chunk)
            rng.shuffle(shuffled)
            out.append(_frame(_concat(shuffled), _concat(chunk), cls_id, sep_id))

    for doc in docs:
        chunk, length = [], 0
        for sent in doc:
            if len(sent.ids) > limit:
                continue
            if length + len(sent.ids) < limit:
                chunk.append(sent)
                length += len(sent.ids)
            else:
                emit(chunk)
                chunk, length = [sent], len(sent.ids)
        emit(chunk)
    return out


def gap_sentences(n, strategy, rng):
    """The indices of the gap sentences of a document of n: round(0.3 n) of them (Python's round, as UER-py's),
    the first ones (lead) or drawn from all but the last sentence (random)."""
    k = int(round(n * 0.3, 0))
    if strategy == "lead":
        return set(range(k))
    pool = list(range(n - 1))
    rng.shuffle(pool)
    return set(pool[:k])


def gsg_instances(docs, rng, seq_length, tgt_seq_length, strategy, cls_id, sep_id, mask_id):
    """UER-py's GsgDataset: sentences shorter than both seq_length - 2 and tgt_seq_length - 2 are kept; the gap
    sentences go to the target, one [MASK] each into the source, the others to the source; an instance is emitted
    when the next sentence does not fit (instances without a gap sentence are dropped)."""
    limit_src, limit_tgt = seq_length - 2, tgt_seq_length - 2
    out = []

    def emit(src, tgt):
        if src and tgt:
            out.append(_frame(_concat(src), _concat(tgt), cls_id, sep_id))

    mask = Sentence([mask_id], [1])
    for doc in docs:
        doc = [s for s in doc if len(s.ids) < limit_src and len(s.ids) < limit_tgt]
        gaps = gap_sentences(len(doc), strategy, rng)
        src, tgt, n_src, n_tgt = [], [], 0, 0
        for i, sent in enumerate(doc):
            if i in gaps and n_tgt + len(sent.ids) < limit_tgt and n_src + 1 < limit_src:
                tgt.append(sent)
                src.append(mask)
                n_tgt += len(sent.ids)
                n_src += 1
            elif i not in gaps and n_src + len(sent.ids) < limit_src:
                src.append(sent)
                n_src += len(sent.ids)
            else:
                emit(src, tgt)
                if i in gaps:
                    src, tgt, n_src, n_tgt = [mask], [sent], 1, len(sent.ids)
                else:
                    src, tgt, n_src, n_tgt = [sent], [], len(sent.ids), 0
        emit(src, tgt)
    return out


# ------------------------------------------------------------------------------------------ training time
def t5_pair(ids, positions, labels, sentinels, cls_id, sep_id):
    """An mlm instance (ids: the tokens, masked or not, at the masked positions; positions ascending, labels
    their original ids) -> (source, target): each run of adjacent masked positions is one sentinel."""
    original = dict(zip(positions, labels))
    src, tgt, k, last = [], [cls_id], 0, len(sentinels) - 1
    prev = -2
    for i, t in enumerate(ids):
        if i in original:
            if prev != i - 1:
                s = sentinels[min(k, last)]
                k += 1
                src.append(s)
                tgt.append(s)
            tgt.append(original[i])
            prev = i
        else:
            src.append(int(t))
    tgt += [sentinels[min(k, last)], sep_id]
    return src, tgt


def bart_pair(masked_source, target, mask_id):
    """The masked source with every run of [MASK] made one [MASK] (text infilling), and the target."""
    src = []
    for t in masked_source:
        t = int(t)
        if not (t == mask_id and src and src[-1] == mask_id):
            src.append(t)
    return src, [int(t) for t in target]


# processor -> (collator, row, seg_a_len, masked) -> (source, target). masked: (ids, positions, labels) of the
# row's maskable part (InstanceShape.maskable), or None for a processor that does not mask
PAIR_MAKERS = {
    "t5": lambda c, row, a, masked: t5_pair(*masked, c.sentinels, c.cls_id, c.sep_id),
    "bart": lambda c, row, a, masked: bart_pair(masked[0], row[a:], c.mask_id),
    "gsg": lambda c, row, a, masked: ([int(t) for t in row[:a]], [int(t) for t in row[a:]]),
}
