"""PEGASUS (PegasusForConditionalGeneration; uer/pegasus-*-chinese-cluecorpussmall): BART's layer names
(bart.py) with pre-LN and a final `layer_norm` after each stack, fixed sinusoidal positions without offset,
token embeddings times sqrt(d_model) (`scale_embedding: true`), no embedding layer norm, final_logits_bias.

The position table is stored as embed_positions.weight, and transformers computes with the stored table. The
one transformers builds has the sines in the first half of the dimensions and the cosines in the second (the
`sinusoidalpos_concat` embedding); UER-py's converter (convert_pegasus_from_uer_to_huggingface.py) writes
its own interleaved table (sin, cos, sin, ...: UER-py's pre-July-2023 formula, the `sinusoidalpos_2019`
embedding; not the `sinusoidalpos` of UER-py's current list-form configs, whose offset and zeroed padding
no transformers class computes). The loader takes the embedding whose table the file holds
(config_from_state), and refuses any other table.
"""
from ...errors import CheckpointError, ConfigError
from .base import Family, register_family
from .bart import check_layout, common_config, common_to_hf, head_rules, is_base_key, layer_rules
from .rules import Rule
from .rules import ln as _ln

POSITIONS = ["word", "sinusoidalpos_concat"]
LAYOUTS = (["word", "sinusoidalpos_concat"], ["word", "sinusoidalpos_2019"])  # transformers' table, UER-py's


def rules(cfg):
    r = head_rules(cfg)
    r += [Rule("encoder.embed_positions.weight", f"embedding.{cfg.embedding[1]}", "sin"),
          Rule("decoder.embed_positions.weight", f"tgt_embedding.{cfg.tgt_embedding[1]}", "sin")]
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


def config_from_state(state, cfg, source):
    """The embedding whose table the file's embed_positions.weight holds (the encoder's; the decoder's is
    checked against the same on loading)."""
    from ..hf import _fixed_table  # io/hf.py imports the families: at module level a cycle

    table = state.get("encoder.embed_positions.weight")
    if table is None:
        return {}
    for names in LAYOUTS:
        want = _fixed_table(f"embedding.{names[1]}", cfg)
        if table.shape == want.shape and (table.float() - want).abs().max() <= 1e-4:
            return {"embedding": names, "tgt_embedding": names}
    raise CheckpointError(f"{source}: encoder.embed_positions.weight is neither transformers' sinusoidal table (sin | "
                          "cos halves) nor UER-py's (sin, cos interleaved) for max_position_embeddings x d_model "
                          f"{tuple(_fixed_table('embedding.sinusoidalpos_2019', cfg).shape)}")


def export_rank(c):
    """An encoder-decoder model with sinusoidal positions: transformers' table, or UER-py's with pre-LN (T5's
    buckets rank higher, BART's learned positions lower); never a model without a decoder."""
    if c.decoder is None:
        return None
    if "sinusoidalpos_concat" in c.embedding or (c.embedding == ["word", "sinusoidalpos_2019"]
                                                 and c.layernorm_positioning == "pre"):
        return 2
    return None


def check_export(c):
    check_layout(c, "pre", c.embedding if c.embedding in LAYOUTS else POSITIONS)
    if not c.remove_embedding_layernorm:
        raise ConfigError("a PEGASUS export has no embedding layer norm (remove_embedding_layernorm)")


def config_to_hf(model, arch, eps):
    check_export(model.config)
    hf = common_to_hf(model, arch, "pegasus")
    hf["scale_embedding"] = True
    return hf


register_family(Family("pegasus", "model", "Pegasus", frozenset({"lm"}), lambda t: "PegasusForConditionalGeneration",
                       ([("lm", ())],), rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf,
                       config_to_hf=config_to_hf, export_rank=export_rank, check_export=check_export,
                       weight_suffixes=("encoder.embed_positions.weight",),
                       config_from_state=config_from_state))
