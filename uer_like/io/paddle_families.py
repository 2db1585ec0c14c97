"""PaddleNLP model families: each family's parameter names, mapped onto the Hugging Face family whose model
uer_like already builds (io/families), one `PaddleFamily` entry per family in FAMILIES. Adding a PaddleNLP
family whose layers are one of the LAYER_SCHEMES is one entry here.

Names. Most PaddleNLP models are built on paddle.nn.TransformerEncoder (`encoder.layers.N.self_attn.q_proj`,
`linear1` / `linear2`, `norm1` after attention, `norm2` after the feed-forward); NEZHA has its own layer
(`encoder.layer.N.attention.query`, `attention.dense`, `attention.layer_norm`, `ffn`, `ffn_output`,
`layer_norm`). Every Linear weight is stored [in, out] (the transpose of torch's) and is transposed; embeddings,
layer norms and the decoders (PaddleNLP keeps them [vocab, hidden]) are copied.

Layer norms. Each family's `_init_weights` decides the epsilon PaddleNLP computes with, whatever layer_norm_eps
the config says: ERNIE and NEZHA 1e-12, ERNIE-Gram and SKEP 1e-5, ERNIE-M Paddle's default 1e-5 (its
`_init_weights` sets none); the others take the config's layer_norm_eps (1e-12 when the config has none). `eps` below holds that rule.

Heads are (Paddle name, Hugging Face name, kind): "linear" a Linear module (weight transposed, bias), "ln" a
layer norm module, "tensor" one full parameter name copied; several Paddle names may give one Hugging Face
name (PaddleNLP 2.8 keeps the MLM bias as both `decoder_bias` and `decoder.bias`): the first present is used.
"""
import logging
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

logger = logging.getLogger("uer_like")

_T = True  # a paddle.nn.Linear weight ([in, out]): transposed

# Layer schemes: (Paddle module after `encoder.layers.N.` / `encoder.layer.N.`, HF module after
# `encoder.layer.N.`, transpose the weight)
LAYER_SCHEMES = {
    "transformer_encoder": (r"encoder\.layers\.(\d+)\.", [
        ("self_attn.q_proj", "attention.self.query", _T), ("self_attn.k_proj", "attention.self.key", _T),
        ("self_attn.v_proj", "attention.self.value", _T), ("self_attn.out_proj", "attention.output.dense", _T),
        ("norm1", "attention.output.LayerNorm", False), ("linear1", "intermediate.dense", _T),
        ("linear2", "output.dense", _T), ("norm2", "output.LayerNorm", False)]),
    "nezha": (r"encoder\.layer\.(\d+)\.", [
        ("attention.query", "attention.self.query", _T), ("attention.key", "attention.self.key", _T),
        ("attention.value", "attention.self.value", _T), ("attention.dense", "attention.output.dense", _T),
        ("attention.layer_norm", "attention.output.LayerNorm", False), ("ffn", "intermediate.dense", _T),
        ("ffn_output", "output.dense", _T), ("layer_norm", "output.LayerNorm", False)]),
}

# the base model's own modules besides its layers (after the base prefix)
BASE_MODULES = [("embeddings.layer_norm", "embeddings.LayerNorm", False), ("pooler.dense", "pooler.dense", _T),
                ("embeddings_project", "embeddings_project", _T)]


def _bert_mlm(transform="cls.predictions.transform"):
    return [
        (transform, "cls.predictions.transform.dense", "linear"),
        ("cls.predictions.layer_norm", "cls.predictions.transform.LayerNorm", "ln"),
        ("cls.predictions.decoder_bias", "cls.predictions.bias", "tensor"),
        ("cls.predictions.decoder.bias", "cls.predictions.bias", "tensor"),
        ("cls.predictions.decoder_weight", "cls.predictions.decoder.weight", "tensor"),
        ("cls.predictions.decoder.weight", "cls.predictions.decoder.weight", "tensor"),
    ]


# the heads of BERT-shaped task classes (*ForPretraining, *ForMaskedLM, *ForSequenceClassification)
BERT_HEADS = _bert_mlm() + [("cls.seq_relationship", "cls.seq_relationship", "linear"),
                            ("classifier", "classifier", "linear")]
NEZHA_HEADS = _bert_mlm("cls.predictions.dense") + [("cls.seq_relationship", "cls.seq_relationship", "linear"),
                                                     ("classifier", "classifier", "linear")]
ROBERTA_LM = [  # RobertaForMaskedLM's lm_head; the decoder is tied to the word embedding, kept [vocab, hidden]
    ("lm_head.dense", "lm_head.dense", "linear"), ("lm_head.layer_norm", "lm_head.layer_norm", "ln"),
    ("lm_head.bias", "lm_head.bias", "tensor"), ("lm_head.decoder.bias", "lm_head.bias", "tensor"),
    ("lm_head.decoder.weight", "lm_head.decoder.weight", "tensor"),
]
# RobertaForSequenceClassification (PaddleNLP 2.8): RoBERTa's own head, dense -> tanh -> out_proj on [CLS]
ROBERTA_HEADS = ROBERTA_LM + [("classifier.dense", "classifier.dense", "linear"),
                              ("classifier.out_proj", "classifier.out_proj", "linear")]
ROBERTA_AS_BERT_HEADS = [(p, h.replace("lm_head.dense", "cls.predictions.transform.dense")
                          .replace("lm_head.layer_norm", "cls.predictions.transform.LayerNorm")
                          .replace("lm_head.bias", "cls.predictions.bias")
                          .replace("lm_head.decoder", "cls.predictions.decoder"), k) for p, h, k in ROBERTA_LM]
ELECTRA_HEADS = [  # ElectraDiscriminator, ElectraGenerator
    ("discriminator_predictions.dense", "discriminator_predictions.dense", "linear"),
    ("discriminator_predictions.dense_prediction", "discriminator_predictions.dense_prediction", "linear"),
    ("generator_predictions.dense", "generator_predictions.dense", "linear"),
    ("generator_predictions.layer_norm", "generator_predictions.LayerNorm", "ln"),
    ("generator_lm_head_bias", "generator_lm_head.bias", "tensor"),
    ("generator_lm_head", "generator_lm_head", "linear"),  # tie_word_embeddings false: a Linear of its own
]
ROFORMER_HEADS = _bert_mlm()


@dataclass(frozen=True)
class PaddleFamily:
    """name: PaddleNLP's model_type and base-model attribute (`ernie_gram.encoder...`); class_prefix: of its class
    names (ErnieGramModel, ErnieGramForSequenceClassification); hf: the Hugging Face family (io/families) its
    weights are read as; layers: a LAYER_SCHEMES key; eps: the layer-norm epsilon PaddleNLP computes with (None:
    the config's layer_norm_eps, 1e-12 without one); heads: the task heads' names; ignore: regexes of parameters
    that PaddleNLP saves but the model computes without (dropped, said in the log), with why; unsupported_heads:
    regexes of task heads that no uer_like target computes (dropped with a warning: the base model loads), with
    why; config(args, hf,
    state, source): the family's own config keys into the Hugging Face config dict `hf`; finish(state): last
    renames in the Hugging Face state (a head that transformers' family spells with the base model's weights);
    variant(args, form):
    another entry's name when the config calls for it (RoBERTa of a model_config.json), else None."""
    name: str
    class_prefix: str
    hf: str
    heads: list
    layers: str = "transformer_encoder"
    eps: Optional[float] = None
    ignore: tuple = ()
    unsupported_heads: tuple = ()
    config: Optional[Callable] = None
    finish: Optional[Callable] = None
    variant: Optional[Callable] = None
    prefix: Optional[str] = None
    notes: str = field(default="", compare=False)


def _emb_size(state, base):
    w = state.get(f"{base}embeddings.word_embeddings.weight")
    return int(w.shape[1]) if w is not None and w.ndim == 2 else None


def _ernie_config(args, hf, state, base, source):
    has_task = f"{base}embeddings.task_type_embeddings.weight" in state
    use = args.get("use_task_id")
    hf["use_task_id"] = bool(has_task if use is None else use)
    hf["task_type_vocab_size"] = int(args.get("task_type_vocab_size", 3))
    if hf["use_task_id"] and int(args.get("task_id") or 0):
        hf["uer_like"] = {"task_id": int(args["task_id"])}


def _factorized_config(args, hf, state, base, source):
    """ELECTRA / RoFormer: embedding_size (the word embedding's width), projected by embeddings_project."""
    hf["embedding_size"] = _emb_size(state, base) or int(args.get("embedding_size") or hf["hidden_size"])


def _electra_config(args, hf, state, base, source):
    _factorized_config(args, hf, state, base, source)
    hf["tie_word_embeddings"] = bool(args.get("tie_word_embeddings", True))


def _roformer_config(args, hf, state, base, source):
    _factorized_config(args, hf, state, base, source)
    hf["rotary_value"] = bool(args.get("rotary_value", False))


def _nezha_config(args, hf, state, base, source):
    from ..errors import ConfigError

    if args.get("use_relative_position") is False:
        raise ConfigError(f"{source}: NEZHA with use_relative_position false (absolute positions) is not supported; "
                          "every NEZHA release uses relative positions")
    hf["max_relative_position"] = int(args.get("max_relative_position", 64))


def _ernie_gram_config(args, hf, state, base, source):
    from ..errors import ConfigError

    emb = _emb_size(state, base)
    if emb is not None and emb != int(hf["hidden_size"]):
        raise ConfigError(f"{source}: ERNIE-Gram with embedding_size {emb} != hidden_size {hf['hidden_size']} cannot "
                          "run (PaddleNLP's ErnieGramModel has no projection between them)")


def _ernie_m_config(args, hf, state, base, source):
    """ERNIE-M: no token types (whatever type_vocab_size says), every position + 2 (transformers' RoBERTa:
    pad_token_id 1 + 1), and a feed-forward of 4 x hidden_size whatever intermediate_size says."""
    hf["type_vocab_size"] = 0
    hf["pad_token_id"] = 1
    w = state.get(f"{base}encoder.layers.0.linear1.weight")
    size = int(w.shape[1]) if w is not None and w.ndim == 2 else 4 * int(hf["hidden_size"])
    if args.get("intermediate_size") not in (None, size):
        logger.info("%s: intermediate_size %s in the config; PaddleNLP's ErnieMModel has 4 x hidden_size = %s",
                    source, args["intermediate_size"], size)
    hf["intermediate_size"] = size


def _pooler_into_roberta_classifier(state):
    """A classifier over the pooled output (ErnieMForSequenceClassification) is transformers' RoBERTa head:
    the pooler's dense -> tanh is its classifier.dense, the classifier its out_proj."""
    if "classifier.out_proj.weight" in state:
        for kind in ("weight", "bias"):
            if f"roberta.pooler.dense.{kind}" in state:
                state[f"classifier.dense.{kind}"] = state.pop(f"roberta.pooler.dense.{kind}")


def _roberta_variant(args, form):
    """PaddleNLP 2.8 (which writes config.json) numbers RoBERTa positions from pad_token_id + 1 (fairseq's
    make_positions), whatever the tokenizer; the PaddleNLP that wrote model_config.json did so only when
    cls_token_id was 0 (the BPE tokenizer), else from 0 as BERT (the Chinese RoBERTa releases, cls_token_id 101;
    PaddleNLP PR 1777)."""
    if form == "model_config.json" and int(args.get("cls_token_id", 101)) != 0:
        return "roberta_bert_positions"
    return None


FAMILIES = {f.name: f for f in [
    PaddleFamily("ernie", "Ernie", "ernie", BERT_HEADS, eps=1e-12, config=_ernie_config,
                 notes="ERNIE 1.0, ERNIE 3.0, ERNIE-tiny"),
    PaddleFamily("ernie_gram", "ErnieGram", "bert", BERT_HEADS, eps=1e-5, config=_ernie_gram_config,
                 ignore=((r"embeddings\.rel_pos_embeddings\.", "created with rel_pos_size, never used"),)),
    PaddleFamily("bert", "Bert", "bert", BERT_HEADS),
    PaddleFamily("roberta", "Roberta", "roberta", ROBERTA_HEADS, variant=_roberta_variant),
    PaddleFamily("roberta_bert_positions", "Roberta", "bert", ROBERTA_AS_BERT_HEADS + BERT_HEADS,
                 prefix="roberta", notes="RoBERTa with BERT positions (model_config.json, cls_token_id != 0)"),
    PaddleFamily("tinybert", "TinyBert", "bert", BERT_HEADS[:-1],
                 ignore=((r"fit_dense", "TinyBERT's distillation projections"),),
                 unsupported_heads=((r"^classifier\.", "TinyBertForSequenceClassification's classifier reads "
                                     "ReLU(pooled output), which no uer_like head computes"),)),
    PaddleFamily("ppminilm", "PPMiniLM", "bert", BERT_HEADS),
    PaddleFamily("skep", "Skep", "bert", BERT_HEADS, eps=1e-5),
    PaddleFamily("electra", "Electra", "electra", ELECTRA_HEADS, config=_electra_config),
    PaddleFamily("roformer", "RoFormer", "roformer", ROFORMER_HEADS, config=_roformer_config,
                 ignore=((r"pooler\.dense\.", "no Hugging Face RoFormer has a pooler; the MLM head does not use it"),)),
    PaddleFamily("nezha", "NeZha", "nezha", NEZHA_HEADS, layers="nezha", eps=1e-12, config=_nezha_config),
    PaddleFamily("ernie_m", "ErnieM", "roberta", [("classifier", "classifier.out_proj", "linear")], eps=1e-5,
                 config=_ernie_m_config, finish=_pooler_into_roberta_classifier),
]}

# entries reached only through another's variant()
_VARIANTS = {"roberta_bert_positions"}


def names():
    """The PaddleNLP families read (model_type names)."""
    return sorted(n for n in FAMILIES if n not in _VARIANTS)


def by_class(class_names):
    """The family of the first PaddleNLP class name that starts with a family's class prefix (the longest
    prefix: ErnieGram before Ernie), or None."""
    prefixes = sorted({f.class_prefix: f for f in FAMILIES.values() if f.name not in _VARIANTS}.items(),
                      key=lambda kv: -len(kv[0]))
    for c in class_names:
        for prefix, fam in prefixes:
            if re.match(re.escape(prefix) + r"(Model|For[A-Z]\w*|PretrainedModel|Discriminator|Generator)$", c):
                return fam
    return None


def layer_pattern(family):
    return LAYER_SCHEMES[family.layers][0]


def layer_examples():
    """One parameter name of each layer scheme, as messages show them (encoder.layers.N.self_attn.q_proj)."""
    return [pattern.replace(r"(\d+)", "N").replace("\\", "") + rules[0][0] for pattern, rules in LAYER_SCHEMES.values()]
