"""Megatron-BERT (model_type 'megatron-bert'; MegatronBertModel / ForMaskedLM / ForPreTraining): BERT's names
and heads under `bert.`, pre-LN layers (attention.ln before attention, ln before the feed-forward), a final
layer norm encoder.ln, no embedding layer norm. In uer_like: layernorm_positioning pre (whose encoder ends in
its layer norm) and remove_embedding_layernorm. Fine-tuned models export to its task classes as BERT's do."""
from . import bert_shaped
from .base import get
from .bert import BERT_TARGET_RULES, BERT_TARGETS, BERT_TASK_HEADS, bert_architecture
from .rules import linear, ln, qkv


def layer(hf, internal):
    r = ln(f"{hf}.attention.ln", f"{internal}.layer_norm_1")
    r += qkv([f"{hf}.attention.self.{n}" for n in ("query", "key", "value")], f"{internal}.self_attn.qkv")
    r += linear(f"{hf}.attention.output.dense", f"{internal}.self_attn.final_linear")
    r += ln(f"{hf}.ln", f"{internal}.layer_norm_2")
    r += linear(f"{hf}.intermediate.dense", f"{internal}.feed_forward.linear_1")
    r += linear(f"{hf}.output.dense", f"{internal}.feed_forward.linear_2")
    return r


def rules(cfg):
    return (bert_shaped.embeddings(cfg, layer_norm=False) + bert_shaped.bert_layers(cfg, layer)
            + ln("encoder.ln", "encoder.layer_norm") + bert_shaped.bert_heads(cfg))


def config_from_hf(hf, targets, extras, need, act, source):
    return bert_shaped.config_from_hf(hf, targets, need, act, source,
                                      extra=dict(layernorm_positioning="pre", remove_embedding_layernorm=True))


def config_to_hf(model, arch, eps):
    return bert_shaped.config_to_hf(model, arch, eps, "megatron-bert")


def export_rank(c):
    """A fully visible pre-LN model without the embedding layer norm."""
    if (c.decoder is None and c.mask == "fully_visible" and c.layernorm_positioning == "pre" and c.remove_embedding_layernorm
            and not c.remove_attention_bias and c.position_scheme == "absolute"):
        return 1
    return None


def check_export(c):
    bert_shaped.check_plain(c, "Megatron-BERT", projection=False)
    bert_shaped.check_heads(c, get("megatron-bert"))


bert_shaped.register(
    "megatron-bert", "bert", "MegatronBert", BERT_TARGETS, bert_architecture("MegatronBert"), BERT_TARGET_RULES,
    bert_like=True, one_pooler=True, rules=rules, config_from_hf=config_from_hf, config_to_hf=config_to_hf,
    export_rank=export_rank, check_export=check_export, task_heads=BERT_TASK_HEADS)
