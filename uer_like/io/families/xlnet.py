"""XLNet (relative attention; HFL's Chinese XLNet): transformers' XLNetModel names under `transformer.`, the LM
head, or the sequence summary (last token -> tanh -> logits_proj) of XLNetForSequenceClassification as the cls
target; its own names and config keys."""
import json
import os
import shutil

from ...errors import ConfigError
from .base import Family, register_family
from .rules import ACT_TO_HF, Rule
from .rules import linear as _linear
from .rules import ln as _ln

SPM_FILE = "spiece.model"  # tokenizers/xlnet.py's too


def architecture(t):
    if "lm" in t:
        return "XLNetLMHeadModel"
    return "XLNetForSequenceClassification" if "cls" in t else "XLNetModel"


def rules(cfg):
    """XLNet (without the `transformer.` prefix) <-> uer_like with the xlnet position scheme: post-LN layers,
    attention projections without bias, per-layer relative-attention biases."""
    r = [Rule("word_embedding.weight", "embedding.word.embedding.weight"), Rule("mask_emb", "mask_emb", "extra")]
    for i in range(cfg.layers_num):
        h, e = f"layer.{i}", f"encoder.transformer.{i}"
        a, s = f"{h}.rel_attn", f"{e}.self_attn"
        r.append(Rule([f"{a}.q", f"{a}.k", f"{a}.v"], f"{s}.qkv.weight", "xqkv"))
        r.append(Rule(f"{a}.o", f"{s}.final_linear.weight", "xout"))
        r.append(Rule(f"{a}.r", f"{s}.scheme.r.weight", "xin"))
        r += [Rule(f"{a}.{n}", f"{s}.scheme.{n}") for n in ("r_w_bias", "r_r_bias", "r_s_bias", "seg_embed")]
        r += _ln(f"{a}.layer_norm", f"{e}.layer_norm_1")
        r += _linear(f"{h}.ff.layer_1", f"{e}.feed_forward.linear_1")
        r += _linear(f"{h}.ff.layer_2", f"{e}.feed_forward.linear_2")
        r += _ln(f"{h}.ff.layer_norm", f"{e}.layer_norm_2")
    if "lm" in cfg.target:
        r.append(Rule("lm_loss.bias", "target.lm.output_layer.bias"))
        if not cfg.tie_weights:
            r.append(Rule("lm_loss.weight", "target.lm.output_layer.weight"))
    if "cls" in cfg.target:
        r += _linear("sequence_summary.summary", "target.cls.linear_1") + _linear("logits_proj", "target.cls.linear_2")
    return r


def is_base_key(key):
    return key.split(".")[0] in ("word_embedding", "mask_emb", "layer")


def config_from_hf(hf, targets, extras, need, act, source):
    d_model, heads = need("d_model"), need("n_head")
    if hf.get("d_head") is not None and int(hf["d_head"]) * heads != d_model:
        raise ConfigError(f"{source}: d_head {hf['d_head']} x n_head {heads} != d_model {d_model} (not supported)")
    if hf.get("bi_data"):
        raise ConfigError(f"{source}: bi_data=true (bidirectional pretraining data) is not supported")
    attn_type = hf.get("attn_type", "bi")
    if attn_type not in ("bi", "uni"):
        raise ConfigError(f"{source}: attn_type {attn_type!r} is not supported; supported: bi, uni")
    if "cls" in targets and (hf.get("summary_type", "last") != "last" or not hf.get("summary_use_proj", True)
                             or hf.get("summary_activation", "tanh") != "tanh"):
        raise ConfigError(f"{source}: XLNet sequence summary {hf.get('summary_type')!r} / "
                          f"{hf.get('summary_activation')!r} is not supported (only 'last' with a tanh projection)")
    d = dict(emb_size=d_model, hidden_size=d_model, feedforward_size=need("d_inner"), heads_num=heads,
             layers_num=need("n_layer"), max_seq_length=int(extras.get("max_seq_length", 512)),
             dropout=float(hf.get("dropout", 0.1)), hidden_act=act(hf.get("ff_activation", "gelu")),
             embedding=["word"], remove_embedding_layernorm=True, encoder="transformer",
             mask="causal" if attn_type == "uni" else "fully_visible", layernorm_positioning="post",
             layernorm="torch", layernorm_eps=float(hf.get("layer_norm_eps", 1e-12)), remove_attention_bias=True,
             position_scheme="xlnet", clamp_len=int(hf.get("clamp_len", -1) or -1), target=targets,
             has_lmtarget_bias=True, data_processor="lm", pooling="last", tokenizer="xlnet")
    if "cls" in targets:
        d.update(labels_num=int(hf.get("num_labels") or len(hf.get("id2label") or {}) or 2), data_processor="cls")
    return d


def config_to_hf(model, arch, eps):
    c = model.config
    hf = {"model_type": "xlnet", "architectures": [arch], "vocab_size": model.vocab_size,
          "d_model": c.hidden_size, "n_layer": c.layers_num, "n_head": c.heads_num,
          "d_head": c.hidden_size // c.heads_num, "d_inner": c.feedforward_size,
          "ff_activation": ACT_TO_HF[c.hidden_act], "untie_r": True,
          "attn_type": "uni" if c.mask == "causal" else "bi", "bi_data": False, "clamp_len": c.clamp_len,
          "same_length": False, "dropout": c.dropout, "layer_norm_eps": eps, "initializer_range": 0.02,
          "mem_len": None, "reuse_len": None, "tie_word_embeddings": c.tie_weights,
          "summary_type": "last", "summary_use_proj": True, "summary_activation": "tanh",
          "summary_last_dropout": c.dropout, "pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
    if "cls" in c.target:
        hf.update(num_labels=c.labels_num, id2label={str(i): f"LABEL_{i}" for i in range(c.labels_num)},
                  label2id={f"LABEL_{i}": i for i in range(c.labels_num)})
    hf["uer_like"] = {"max_seq_length": c.max_seq_length}
    return hf


def special_ids(sp):
    """The token ids of <pad>, <s>, </s> in an XLNet sentencepiece model (HFL's: 5, 1, 2), None where it has
    no such piece: the config.json ids of an export, whatever model the tokenizer is."""
    def piece_id(piece):
        i = sp.PieceToId(piece)
        return i if sp.IdToPiece(i) == piece else None

    return {"pad_token_id": piece_id("<pad>"), "bos_token_id": piece_id("<s>"), "eos_token_id": piece_id("</s>")}


def export_rank(c):
    return 10 if c.decoder is None and c.position_scheme == "xlnet" else None


def check_export(c):
    if (c.embedding != ["word"] or not c.remove_embedding_layernorm or not c.remove_attention_bias
            or c.layernorm_positioning != "post" or c.factorized_embedding_parameterization or c.parameter_sharing):
        raise ConfigError("position_scheme 'xlnet' exports to transformers' XLNet only with embedding [word], "
                          "remove_embedding_layernorm, remove_attention_bias, post layer norm, no embedding projection "
                          "and no parameter sharing")
    t = set(c.target)
    if t - {"lm", "cls"} or t == {"lm", "cls"}:
        raise ConfigError(f"XLNet export supports the target 'lm' (XLNetLMHeadModel) or 'cls' "
                          f"(XLNetForSequenceClassification), got {c.target}")
    if "lm" in t and not c.has_lmtarget_bias:
        raise ConfigError("XLNet's LM head has a bias: export needs has_lmtarget_bias true")
    if "cls" in t and c.pooling != "last":
        raise ConfigError(f"the cls target exports as XLNetForSequenceClassification only with pooling 'last', "
                          f"got {c.pooling!r}")


def write_tokenizer(out_dir, vocab_path):
    """XLNet's tokenizer is its sentencepiece model, written as spiece.model."""
    if vocab_path is None or not vocab_path.endswith(".model"):
        return []
    shutil.copyfile(vocab_path, os.path.join(out_dir, SPM_FILE))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "XLNetTokenizer", "do_lower_case": False, "keep_accents": False}, f, indent=2)
    return [SPM_FILE, "tokenizer_config.json"]


# fine-tuned models (io/hf_tasks.py): the classifier's dense + tanh on the last token is XLNet's sequence summary
# (summary_type 'last': the last position, the last real token under XLNet's left padding), then logits_proj
TASK_HEADS = {task: ([], [("output_layer_1.", "sequence_summary.summary."), ("output_layer_2.", "logits_proj.")])
              for task in ("classification", "regression", "multi_label")}
TASK_HEADS.update(tagging=([], [("output_layer.", "classifier.")]), mrc=([], [("output_layer.", "qa_outputs.")]))


def task_class(suffix):
    """XLNet's span extractor with one start/end projection is XLNetForQuestionAnsweringSimple."""
    return "XLNet" + ("ForQuestionAnsweringSimple" if suffix == "ForQuestionAnswering" else suffix)


register_family(Family("xlnet", "transformer", "XLNet", frozenset({"lm", "cls"}), architecture,
                       ([("lm", ("lm_loss.bias",))], [("cls", ("logits_proj.weight",))]), rules=rules,
                       is_base_key=is_base_key, config_from_hf=config_from_hf, config_to_hf=config_to_hf,
                       special_ids=special_ids, export_rank=export_rank, check_export=check_export,
                       tied_keys=("lm_loss.weight",), spm_file=SPM_FILE, write_tokenizer=write_tokenizer,
                       task_heads=TASK_HEADS.get, task_pooling="last", task_class=task_class))
