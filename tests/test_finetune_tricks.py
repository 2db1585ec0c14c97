"""The fine-tuning core's knobs: --dropout reaches every dropout of the model, FGM perturbs the word
embedding as its definition says and leaves nothing behind, layer-wise learning-rate decay gives each layer
the documented rate, the schedulers, soft targets."""
import argparse
import math

import pytest
import torch
import torch.nn as nn

from uer_like.config import ModelConfig
from uer_like.finetune import core
from uer_like.finetune.adversarial import FGM
from uer_like.finetune.classification import Classifier
from uer_like.finetune.multiple_choice import MultipleChoice
from uer_like.finetune.mrc import SpanExtractor
from uer_like.finetune.tagging import Tagger
from uer_like.layers.dropout import Dropout

V = 50


def cfg(**kw):
    d = dict(emb_size=16, hidden_size=16, feedforward_size=32, heads_num=2, layers_num=3, max_seq_length=32,
             dropout=0.5, vocab_size=V)
    d.update(kw)
    return ModelConfig(**d)


def heads(config):
    torch.manual_seed(0)
    return [Classifier(config, V, 3), Tagger(config, V, 4, use_crf=True), SpanExtractor(config, V),
            MultipleChoice(config, V)]


def batch():
    torch.manual_seed(1)
    src = torch.randint(5, V, (2, 9))
    return src, torch.ones_like(src)


def dropouts(model):
    """Every dropout rate in the model: torch's and the library's Dropout modules, and float `dropout`
    attributes (attention's SDPA dropout)."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Dropout, Dropout)):
            out.append((name, m.p))
        elif isinstance(getattr(m, "dropout", None), float):
            out.append((name + ".dropout", m.dropout))
    return out


@pytest.mark.parametrize("model", heads(cfg()), ids=lambda m: type(m).__name__)
def test_set_dropout_reaches_every_dropout(model):
    core.set_dropout(model, 0.3)
    found = dropouts(model)
    assert any(name.startswith("embedding.") for name, _ in found)  # the library's own Dropout is seen
    assert all(p == 0.3 for _, p in found), [x for x in found if x[1] != 0.3]
    assert model.config.dropout == 0.3  # the saved config says what was trained with
    core.set_dropout(model, 0.0)  # then training mode computes exactly what evaluation mode does
    src, seg = batch()
    with torch.no_grad():
        model.train()
        a = model.encode(src, seg)
        model.eval()
        b = model.encode(src, seg)
    assert torch.equal(a, b)
