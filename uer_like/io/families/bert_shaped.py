"""What the BERT-shaped families (BERT, RoBERTa, ALBERT, ELECTRA, ERNIE, NEZHA, RoFormer, and the ones built
on them) share: BERT's embedding, layer and head names, the config mapping both ways, the export checks and
`register`, which fills a Family's hooks with these defaults (a family module passes what differs)."""
import torch

from ...errors import ConfigError
from .base import Family, register_family
from .rules import ACT_TO_HF, Rule, linear, ln, qkv

PLAIN_EMBEDDINGS = (["pos", "seg", "word"], ["pos", "word"])  # sorted
BERT_TIED_KEYS = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
BERT_DECODER_BIAS = (("cls.predictions.bias", "cls.predictions.decoder.bias"),)


# ---------------------------------------------------------------------------------------------- names
def embeddings(cfg, layer_norm=True):
    r = [Rule("embeddings.word_embeddings.weight", "embedding.word.embedding.weight")]
    if "pos" in cfg.embedding:
        r.append(Rule("embeddings.position_embeddings.weight", "embedding.pos.embedding.weight"))
    if "seg" in cfg.embedding:
        r.append(Rule("embeddings.token_type_embeddings.weight", "embedding.seg.embedding.weight", "seg"))
    if "task" in cfg.embedding:
        r.append(Rule("embeddings.task_type_embeddings.weight", "embedding.task.embedding.weight"))
    if layer_norm:
        r += ln("embeddings.LayerNorm", "embedding.layer_norm")
    return r


def bert_layer(hf, internal):
    """One BERT/RoBERTa/ELECTRA encoder layer."""
    r = qkv([f"{hf}.attention.self.{n}" for n in ("query", "key", "value")], f"{internal}.self_attn.qkv")
    r += linear(f"{hf}.attention.output.dense", f"{internal}.self_attn.final_linear")
    r += ln(f"{hf}.attention.output.LayerNorm", f"{internal}.layer_norm_1")
    r += linear(f"{hf}.intermediate.dense", f"{internal}.feed_forward.linear_1")
    r += linear(f"{hf}.output.dense", f"{internal}.feed_forward.linear_2")
    r += ln(f"{hf}.output.LayerNorm", f"{internal}.layer_norm_2")
    return r


def bert_layers(cfg, layer=bert_layer):
    r = []
    for i in range(cfg.layers_num):
        r += layer(f"encoder.layer.{i}", f"encoder.transformer.{i}")
    return r


def mlm_head(prefix_dense, prefix_ln, bias_key, decoder_key, target, tied):
    r = linear(prefix_dense, f"target.{target}.linear_1") + ln(prefix_ln, f"target.{target}.layer_norm")
    r.append(Rule(bias_key, f"target.{target}.linear_2.bias"))
    if not tied:
        r.append(Rule(decoder_key, f"target.{target}.linear_2.weight"))
    return r


def bert_heads(cfg):
    """BERT's pooler (shared by sp, cls and pooler), NSP head, classifier and MLM head."""
    t, r = cfg.target, []
    for name in ("sp", "cls", "pooler"):
        if name in t:
            r += linear("pooler.dense", f"target.{name}.linear_1")
    if "sp" in t:
        r += linear("cls.seq_relationship", "target.sp.linear_2")
    if "cls" in t:
        r += linear("classifier", "target.cls.linear_2")
    if "mlm" in t:
        r += mlm_head("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias",
                      "cls.predictions.decoder.weight", "mlm", cfg.tie_weights)
    return r


def bert_rules(cfg):
    return embeddings(cfg) + bert_layers(cfg) + bert_heads(cfg)


def is_base_key(key):
    return key.split(".")[0] in ("embeddings", "embeddings_project", "encoder", "pooler")


def export_state(cfg, state):
    """Base-model tensors an export adds: a zero token-type row for a model without segments (it adds nothing)."""
    if "seg" in cfg.embedding:
        return {}
    word = state["embedding.word.embedding.weight"]
    return {"embeddings.token_type_embeddings.weight": torch.zeros(1, word.shape[1], dtype=word.dtype)}


# ---------------------------------------------------------------------------------------------- config
def config_from_hf(hf, targets, need, act, source, *, offset=0, positions=True, embedding_size=False,
                   segments=True, extra=None):
    """The uer_like config keys of a BERT-shaped Hugging Face config. offset: RoBERTa's position offset;
    positions: a learned position table (not NEZHA's and RoFormer's); embedding_size: the config may give an
    embedding size below hidden_size; segments: token-type embeddings; extra: the family's own keys."""
    if (hf.get("position_embedding_type") or "absolute") != "absolute":
        raise ConfigError(f"{source}: position_embedding_type {hf['position_embedding_type']!r} is not supported "
                          "(only 'absolute')")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        raise ConfigError(f"{source}: decoder / cross-attention models are not supported")
    hidden = need("hidden_size")
    emb = (hf.get("embedding_size") or hidden) if embedding_size else hidden
    max_pos = need("max_position_embeddings")
    if max_pos <= offset:
        raise ConfigError(f"{source}: max_position_embeddings {max_pos} leaves no positions after the offset {offset}")
    tvs = int(hf.get("type_vocab_size", 2)) if segments else 0
    embedding = ["word"] + (["pos"] if positions else []) + (["seg"] if tvs > 0 else [])
    d = dict(emb_size=emb, hidden_size=hidden, feedforward_size=need("intermediate_size"),
             heads_num=need("num_attention_heads"), layers_num=need("num_hidden_layers"),
             max_seq_length=max_pos - offset, position_offset=offset,
             dropout=float(hf.get("hidden_dropout_prob", 0.1)), hidden_act=act(hf.get("hidden_act", "gelu")),
             embedding=embedding, segment_vocab_size=max(3, tvs + 1), encoder="transformer", mask="fully_visible",
             layernorm_positioning="post", layernorm="torch", layernorm_eps=float(hf.get("layer_norm_eps", 1e-12)),
             target=targets, data_processor="bert" if "sp" in targets else "mlm")
    d.update(extra or {})
    return with_labels(d, hf, targets)


def with_labels(d, hf, targets):
    if "cls" in targets:
        d.update(labels_num=int(hf.get("num_labels") or len(hf.get("id2label") or {}) or 2), pooling="first",
                 data_processor="cls")
    return d


def config_to_hf(model, arch, eps, name, **extra):
    """A BERT-shaped config.json for `model` (model_type `name`); extra: the family's own entries (a value None
    removes the entry)."""
    c = model.config
    tvs = c.segment_vocab_size - 1 if "seg" in c.embedding else 1  # no segments: one zero token type
    hf = {"model_type": name, "architectures": [arch], "vocab_size": model.vocab_size,
          "hidden_size": c.hidden_size, "num_hidden_layers": c.layers_num, "num_attention_heads": c.heads_num,
          "intermediate_size": c.feedforward_size, "hidden_act": ACT_TO_HF[c.hidden_act],
          "hidden_dropout_prob": c.dropout, "attention_probs_dropout_prob": c.dropout,
          "max_position_embeddings": c.max_seq_length + c.position_offset, "type_vocab_size": tvs,
          "layer_norm_eps": eps, "tie_word_embeddings": c.tie_weights, "initializer_range": 0.02,
          "position_embedding_type": "absolute", "pad_token_id": 0}
    for k, v in extra.items():
        if v is None:
            hf.pop(k, None)
        else:
            hf[k] = v
    seg = segment_extras(model)
    if seg:
        hf["uer_like"] = seg
    return with_label_entries(hf, c)


def with_label_entries(hf, c):
    if "cls" in c.target:
        hf.update(num_labels=c.labels_num, id2label={str(i): f"LABEL_{i}" for i in range(c.labels_num)},
                  label2id={f"LABEL_{i}": i for i in range(c.labels_num)})
    return hf


def segment_extras(model):
    """uer_like's padding row of the segment table, kept in config.json when it is not zero (module io/hf.py)."""
    c = model.config
    if "seg" not in c.embedding:
        return {}
    pad = model.state_dict()["embedding.seg.embedding.weight"][0]
    if bool((pad != 0).any()):
        return {"segment_padding_row": [float(x) for x in pad.float().tolist()]}
    return {}


# ---------------------------------------------------------------------------------------------- export checks
def post_ln(c):
    """A fully visible post-LN model with the embedding layer norm and attention biases, no decoder: BERT's
    shape."""
    return (c.decoder is None and c.mask == "fully_visible" and c.layernorm_positioning == "post" and not c.remove_embedding_layernorm
            and not c.remove_attention_bias)


def check_plain(c, name, embeddings=PLAIN_EMBEDDINGS, sharing=False, offset=False, projection=True):
    emb = sorted(c.embedding)
    if emb not in [sorted(e) for e in embeddings]:
        need = " or ".join("[" + ", ".join(e) + "]" for e in embeddings)
        raise ConfigError(f"embedding {c.embedding} has no {name} equivalent (need {need})")
    bad = [what for what, on, ok in (("parameter sharing", c.parameter_sharing, sharing),
                                     ("position offset", c.position_offset, offset),
                                     ("embedding projection", c.factorized_embedding_parameterization, projection))
           if on and not ok]
    if bad:
        raise ConfigError(f"a {name} export has no {', '.join(bad)}")


def check_heads(c, fam):
    """The head checks every BERT-shaped export makes."""
    bad = set(c.target) - fam.export_targets
    if bad:
        raise ConfigError(f"{fam.name} export does not support the target(s) {sorted(bad)}; supported: "
                          f"{sorted(fam.export_targets)}")
    if fam.one_pooler and len({"sp", "cls", "pooler"} & set(c.target)) > 1:
        raise ConfigError(f"a {fam.name} export has one pooler; targets {c.target} would need several")
    if {"mlm", "cls"} <= set(c.target):
        raise ConfigError("no Hugging Face class has both an MLM head and a classifier: export the model once with "
                          "each target (model.config.replace(target=[...]))")
    if "cls" in c.target and c.pooling != "first":
        raise ConfigError(f"the cls target exports as {fam.class_prefix}ForSequenceClassification only with pooling "
                          f"'first', got {c.pooling!r}")


# ---------------------------------------------------------------------------------------------- fine-tuned heads
POOLER_CLASSIFIER = {"classification": (["pooler"], [("output_layer_2.", "classifier.")]),
                     "multiple_choice": (["pooler"], [("output_layer_2.", "classifier.")])}
TOKEN_HEADS = {"tagging": ([], [("output_layer.", "classifier.")]), "mrc": ([], [("output_layer.", "qa_outputs.")])}


def task_heads(classifier=None, multiple_choice=None, token=True):
    """Family.task_heads from where a fine-tuned classifier's and multiple-choice model's heads go (None: the
    family has no transformers class for them) and whether its tagger / span extractor heads are BERT's."""
    table = dict(TOKEN_HEADS) if token else {}
    if classifier is not None:
        for task in ("classification", "regression", "multi_label"):
            table[task] = classifier
    if multiple_choice is not None:
        table["multiple_choice"] = multiple_choice
    return table.get


# ---------------------------------------------------------------------------------------------- registration
def register(name, base_prefix, class_prefix, export_targets, architecture, target_rules, **kw):
    """Register a BERT-shaped family: BERT's base-model names, token-type handling and tied keys unless given."""
    kw.setdefault("is_base_key", is_base_key)
    kw.setdefault("export_state", export_state)
    kw.setdefault("tied_keys", BERT_TIED_KEYS)
    kw.setdefault("decoder_bias", BERT_DECODER_BIAS)
    return register_family(Family(name, base_prefix, class_prefix, frozenset(export_targets), architecture,
                                  target_rules, **kw))
