"""ELECTRA: the discriminator (ElectraForPreTraining) and the generator (ElectraForMaskedLM), separate models."""
from ...errors import ConfigError
from . import bert_shaped
from .rules import linear


def architecture(t):
    if "electra_disc" in t:
        return "ElectraForPreTraining"
    if t & {"electra_gen", "mlm"}:
        return "ElectraForMaskedLM"
    return "ElectraModel"


def rules(cfg):
    r = bert_shaped.embeddings(cfg)
    if cfg.factorized_embedding_parameterization:
        r += linear("embeddings_project", "encoder.linear")
    r += bert_shaped.bert_layers(cfg)
    if "electra_disc" in cfg.target:
        r += linear("discriminator_predictions.dense", "target.electra_disc.linear_1")
        r += linear("discriminator_predictions.dense_prediction", "target.electra_disc.linear_2")
    for name in ("electra_gen", "mlm"):
        if name in cfg.target:
            r += bert_shaped.mlm_head("generator_predictions.dense", "generator_predictions.LayerNorm",
                                      "generator_lm_head.bias", "generator_lm_head.weight", name, cfg.tie_weights)
    return r


def config_from_hf(hf, targets, extras, need, act, source):
    d = bert_shaped.config_from_hf(hf, targets, need, act, source, embedding_size=True)
    d["factorized_embedding_parameterization"] = d["emb_size"] != d["hidden_size"]
    return d


def config_to_hf(model, arch, eps):
    return bert_shaped.config_to_hf(model, arch, eps, "electra", embedding_size=model.config.emb_size)


def export_rank(c):
    if not (bert_shaped.post_ln(c) and c.position_scheme == "absolute"):
        return None
    return 2 if {"electra_disc", "electra_gen"} & set(c.target) or c.factorized_embedding_parameterization else None


def check_export(c):
    bert_shaped.check_plain(c, "Hugging Face", offset=True)
    bert_shaped.check_heads(c, FAMILY)
    if len({"electra_disc", "electra_gen", "mlm"} & set(c.target)) > 1:
        raise ConfigError("ELECTRA's discriminator and generator are separate Hugging Face models: export them "
                          "as two models")
    if "mlm" in c.target and c.hidden_act != "gelu":
        raise ConfigError("an 'mlm' target exports as the ELECTRA generator only with hidden_act gelu "
                          "(use the 'electra_gen' target)")


FAMILY = bert_shaped.register(
    "electra", "electra", "Electra", {"electra_disc", "electra_gen", "mlm"}, architecture,
    ([("electra_disc", ("discriminator_predictions.dense.weight",))],
     [("electra_gen", ("generator_predictions.dense.weight",))]),
    rules=rules, config_from_hf=config_from_hf, config_to_hf=config_to_hf, export_rank=export_rank,
    check_export=check_export, tied_keys=("generator_lm_head.weight",),
    # ELECTRA's classification heads (gelu, not tanh) have no place here; its token heads are BERT's
    task_heads=bert_shaped.task_heads())
