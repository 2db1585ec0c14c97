"""UER-py's config forms of every era, mapped onto ModelConfig's keys in one place.

UER-py merges its JSON config into its argparse namespace, so a UER config may carry any UER-py flag, and
its forms changed over the years:

- 2019-2020: `--embedding bert|word`, `--encoder bert|gpt|lstm|...`, `--target bert|lm|...` on the command
  line; the JSON held sizes only (models/bert_base_config.json).
- 2021-2022: `"embedding": "word_pos_seg"`, `"encoder": "transformer"`, `"target": "bert"` (or "albert",
  "mlm", "lm", "bilm", "cls") as strings in the JSON.
- 2022 to July 2023: `"target": ["mlm", "sp"]` lists, `"embedding"` still one string.
- since July 2023: `"embedding": ["word", "pos", "seg"]` lists (the form uer_like uses).

`normalize(d, source)` turns any of these into the current form, and sorts every other key into one of
three groups: a model key uer_like implements (kept), a training-only key that does not change the model
or its data (TRAINING_ONLY_KEYS: accepted and dropped), or a key that changes the model or the data and is
not implemented here (NOT_IMPLEMENTED_KEYS: an error naming it). A model family uer_like does not have
(gatedcnn; synthesizer; dual-stream sentence-BERT; the 2021 seq2seq targets t5 / bart / gsg that held their
decoder) fails with one line naming the family. Encoder-decoder configs (`decoder: transformer`, `tgt_embedding`,
`share_embedding`, `decoder_layers_num`; UER-py since 2022) load.
"""
from .errors import ConfigError

# ------------------------------------------------------------------------------------------ component names
# UER-py's embedding strings (2019-2023) -> the keys they stand for. `word_sinusoidalpos` never had an
# embedding layer norm, whatever remove_embedding_layernorm said; its table is not the one the list form
# ["word", "sinusoidalpos"] computes since July 2023, hence its own name (embeddings/sinusoidal.py).
EMBEDDING_STRINGS = {
    "word": {"embedding": ["word"]},
    "word_pos": {"embedding": ["word", "pos"]},
    "word_pos_seg": {"embedding": ["word", "pos", "seg"]},
    "word_sinusoidalpos": {"embedding": ["word", "sinusoidalpos_2019"], "remove_embedding_layernorm": True},
    "bert": {"embedding": ["word", "pos", "seg"]},  # 2019-2020: BertEmbedding
}

# UER-py's encoder names before December 2020 (uer/encoders/bert_encoder.py, gpt_encoder.py).
ENCODER_ALIASES = {
    "bert": {"encoder": "transformer"},
    "gpt": {"encoder": "transformer", "mask": "causal"},
}

# UER-py's single target strings (before February 2022): bert = MLM + next-sentence prediction,
# albert = MLM + sentence-order prediction (both the `sp` head here; the data processor decides which).
TARGET_STRINGS = {
    "bert": ["mlm", "sp"],
    "albert": ["mlm", "sp"],
    "mlm": ["mlm"],
    "lm": ["lm"],
    "bilm": ["bilm"],
    "cls": ["cls"],
    "sp": ["sp"],
    "prefixlm": ["lm"],  # 2021-2022: PrefixlmTarget, an LmTarget by another name (the same weights)
}

# Before 2022 the target chose the data processor (preprocess.py --target); a config without
# data_processor gets the one its target implies.
PROCESSOR_OF_TARGET = {"bert": "bert", "albert": "albert", "mlm": "mlm", "lm": "lm", "bilm": "lm", "cls": "cls",
                       "prefixlm": "prefixlm"}
PROCESSOR_OF_TARGETS = {("mlm", "sp"): "bert", ("mlm",): "mlm", ("lm",): "lm", ("bilm",): "lm", ("cls",): "cls"}

# ------------------------------------------------------------------------------------------ key groups
# Flags of UER-py's scripts that a config may carry but that change neither the model nor its data here:
# optimisation, logging, launching, file paths (given on the command line in uer_like). Accepted, dropped.
TRAINING_ONLY_KEYS = frozenset({
    # optimisation and schedule
    "learning_rate", "batch_size", "warmup", "epochs_num", "total_steps", "accumulation_steps", "optimizer",
    "scheduler", "lr_decay", "beta1", "beta2", "weight_decay", "seed", "fp16", "fp16_opt_level",
    # reporting, checkpoints, launching
    "report_steps", "save_checkpoint_steps", "log_path", "log_level", "log_file_level", "world_size",
    "gpu_ranks", "master_ip", "backend", "local_rank", "deepspeed", "deepspeed_config",
    "deepspeed_checkpoint_activations", "deepspeed_checkpoint_layers_num", "instances_buffer_size",
    # paths (command-line flags here)
    "config_path", "dataset_path", "pretrained_model_path", "output_model_path", "load_model_path",
    "train_path", "dev_path", "test_path", "prediction_path", "vocab_path", "spm_model_path", "merges_path",
    "corpus_path",
    # tokenizer settings (command-line flags here: --vocab_path, --spm_model_path, --do_lower_case)
    "do_lower_case",
    # sequence length of the data (the model's limit is max_seq_length), preprocessing parallelism
    "seq_length", "processes_num", "docs_buffer_size",
    # adversarial fine-tuning (fine-tuning flags here: --use_adv, --adv_type, --fgm_epsilon)
    "use_adv", "adv_type", "fgm_epsilon", "pgd_k", "pgd_alpha", "pgd_epsilon",
})

# Keys that change the model or its data and that uer_like does not implement (yet): an error naming the
# key, never silently dropped. The value is what to tell the user.
NOT_IMPLEMENTED_KEYS = {
    "has_residual_attention": "residual attention (RealFormer) is not implemented",
    "prefix_lm_loss": "UER-py's prefix_lm_loss (the loss on segment-2 positions) is not implemented; with "
                      "data_processor prefixlm the lm loss is on the target tokens already: drop the key",
    "full_sentences": "full_sentences packing is not implemented",
    "dynamic_masking": "a preprocessing option here: pass --dynamic_masking to preprocess.py",
    "whole_word_masking": "a preprocessing option here: pass --whole_word_masking to preprocess.py",
    "dup_factor": "a preprocessing option here: pass --dup_factor to preprocess.py",
    "short_seq_prob": "a preprocessing option here: pass --short_seq_prob to preprocess.py",
}
# Keys whose default (off) value is harmless: `"span_masking": false` says nothing the model must honour.
_OFF_VALUES = (False, None, 0, "", [])

# ------------------------------------------------------------------------------------------ families
SUPPORTED_FAMILIES = ("BERT, RoBERTa, ALBERT, GPT-2, ELECTRA, the prefix LM (UniLM: mask causal_with_prefix), recurrent "
                      "(lstm, gru, rnn, bilstm, bigru, birnn) and "
                      "encoder-decoder (decoder: transformer with target lm, as UER-py's T5, BART, PEGASUS since 2022)")
_SEQ2SEQ_PROCESSORS = {"t5": "t5", "bart": "bart", "gsg": "pegasus", "mt": "mt (seq2seq translation)",
                       "seq2seq": "seq2seq", "cls_mlm": "cls_mlm (prompt)"}
_SEQ2SEQ_TARGETS = {"t5": "t5", "bart": "bart", "gsg": "pegasus", "seq2seq": "seq2seq", "s2s": "seq2seq"}
_ENCODER_FAMILIES = {"gatedcnn": "gatedcnn", "cnn": "cnn", "synt": "synthesizer", "attn": "attn",
                     "rcnn": "rcnn", "crnn": "crnn", "dual": "sbert (dual-stream sentence-BERT)"}
# an encoder-decoder config (decoder: transformer) loads; a target vocabulary of its own (translation) does not
_SEQ2SEQ_KEYS = ("tgt_tokenizer", "tgt_vocab_path", "tgt_spm_model_path", "tgt_merges_path", "tgt_do_lower_case",
                 "tgt_seq_length")
_OTHER_FAMILY_KEYS = {"stream_0": "sbert (dual-stream sentence-BERT)", "stream_1": "sbert (dual-stream sentence-BERT)",
                      "kernel_size": "gatedcnn", "block_size": "gatedcnn", "synt_type": "synthesizer"}
MODULE_KEYS = ("embedding", "encoder", "target")


def unsupported(source, family, key, value):
    return ConfigError(f"{source}: the {family} model family is not supported by uer_like (config key '{key}': "
                       f"{value!r}); supported: {SUPPORTED_FAMILIES}")


def _names(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def check_family(d, source):
    """Raise the one-line 'not supported' error when the config describes a family uer_like lacks."""
    proc = d.get("data_processor")
    if isinstance(proc, str) and proc in _SEQ2SEQ_PROCESSORS and not d.get("decoder"):
        raise unsupported(source, _SEQ2SEQ_PROCESSORS[proc], "data_processor", proc)
    for t in _names(d.get("target")):
        if t in _SEQ2SEQ_TARGETS:
            raise unsupported(source, _SEQ2SEQ_TARGETS[t], "target", d["target"])
    for key in ("embedding", "encoder"):
        for name in _names(d.get(key)):
            if name in _ENCODER_FAMILIES:
                raise unsupported(source, _ENCODER_FAMILIES[name], key, d[key])
    for key in _SEQ2SEQ_KEYS:
        if key in d and d[key] not in _OFF_VALUES:
            raise unsupported(source, "seq2seq (encoder-decoder)", key, d[key])
    for key, family in _OTHER_FAMILY_KEYS.items():
        if key in d:
            raise unsupported(source, family, key, d[key])


def has_module_keys(d):
    """Whether a raw config names its components (configs before 2021 did not: they came from flags)."""
    return isinstance(d, dict) and any(k in d for k in MODULE_KEYS)


def _rotary_flag(d, source):
    """TencentPretrain's `rotary_position_embedding: true` (its LLaMA configs) is `position_scheme: "rotary"`."""
    if "rotary_position_embedding" not in d:
        return d
    rotary = d.pop("rotary_position_embedding")
    if not isinstance(rotary, bool):
        raise ConfigError(f"{source}: config key 'rotary_position_embedding' must be true or false, got {rotary!r}")
    if rotary:
        if d.get("position_scheme", "rotary") != "rotary":
            raise ConfigError(f"{source}: rotary_position_embedding true contradicts position_scheme "
                              f"{d['position_scheme']!r}")
        d["position_scheme"] = "rotary"
    return d


def _relative_flag(d, source):
    """UER-py's `relative_position_embedding: true` (its T5 configs) is `position_scheme:
    "relative_position_bucket"` with bidirectional buckets, as UER-py's encoder builds them whatever its mask.
    UER-py adds the bias before the scores are scaled, uer_like (as T5 and MPNet) after: the two agree when the
    scores are not scaled (remove_attention_scale, as in every T5 config), so a scaled one is refused."""
    if "relative_position_embedding" not in d:
        return d
    relative = d.pop("relative_position_embedding")
    if not isinstance(relative, bool):
        raise ConfigError(f"{source}: config key 'relative_position_embedding' must be true or false, got "
                          f"{relative!r}")
    if relative:
        if d.get("position_scheme", "relative_position_bucket") != "relative_position_bucket":
            raise ConfigError(f"{source}: relative_position_embedding true contradicts position_scheme "
                              f"{d['position_scheme']!r}")
        if not d.get("remove_attention_scale"):
            raise ConfigError(f"{source}: relative_position_embedding true with scaled attention scores is UER-py's "
                              "bias added before the scaling, which uer_like does not compute; set "
                              "remove_attention_scale true (as T5), or use position_scheme "
                              "'relative_position_bucket' (the bias added after the scaling, as MPNet)")
        d["position_scheme"] = "relative_position_bucket"
        d.setdefault("relative_attention_bidirectional", True)
    return d


def uer_py_tying(d, head_is_word_embedding=False):
    """UER-py's tying of an encoder-decoder model (`decoder` with `share_embedding` and `tie_weights`), which
    changed in August 2023. Until then (7c1f731, and the "uer" layout's first weeks) uer/models/model.py tied
    the LM head to the encoder's word embedding and shared that with the decoder: one tensor under all three
    names. Since UER-py d9cbbae it ties the head to the decoder's word embedding and only then replaces that
    embedding's weight with the encoder's, so the head keeps a weight of its own. The file tells which:
    `head_is_word_embedding` (the checkpoint's LM head equal to its word embedding, io/uer.py) keeps the three
    tied, as uer_like builds them from these keys (as Hugging Face's BART); otherwise tie_weights is turned
    off. Returns the dict, changed in place."""
    if d.get("decoder") and d.get("share_embedding") and d.get("tie_weights") and not head_is_word_embedding:
        d["tie_weights"] = False
    return d


def normalize(d, source="config"):
    """A raw UER-format config dict (any era) -> a dict of ModelConfig keys in the current form.

    Unknown keys are left in, so that ModelConfig reports them with the valid choices."""
    if not isinstance(d, dict):
        return d
    check_family(d, source)
    out = {}
    forced = {}
    for key, value in d.items():
        if key in TRAINING_ONLY_KEYS:
            continue
        if key in NOT_IMPLEMENTED_KEYS:
            if value in _OFF_VALUES:
                continue
            raise ConfigError(f"{source}: config key '{key}' ({value!r}) changes the model or its data and is not "
                              f"supported: {NOT_IMPLEMENTED_KEYS[key]}")
        if key == "share_relative_position_embedding":
            continue  # a seq2seq inference flag of UER-py's (the seq2seq family is refused above)
        out[key] = value
    out = _rotary_flag(out, source)
    out = _relative_flag(out, source)
    emb = out.get("embedding")
    if isinstance(emb, str) and emb in EMBEDDING_STRINGS:
        forced.update(EMBEDDING_STRINGS[emb])
    tgt_emb = out.get("tgt_embedding")  # an encoder-decoder's target embedding, in the same string forms
    if isinstance(tgt_emb, str) and tgt_emb in EMBEDDING_STRINGS:
        out["tgt_embedding"] = list(EMBEDDING_STRINGS[tgt_emb]["embedding"])
    enc = out.get("encoder")
    if isinstance(enc, str) and enc in ENCODER_ALIASES:
        forced.update(ENCODER_ALIASES[enc])
    tgt = out.get("target")
    if isinstance(tgt, str) and tgt in TARGET_STRINGS:
        forced["target"] = list(TARGET_STRINGS[tgt])
        if "data_processor" not in out and tgt in PROCESSOR_OF_TARGET:
            out["data_processor"] = PROCESSOR_OF_TARGET[tgt]
    elif isinstance(tgt, list) and "data_processor" not in out:
        proc = PROCESSOR_OF_TARGETS.get(tuple(tgt))
        if proc:
            out["data_processor"] = proc
    if out.get("data_processor") == "bilm":
        # UER-py's bilm processor: uer_like's lm datasets provide the bilm targets (training/batches.py)
        out["data_processor"] = "lm"
    if isinstance(out.get("hidden_act"), list):  # UER-py's t5-v1_1 configs: ["gelu", "linear"] (family refused above)
        raise ConfigError(f"{source}: config key 'hidden_act' must be one activation name, got {out['hidden_act']!r}")
    out.update(forced)
    return out


def config_for_layout(d, layout):
    """A config dict (current form) in the form UER-py read in the era of a checkpoint layout (io/uer.py), so
    that the NAME_config.json written beside a file saved in that layout works with that UER-py."""
    if layout == "uer":
        return d
    d = dict(d)
    for key in ("embedding", "tgt_embedding"):
        for name, keys in EMBEDDING_STRINGS.items():
            if name != "bert" and keys["embedding"] == d.get(key):
                d[key] = name
                break
    if layout in ("uer_2021", "uer_2021_albert"):
        t = d.get("target")
        if t == ["mlm", "sp"]:
            d["target"] = "albert" if layout == "uer_2021_albert" else "bert"
        elif isinstance(t, list) and len(t) == 1:
            d["target"] = t[0]
    return d
