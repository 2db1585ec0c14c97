"""ALBERT: one shared layer group, a factorised embedding, the sentence-order head."""
from ...errors import ConfigError
from . import bert_shaped
from .rules import Rule, linear, ln, qkv


def architecture(t):
    if {"mlm", "sp"} <= t:
        return "AlbertForPreTraining"
    return "AlbertForMaskedLM" if "mlm" in t else "AlbertModel"


def rules(cfg):
    r = bert_shaped.embeddings(cfg)
    if cfg.factorized_embedding_parameterization:
        r += linear("encoder.embedding_hidden_mapping_in", "encoder.linear")
    else:
        r.append(Rule(["encoder.embedding_hidden_mapping_in.weight", "encoder.embedding_hidden_mapping_in.bias"],
                      "", "eye"))
    h, e = "encoder.albert_layer_groups.0.albert_layers.0", "encoder.transformer"
    r += qkv([f"{h}.attention.{n}" for n in ("query", "key", "value")], f"{e}.self_attn.qkv")
    r += linear(f"{h}.attention.dense", f"{e}.self_attn.final_linear")
    r += ln(f"{h}.attention.LayerNorm", f"{e}.layer_norm_1")
    r += linear(f"{h}.ffn", f"{e}.feed_forward.linear_1") + linear(f"{h}.ffn_output", f"{e}.feed_forward.linear_2")
    r += ln(f"{h}.full_layer_layer_norm", f"{e}.layer_norm_2")
    t = cfg.target
    if "sp" in t:
        r += linear("pooler", "target.sp.linear_1") + linear("sop_classifier.classifier", "target.sp.linear_2")
    if "pooler" in t:
        r += linear("pooler", "target.pooler.linear_1")
    if "mlm" in t:
        r += bert_shaped.mlm_head("predictions.dense", "predictions.LayerNorm", "predictions.bias",
                                  "predictions.decoder.weight", "mlm", cfg.tie_weights)
    return r


def config_from_hf(hf, targets, extras, need, act, source):
    if int(hf.get("num_hidden_groups", 1)) != 1 or int(hf.get("inner_group_num", 1)) != 1:
        raise ConfigError(f"{source}: ALBERT with num_hidden_groups={hf.get('num_hidden_groups')} / "
                          f"inner_group_num={hf.get('inner_group_num')} is not supported (only 1 and 1, as "
                          "every released ALBERT)")
    # an export of a model without the projection (its identity written as embedding_hidden_mapping_in) says so
    projection = extras.get("embedding_projection", True) or (hf.get("embedding_size") or need("hidden_size")) != \
        need("hidden_size")
    return bert_shaped.config_from_hf(
        hf, targets, need, act, source, embedding_size=True,
        extra=dict(factorized_embedding_parameterization=bool(projection), parameter_sharing=True,
                   dropout=float(hf.get("hidden_dropout_prob", 0.0)),
                   data_processor="albert" if "sp" in targets else "mlm"))


def config_to_hf(model, arch, eps):
    hf = bert_shaped.config_to_hf(model, arch, eps, "albert", embedding_size=model.config.emb_size,
                                  num_hidden_groups=1, inner_group_num=1, classifier_dropout_prob=0.1)
    if not model.config.factorized_embedding_parameterization:  # written as an identity (rule kind "eye")
        hf.setdefault("uer_like", {})["embedding_projection"] = False
    return hf


def export_rank(c):
    return 3 if bert_shaped.post_ln(c) and c.position_scheme == "absolute" and c.parameter_sharing else None


def check_export(c):
    bert_shaped.check_plain(c, "Hugging Face", sharing=True)
    bert_shaped.check_heads(c, FAMILY)


FAMILY = bert_shaped.register(
    "albert", "albert", "Albert", {"mlm", "sp", "pooler"}, architecture,
    ([("mlm", ("predictions.dense.weight",))],
     [("sp", ("sop_classifier.classifier.weight",)), ("pooler", ("pooler.weight",))]),
    rules=rules, config_from_hf=config_from_hf, config_to_hf=config_to_hf, export_rank=export_rank,
    check_export=check_export, tied_keys=("predictions.decoder.weight", "predictions.decoder.bias"),
    decoder_bias=(("predictions.bias", "predictions.decoder.bias"),),
    task_heads=bert_shaped.task_heads(bert_shaped.POOLER_CLASSIFIER["classification"],
                                      bert_shaped.POOLER_CLASSIFIER["multiple_choice"]))
