"""The prefixlm processor (the prefix LM, UniLM; UER-py's PrefixlmDataset): `source<TAB>target` lines ->
instances [CLS] source [SEP] target [SEP], segment 1 = [CLS] source [SEP] (seg_a_len), segment 2 = the target.

As UER-py (uer/utils/dataset.py PrefixlmDataset, since July 2021): the line's two columns are tokenized apart,
the model reads at most seq_length tokens (a longer target is cut; the instance then keeps one token more, the
label of the last position the model reads, as UER-py's tgt_lm holds it), and a source that fills seq_length
([CLS] source [SEP] of seq_length tokens or more) leaves no room for a target: the line gives no instance
(counted as `long_source`). A line without exactly two columns (after stripping the line's ends, as UER-py) is
`bad_columns`: an error under --invalid_lines error, skipped and counted otherwise (UER-py skips it silently).

The model reads the instance as it is (segments 1 and 2) with mask `causal_with_prefix`, and the lm target
predicts each target token from the position before it (the source's [SEP] predicts the first one; the
last [SEP] predicts nothing): fields.py builds tgt_lm from the instance shape's `prefix`.
"""
from ..errors import DataError
from .processors import Instance, Sentence


def parse_prefixlm_line(text, line_no, path):
    """`source<TAB>target` -> (source, target). Raises DataError naming the line."""
    cols = text.strip().split("\t")
    if len(cols) != 2:
        raise DataError(f"{path}:{line_no}: expected 2 tab-separated columns (source, target), got {len(cols)}")
    return cols[0], cols[1]


def prefixlm_instance(source, target, seq_length, cls_id, sep_id):
    """Sentences (ids, word-start bits) of the source and the target -> an Instance, or None when the framed
    source alone takes seq_length tokens."""
    a = Sentence([cls_id] + source.ids + [sep_id], [1] + source.bits + [1])
    if len(a.ids) >= seq_length:
        return None
    ids = (a.ids + target.ids + [sep_id])[:seq_length + 1]
    bits = (a.bits + target.bits + [1])[:seq_length + 1]
    return Instance(ids, bits, len(a.ids))


def prefixlm_instances(docs, seq_length, cls_id, sep_id, report=None):
    """docs: (first line, source Sentence, target Sentence) of a chunk -> instances (report: a LineReport that
    counts the sources too long to leave room for a target)."""
    out = []
    for line_no, source, target in docs:
        inst = prefixlm_instance(source, target, seq_length, cls_id, sep_id)
        if inst is None:
            if report is not None:
                report.add("long_source", line_no)
            continue
        out.append(inst)
    return out
