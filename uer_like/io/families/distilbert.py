"""DistilBERT (DistilBertModel / ForMaskedLM / ForSequenceClassification; the Chinese DistilBERT releases): BERT's
post-LN layers under `distilbert.` with their own names, no token types, no pooler. Positions are a learned
table, or with sinusoidal_pos_embds a fixed sinusoidal one that transformers still saves as a weight (loaded
as the learned table here, exactly; an export keeps the flag of the release it came from). The MLM head is
vocab_transform -> activation -> vocab_layer_norm -> vocab_projector (the mlm target); the classifier is
pre_classifier -> ReLU -> classifier on the first token (the cls target with cls_act relu). DistilBERT's layer
norms have eps 1e-12, fixed."""
from ...errors import ConfigError
from . import bert_shaped
from .base import get
from .rules import Rule, linear, ln, qkv

DISTILBERT_ACTS = ("gelu", "relu")


def architecture(t):
    if "mlm" in t:
        return "DistilBertForMaskedLM"
    return "DistilBertForSequenceClassification" if "cls" in t else "DistilBertModel"


def rules(cfg):
    r = [Rule("embeddings.word_embeddings.weight", "embedding.word.embedding.weight"),
         Rule("embeddings.position_embeddings.weight", "embedding.pos.embedding.weight")]
    r += ln("embeddings.LayerNorm", "embedding.layer_norm")
    for i in range(cfg.layers_num):
        h, e = f"transformer.layer.{i}", f"encoder.transformer.{i}"
        r += qkv([f"{h}.attention.{n}" for n in ("q_lin", "k_lin", "v_lin")], f"{e}.self_attn.qkv")
        r += linear(f"{h}.attention.out_lin", f"{e}.self_attn.final_linear")
        r += ln(f"{h}.sa_layer_norm", f"{e}.layer_norm_1")
        r += linear(f"{h}.ffn.lin1", f"{e}.feed_forward.linear_1") + linear(f"{h}.ffn.lin2", f"{e}.feed_forward.linear_2")
        r += ln(f"{h}.output_layer_norm", f"{e}.layer_norm_2")
    if "mlm" in cfg.target:
        r += bert_shaped.mlm_head("vocab_transform", "vocab_layer_norm", "vocab_projector.bias",
                                  "vocab_projector.weight", "mlm", cfg.tie_weights)
    if "cls" in cfg.target:
        r += linear("pre_classifier", "target.cls.linear_1") + linear("classifier", "target.cls.linear_2")
    return r


def is_base_key(key):
    return key.split(".")[0] in ("embeddings", "transformer")


def config_from_hf(hf, targets, extras, need, act, source):
    activation = hf.get("activation", "gelu")
    if activation not in DISTILBERT_ACTS:
        raise ConfigError(f"{source}: activation {activation!r} is not supported; supported: "
                          f"{', '.join(DISTILBERT_ACTS)}")
    dim = need("dim")
    d = dict(emb_size=dim, hidden_size=dim, feedforward_size=need("hidden_dim"), heads_num=need("n_heads"),
             layers_num=need("n_layers"), max_seq_length=need("max_position_embeddings"),
             dropout=float(hf.get("dropout", 0.1)), hidden_act=act(activation), embedding=["word", "pos"],
             encoder="transformer", mask="fully_visible", layernorm_positioning="post", layernorm="torch",
             layernorm_eps=1e-12, target=targets, data_processor="mlm")
    d = bert_shaped.with_labels(d, hf, targets)
    if "cls" in targets:
        d["cls_act"] = "relu"
    return d


def config_to_hf(model, arch, eps):
    from ..formats import load_info_of

    c = model.config
    info = load_info_of(model)
    source = (info.hf_config if info is not None else None) or {}
    sinusoidal = bool(source.get("sinusoidal_pos_embds")) if source.get("model_type") == "distilbert" else False
    hf = {"model_type": "distilbert", "architectures": [arch], "vocab_size": model.vocab_size, "dim": c.hidden_size,
          "n_layers": c.layers_num, "n_heads": c.heads_num, "hidden_dim": c.feedforward_size,
          "activation": c.hidden_act, "dropout": c.dropout, "attention_dropout": c.dropout,
          "max_position_embeddings": c.max_seq_length, "sinusoidal_pos_embds": sinusoidal,
          "tie_word_embeddings": c.tie_weights, "initializer_range": 0.02, "pad_token_id": 0}
    return bert_shaped.with_label_entries(hf, c)


def export_rank(c):
    """BERT's shape without token types: DistilBERT only for a model loaded from a DistilBERT release."""
    if bert_shaped.post_ln(c) and c.position_scheme == "absolute" and sorted(c.embedding) == ["pos", "word"]:
        return 0
    return None


def check_export(c):
    bert_shaped.check_plain(c, "DistilBERT", embeddings=(["pos", "word"],), projection=False)
    bert_shaped.check_heads(c, get("distilbert"))
    if "cls" in c.target and c.cls_act != "relu":
        raise ConfigError(f"the cls target exports as DistilBertForSequenceClassification only with cls_act 'relu', "
                          f"got {c.cls_act!r}")
    if c.hidden_act not in DISTILBERT_ACTS:
        raise ConfigError(f"hidden_act {c.hidden_act!r} has no DistilBERT activation; exportable: "
                          f"{', '.join(DISTILBERT_ACTS)}")
    if c.layernorm == "torch" and c.layernorm_eps not in (None, 1e-12):
        raise ConfigError(f"DistilBERT's layer norms have eps 1e-12; the model's is {c.layernorm_eps}")


bert_shaped.register(
    "distilbert", "distilbert", "DistilBert", {"mlm", "cls"}, architecture,
    ([("mlm", ("vocab_transform.weight",))], [("cls", ("pre_classifier.weight",))]),
    rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf, config_to_hf=config_to_hf,
    export_state=None, export_rank=export_rank, default_export=False, check_export=check_export,
    tied_keys=("vocab_projector.weight",), decoder_bias=())
