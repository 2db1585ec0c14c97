"""RoBERTa: BERT's layers, positions offset by padding_idx + 1, its own LM and classification heads
(RobertaClassificationHead: dense -> tanh -> out_proj on <s>, as the cls target). XLM-RoBERTa shares all of it
(roberta_family)."""
import torch

from . import bert_shaped
from .base import get
from .rules import linear

TIED_KEYS = ("lm_head.decoder.weight", "lm_head.decoder.bias")
DECODER_BIAS = (("lm_head.bias", "lm_head.decoder.bias"),)
TARGET_RULES = ([("mlm", ("lm_head.dense.weight",))],
                [("cls", ("classifier.out_proj.weight",)), ("pooler", ("pooler.dense.weight",))])


def roberta_architecture(prefix):
    def architecture(t):
        if "mlm" in t:
            return f"{prefix}ForMaskedLM"
        return f"{prefix}ForSequenceClassification" if "cls" in t else f"{prefix}Model"

    return architecture


def rules(cfg):
    r, t = bert_shaped.embeddings(cfg) + bert_shaped.bert_layers(cfg), cfg.target
    if "pooler" in t:
        r += linear("pooler.dense", "target.pooler.linear_1")
    if "cls" in t:
        r += linear("classifier.dense", "target.cls.linear_1") + linear("classifier.out_proj", "target.cls.linear_2")
    if "mlm" in t:
        r += bert_shaped.mlm_head("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder.weight",
                                  "mlm", cfg.tie_weights)
    return r


def config_from_hf(hf, targets, extras, need, act, source):
    return bert_shaped.config_from_hf(hf, targets, need, act, source, offset=int(hf.get("pad_token_id", 1)) + 1)


def roberta_config_to_hf(name):
    def config_to_hf(model, arch, eps):
        c = model.config
        hf = bert_shaped.config_to_hf(model, arch, eps, name, pad_token_id=c.position_offset - 1, bos_token_id=0,
                                      eos_token_id=2)
        if "seg" in c.embedding:  # one token type when UER's two segment rows are the same
            seg = model.state_dict()["embedding.seg.embedding.weight"]
            if seg.shape[0] == 3 and torch.equal(seg[1], seg[2]):
                hf["type_vocab_size"] = 1
        return hf

    return config_to_hf


def export_rank(c):
    return 1 if bert_shaped.post_ln(c) and c.position_scheme == "absolute" and c.position_offset else None


def check_export(name):
    def check(c):
        bert_shaped.check_plain(c, "Hugging Face", offset=True)
        bert_shaped.check_heads(c, get(name))

    return check


ROBERTA_TASK_HEADS = bert_shaped.task_heads(([], [("output_layer_1.", "classifier.dense."),
                                                  ("output_layer_2.", "classifier.out_proj.")]),
                                            bert_shaped.POOLER_CLASSIFIER["multiple_choice"])


def roberta_family(name, class_prefix, **kw):
    """A family with RoBERTa's names, config and heads under model_type `name`."""
    return bert_shaped.register(
        name, "roberta", class_prefix, {"mlm", "pooler", "cls"}, roberta_architecture(class_prefix), TARGET_RULES,
        one_pooler=True, rules=rules, config_from_hf=config_from_hf, config_to_hf=roberta_config_to_hf(name),
        export_rank=export_rank, check_export=check_export(name), tied_keys=TIED_KEYS, decoder_bias=DECODER_BIAS,
        task_heads=ROBERTA_TASK_HEADS, **kw)


FAMILY = roberta_family("roberta", "Roberta")
