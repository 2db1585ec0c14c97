"""Adapting a model to another vocabulary (a domain vocabulary, added tokens, a trimmed vocabulary)."""
import logging

import torch

from ..errors import CheckpointError
from ..tokenizers.vocab import Vocab
from .formats import LoadInfo

logger = logging.getLogger("uer_like")

# (target, parameter) pairs whose first dimension is the vocabulary
_VOCAB_PARAMS = ("embedding.word.embedding.weight", "target.mlm.linear_2.weight", "target.mlm.linear_2.bias",
                 "target.electra_gen.linear_2.weight", "target.electra_gen.linear_2.bias",
                 "target.electra.generator_head.linear_2.weight", "target.electra.generator_head.linear_2.bias",
                 "target.lm.output_layer.weight", "target.lm.output_layer.bias")


def _as_vocab(v):
    if isinstance(v, Vocab):
        return v
    if isinstance(v, (list, tuple)):
        return Vocab(v)
    return Vocab.load(v, required=())


def resize_vocab(model, old_vocab, new_vocab, init_std=0.02, seed=0):
    """A new model for `new_vocab`, keeping the rows of every token `old_vocab` also has.

    old_vocab: the vocabulary the model was trained with (path, Vocab or token list; its size must equal
    the model's word embedding); new_vocab: the new one. Rows of tokens in both are copied (embedding,
    MLM/LM projection and bias); new tokens get normal(0, init_std) rows (biases 0). Returns
    (model, report) with report = {"kept": n, "new": [tokens], "dropped": n}."""
    from ..model import Model

    old, new = _as_vocab(old_vocab), _as_vocab(new_vocab)
    rows = model.embedding.word.embedding.weight.shape[0]
    if len(old) != rows:
        raise CheckpointError(f"resize_vocab: the old vocabulary {old.path or ''} has {len(old)} tokens but the "
                              f"model's word embedding has {rows} rows; pass the vocabulary the model was trained with")
    n = len(new)
    src_idx, dst_idx, added = [], [], []
    for i, tok in enumerate(new.i2w):
        j = old.get(tok)
        if j is None:
            added.append(tok)
        else:
            src_idx.append(j)
            dst_idx.append(i)
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    new_state = dict(state)
    for key in _VOCAB_PARAMS:
        if key not in state:
            continue
        t = state[key]
        if t.dim() == 2:
            fresh = torch.randn((n, t.shape[1]), generator=gen, dtype=torch.float32).to(t.dtype) * init_std
        else:
            fresh = torch.zeros(n, dtype=t.dtype)
        fresh[torch.tensor(dst_idx, dtype=torch.long)] = t[torch.tensor(src_idx, dtype=torch.long)]
        new_state[key] = fresh
    if model.config.tie_weights:  # keep tied copies identical
        for key in ("target.mlm.linear_2.weight", "target.electra_gen.linear_2.weight", "target.lm.output_layer.weight"):
            if key in new_state:
                new_state[key] = new_state["embedding.word.embedding.weight"]
    config = model.config.replace(vocab_size=n)
    resized = Model(config, n)
    with torch.no_grad():
        for k, v in resized.state_dict().items():
            v.copy_(new_state[k])
    resized.load_info = LoadInfo(vocab_path=new.path)
    report = {"kept": len(dst_idx), "new": added, "dropped": len(old) - len(set(src_idx))}
    logger.info("resize_vocab: %d rows kept, %d new tokens, %d old tokens dropped", report["kept"], len(added),
                report["dropped"])
    return resized, report
