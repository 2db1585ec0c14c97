"""MPNet (Song et al. 2020): BERT-shaped post-LN layers with q/k/v/o attention names, learned positions offset
by padding_idx + 1 as RoBERTa (no token types), and T5's bucketed relative-position bias, one table for all
layers (position_scheme 'relative_position_bucket': 32 bidirectional buckets, max_distance 128, added to the
scaled scores). Heads: RoBERTa's MLM head (lm_head.dense / layer_norm / decoder / bias; MPNetForMaskedLM),
its classification head (classifier.dense -> tanh -> out_proj on the first token;
MPNetForSequenceClassification) as the cls target, MPNetModel's pooler. Its own names and config keys.

transformers' MPNet fixes padding_idx at 1 (position ids start at 2, whatever pad_token_id says) and computes
32 buckets whatever `relative_attention_num_buckets` says; both are required as such both ways.
"""
from ...errors import ConfigError
from .base import Family, register_family
from .bert_shaped import mlm_head as _mlm_head
from .roberta import DECODER_BIAS, ROBERTA_TASK_HEADS, TIED_KEYS
from .rules import ACT_TO_HF, Rule
from .rules import linear as _linear
from .rules import ln as _ln

PADDING_IDX = 1  # transformers' MPNetEmbeddings.padding_idx, a constant there
OFFSET = PADDING_IDX + 1
BUCKETS, MAX_DISTANCE = 32, 128  # MPNetEncoder.compute_position_bias / relative_position_bucket defaults


def architecture(t):
    if "mlm" in t:
        return "MPNetForMaskedLM"
    return "MPNetForSequenceClassification" if "cls" in t else "MPNetModel"


def rules(cfg):
    """MPNet (without the `mpnet.` prefix) <-> uer_like."""
    r = [Rule("embeddings.word_embeddings.weight", "embedding.word.embedding.weight"),
         Rule("embeddings.position_embeddings.weight", "embedding.pos.embedding.weight")]
    r += _ln("embeddings.LayerNorm", "embedding.layer_norm")
    for i in range(cfg.layers_num):
        h, e = f"encoder.layer.{i}", f"encoder.transformer.{i}"
        a = f"{h}.attention.attn"
        r += [Rule([f"{a}.{n}.{w}" for n in "qkv"], f"{e}.self_attn.qkv.{w}", "qkv") for w in ("weight", "bias")]
        r += _linear(f"{a}.o", f"{e}.self_attn.final_linear")
        r += _ln(f"{h}.attention.LayerNorm", f"{e}.layer_norm_1")
        r += _linear(f"{h}.intermediate.dense", f"{e}.feed_forward.linear_1")
        r += _linear(f"{h}.output.dense", f"{e}.feed_forward.linear_2")
        r += _ln(f"{h}.output.LayerNorm", f"{e}.layer_norm_2")
    r.append(Rule("encoder.relative_attention_bias.weight", "encoder.relative_pos_emb.relative_attention_bias.weight"))
    if "pooler" in cfg.target:
        r += _linear("pooler.dense", "target.pooler.linear_1")
    if "cls" in cfg.target:
        r += _linear("classifier.dense", "target.cls.linear_1") + _linear("classifier.out_proj", "target.cls.linear_2")
    if "mlm" in cfg.target:
        r += _mlm_head("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder.weight", "mlm",
                       cfg.tie_weights)
    return r


def is_base_key(key):
    return key.split(".")[0] in ("embeddings", "encoder", "pooler")


def config_from_hf(hf, targets, extras, need, act, source):
    buckets = int(hf.get("relative_attention_num_buckets", BUCKETS))
    if buckets != BUCKETS:
        raise ConfigError(f"{source}: relative_attention_num_buckets {buckets} is not supported: transformers' MPNet "
                          f"buckets distances into {BUCKETS} whatever its table holds (only {BUCKETS})")
    max_pos = need("max_position_embeddings")
    if max_pos <= OFFSET:
        raise ConfigError(f"{source}: max_position_embeddings {max_pos} leaves no positions after the offset {OFFSET}")
    hidden = need("hidden_size")
    hidden_act = act(hf.get("hidden_act", "gelu"))
    if "mlm" in targets and hidden_act != "gelu":
        raise ConfigError(f"{source}: MPNet's LM head applies gelu, the MLM target the model's hidden_act "
                          f"{hidden_act!r}: only hidden_act gelu is supported with the LM head")
    d = dict(emb_size=hidden, hidden_size=hidden, feedforward_size=need("intermediate_size"),
             heads_num=need("num_attention_heads"), layers_num=need("num_hidden_layers"),
             max_seq_length=max_pos - OFFSET, position_offset=OFFSET, dropout=float(hf.get("hidden_dropout_prob", 0.1)),
             hidden_act=hidden_act, embedding=["word", "pos"], encoder="transformer", mask="fully_visible",
             layernorm_positioning="post", layernorm="torch", layernorm_eps=float(hf.get("layer_norm_eps", 1e-12)),
             position_scheme="relative_position_bucket", relative_attention_buckets_num=BUCKETS,
             relative_attention_max_distance=MAX_DISTANCE, relative_attention_bidirectional=True,
             target=targets, data_processor="mlm")
    if "cls" in targets:
        d.update(labels_num=int(hf.get("num_labels") or len(hf.get("id2label") or {}) or 2), pooling="first",
                 data_processor="cls")
    return d


def config_to_hf(model, arch, eps):
    c = model.config
    hf = {"model_type": "mpnet", "architectures": [arch], "vocab_size": model.vocab_size,
          "hidden_size": c.hidden_size, "num_hidden_layers": c.layers_num, "num_attention_heads": c.heads_num,
          "intermediate_size": c.feedforward_size, "hidden_act": ACT_TO_HF[c.hidden_act],
          "hidden_dropout_prob": c.dropout, "attention_probs_dropout_prob": c.dropout,
          "max_position_embeddings": c.max_seq_length + OFFSET, "relative_attention_num_buckets": BUCKETS,
          "layer_norm_eps": eps, "initializer_range": 0.02, "tie_word_embeddings": c.tie_weights,
          "pad_token_id": PADDING_IDX, "bos_token_id": 0, "eos_token_id": 2}
    if "cls" in c.target:
        hf.update(num_labels=c.labels_num, id2label={str(i): f"LABEL_{i}" for i in range(c.labels_num)},
                  label2id={f"LABEL_{i}": i for i in range(c.labels_num)})
    return hf


def export_rank(c):
    """Relative-position buckets without a decoder (T5's are an encoder-decoder's: t5.py)."""
    return (10 if c.decoder is None and c.position_scheme == "relative_position_bucket" and not c.remove_attention_bias
            else None)


def check_export(c):
    """'mpnet' when transformers' MPNet computes what the config does (position_scheme
    'relative_position_bucket'), else a ConfigError naming what differs."""
    wrong = []
    if c.mask != "fully_visible":
        wrong.append(f"mask fully_visible (got {c.mask!r})")
    if (c.relative_attention_buckets_num, c.relative_attention_max_distance) != (BUCKETS, MAX_DISTANCE):
        wrong.append(f"relative_attention_buckets_num {BUCKETS} and relative_attention_max_distance {MAX_DISTANCE} "
                     f"(got {c.relative_attention_buckets_num}, {c.relative_attention_max_distance})")
    if c.relative_attention_bidirectional is False:
        wrong.append("bidirectional buckets")
    if sorted(c.embedding) != ["pos", "word"] or c.remove_embedding_layernorm:
        wrong.append(f"embedding [word, pos] with its layer norm (got {c.embedding})")
    if c.position_offset != OFFSET:
        wrong.append(f"position_offset {OFFSET} (got {c.position_offset})")
    if c.layernorm_positioning != "post" or c.remove_attention_scale:
        wrong.append("post layer norm and scaled attention scores")
    if c.parameter_sharing or c.factorized_embedding_parameterization:
        wrong.append("no parameter sharing or embedding projection")
    if wrong:
        raise ConfigError("position_scheme 'relative_position_bucket' exports to transformers' MPNet only with "
                          + "; ".join(wrong))
    t = set(c.target)
    if t - {"mlm", "cls", "pooler"} or len(t) > 1:
        raise ConfigError(f"MPNet export supports one of the targets 'mlm' (MPNetForMaskedLM), 'cls' "
                          f"(MPNetForSequenceClassification) or 'pooler' (MPNetModel), got {c.target}")
    if "mlm" in t and c.hidden_act != "gelu":
        raise ConfigError(f"MPNet's LM head applies gelu: an 'mlm' target exports only with hidden_act gelu, "
                          f"got {c.hidden_act!r}")
    if "cls" in t and c.pooling != "first":
        raise ConfigError(f"the cls target exports as MPNetForSequenceClassification only with pooling 'first', "
                          f"got {c.pooling!r}")
    return "mpnet"


register_family(Family("mpnet", "mpnet", "MPNet", frozenset({"mlm", "cls", "pooler"}), architecture,
                       ([("mlm", ("lm_head.dense.weight",))],
                        [("cls", ("classifier.out_proj.weight",)), ("pooler", ("pooler.dense.weight",))]),
                       one_pooler=True, rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf,
                       config_to_hf=config_to_hf, export_rank=export_rank, check_export=check_export,
                       tied_keys=TIED_KEYS, decoder_bias=DECODER_BIAS, task_heads=ROBERTA_TASK_HEADS))
