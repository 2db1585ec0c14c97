"""PEGASUS (PegasusForConditionalGeneration; uer/pegasus-*-chinese-cluecorpussmall): BART's layer names
(bart.py) with pre-LN and a final `layer_norm` after each stack, fixed sinusoidal positions without offset
(sines in the first half of the dimensions, cosines in the second: the `sinusoidalpos_concat` embedding;
transformers stores the table as embed_positions.weight, checked on import), token embeddings times
sqrt(d_model) (`scale_embedding: true`), no embedding layer norm, final_logits_bias.
"""
from ...errors import ConfigError
from . import Family, register_family
from .bart import check_export, common_config, common_to_hf, head_rules, is_base_key, layer_rules

POSITIONS = ["word", "sinusoidalpos_concat"]


def rules(cfg):
    from ..hf import Rule, _ln

    r = head_rules(cfg)
    r += [Rule("encoder.embed_positions.weight", "embedding.sinusoidalpos_concat", "sin"),
          Rule("decoder.embed_positions.weight", "tgt_embedding.sinusoidalpos_concat", "sin")]
    r += _ln("encoder.layer_norm", "encoder.layer_norm") + _ln("decoder.layer_norm", "decoder.layer_norm")
    return r + layer_rules(cfg)


def config_from_hf(hf, targets, extras, need, act, source):
    if not hf.get("scale_embedding", False):
        raise ConfigError(f"{source}: PEGASUS with scale_embedding false is not supported (the sinusoidal "
                          "positions come with embeddings scaled by sqrt(d_model))")
    d = common_config(hf, need, act, source)
    d.update(embedding=POSITIONS, tgt_embedding=POSITIONS, remove_embedding_layernorm=True,
             layernorm_positioning="pre", data_processor="gsg")
    return d


def config_to_hf(model, arch, eps):
    c = model.config
    check_export(c, "pre", POSITIONS)
    if not c.remove_embedding_layernorm:
        raise ConfigError("a PEGASUS export has no embedding layer norm (remove_embedding_layernorm)")
    hf = common_to_hf(model, arch, "pegasus")
    hf["scale_embedding"] = True
    return hf


register_family(Family("pegasus", "model", "Pegasus", frozenset({"lm"}), lambda t: "PegasusForConditionalGeneration",
                       ([("lm", ())],), rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf,
                       config_to_hf=config_to_hf, weight_suffixes=("encoder.embed_positions.weight",)))
