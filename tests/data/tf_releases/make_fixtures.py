"""Builds the tiny TF release checkpoints of tests/test_io_tf_releases.py with each release's own modeling code
(run under tensorflow 2.x through tf.compat.v1), and records the outputs that code computes for fixed inputs.

    python make_fixtures.py OUT_DIR --nezha PLM/NEZHA-TensorFlow --nezha_gen PLM/NEZHA-Gen-TensorFlow --albert_zh ALBERT_ZH --gpt2_ml GPT2_ML --xlnet XLNET

(the directories of checkouts of huawei-noah/Pretrained-Language-Model, brightmart/albert_zh, imcaspar/gpt2-ml,
zihangdai/xlnet). Needs tensorflow(-cpu) 2.x, tf-slim and numpy. The upstream code is TF 1 code: it runs with
`tensorflow` replaced by tf.compat.v1 plus two stand-ins that create the same variables and compute the same
functions as TF 1's: tf.layers.dense (kernel [in, out] and bias under the layer's name) and
tf.contrib.layers.layer_norm (tf_slim's copy of it: LayerNorm/{beta,gamma}, eps 1e-12). Dropout is off
(is_training=False). Each release directory gets model.ckpt.* (tf.compat.v1.train.Saver, model variables only),
its config json and vocabulary, and reference.npz with the inputs and the upstream outputs.
"""
import argparse
import json
import os
import sys
import types

import numpy as np
import tensorflow as tf
import tf_slim

v1 = tf.compat.v1
v1.disable_v2_behavior()


# ---------------------------------------------------------------------------------------------- TF 1 stand-ins
def _dense(inputs, units, activation=None, use_bias=True, kernel_initializer=None, name=None, **_):
    with v1.variable_scope(name, default_name="dense"):
        kernel = v1.get_variable("kernel", [int(inputs.shape[-1]), units], initializer=kernel_initializer)
        if inputs.shape.ndims > 2:
            y = tf.tensordot(inputs, kernel, [[inputs.shape.ndims - 1], [0]])
        else:
            y = tf.matmul(inputs, kernel)
        if use_bias:
            y = tf.nn.bias_add(y, v1.get_variable("bias", [units], initializer=v1.zeros_initializer()))
        return activation(y) if activation is not None else y


def _dropout(inputs, rate=0.5, training=False, **_):
    assert not training
    return inputs


shim = types.ModuleType("tf1shim")
shim.__dict__.update({k: getattr(v1, k) for k in dir(v1) if not k.startswith("__")})
shim.layers = types.SimpleNamespace(dense=_dense, dropout=_dropout)
shim.contrib = types.SimpleNamespace(layers=types.SimpleNamespace(layer_norm=tf_slim.layers.layer_norm))
shim.erf = tf.math.erf
sys.modules["tf1shim"] = shim


def load_upstream(path, name, patches=()):
    """The upstream module at `path`, with `import tensorflow as tf` pointing at the stand-in and `patches`
    (old, new) applied (each must match)."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    src = src.replace("import tensorflow.compat.v1 as tf", "import tf1shim as tf", 1)
    src = src.replace("import tensorflow as tf", "import tf1shim as tf", 1)
    for old, new in patches:
        if old not in src:
            raise SystemExit(f"{path}: {old!r} not found; the upstream code changed")
        src = src.replace(old, new, 1)
    mod = types.ModuleType(name)
    mod.__file__ = path
    sys.modules[name] = mod
    exec(compile(src, path, "exec"), mod.__dict__)
    return mod


def save(sess, out, config_name, config, vocab_size, reference, vocab_name="vocab.txt"):
    os.makedirs(out, exist_ok=True)
    v1.train.Saver(v1.global_variables()).save(sess, os.path.join(out, "model.ckpt"), write_meta_graph=False)
    if config_name is not None:  # NEZHA-Gen ships none
        with open(os.path.join(out, config_name), "w") as f:
            json.dump(config, f, indent=2)
    if vocab_name == "vocab.txt":
        with open(os.path.join(out, vocab_name), "w", encoding="utf-8") as f:
            f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(5, vocab_size)]))
            f.write("\n")
    np.savez(os.path.join(out, "reference.npz"), **reference)
    names = sorted(n for n, _ in v1.train.list_variables(os.path.join(out, "model.ckpt")))
    print(out, len(names), "variables:", ", ".join(names[:8]), "...")


def randomize(sess, std=0.2, seed=0):
    """Weights away from initialisation (biases non-zero, layer norms not 1), for a meaningful comparison."""
    rng = np.random.default_rng(seed)
    for v in v1.global_variables():
        shape = v.shape.as_list()
        base = 1.0 if v.name.endswith("gamma:0") else 0.0
        v.load((base + std * rng.standard_normal(shape)).astype(np.float32), sess)


B, S = 2, 11
rng = np.random.default_rng(42)


def inputs(vocab):
    ids = rng.integers(5, vocab, size=(B, S)).astype(np.int32)
    mask = np.ones((B, S), np.int32)
    mask[1, 8:] = 0
    types_ = np.zeros((B, S), np.int32)
    types_[:, 6:] = 1
    return ids, mask, types_


def mlm_head(mod, hidden, cfg, output_weights, project=None):
    """google-research/bert's (and these releases') get_masked_lm_output, over every position."""
    h = v1.reshape(hidden, [-1, cfg.hidden_size])
    with v1.variable_scope("cls/predictions"):
        with v1.variable_scope("transform"):
            h = _dense(h, cfg.hidden_size, activation=mod.get_activation(cfg.hidden_act),
                       kernel_initializer=mod.create_initializer(cfg.initializer_range))
            h = mod.layer_norm(h)
        bias = v1.get_variable("output_bias", [cfg.vocab_size], initializer=v1.zeros_initializer())
        if project is not None:  # albert_zh: back through word_embeddings_2
            h = tf.matmul(h, project, transpose_b=True)
        logits = tf.nn.bias_add(tf.matmul(h, output_weights, transpose_b=True), bias)
    return v1.reshape(logits, [B, S, cfg.vocab_size])


# ---------------------------------------------------------------------------------------------- releases
def make_nezha(src, out):
    mod = load_upstream(os.path.join(src, "modeling.py"), "nezha_modeling", [
        ("from gpu_environment import get_custom_getter", "get_custom_getter = lambda compute_type: None"),
        ("from tensorflow.contrib.framework.python.ops import add_arg_scope\n@add_arg_scope\n", ""),
        ("  return contrib_layer_norm(\n      inputs=input_tensor",
         "  return tf.contrib.layers.layer_norm(\n      inputs=input_tensor")])
    config = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                  max_position_embeddings=64, type_vocab_size=2, initializer_range=0.02, use_relative_position=True)
    cfg = mod.BertConfig.from_dict(config)
    ids, mask, tt = inputs(cfg.vocab_size)
    with tf.Graph().as_default(), v1.Session() as sess:
        model = mod.BertModel(cfg, is_training=False, input_ids=tf.constant(ids), input_mask=tf.constant(mask),
                              token_type_ids=tf.constant(tt), use_one_hot_embeddings=False)
        seq = model.get_sequence_output()
        logits = mlm_head(mod, seq, cfg, model.get_embedding_table())
        sess.run(v1.global_variables_initializer())
        randomize(sess, seed=1)
        h, lg = sess.run([seq, logits])
        save(sess, out, "bert_config.json", config, cfg.vocab_size,
             dict(input_ids=ids, input_mask=mask, token_type_ids=tt, hidden=h, mlm_logits=lg))


def make_nezha_gen(src, out):
    """NEZHA-Gen's GenerativeModel.step at its first step (predict_token_idx 0, no cache), built from the upstream
    functions it calls (its while_loop's shape invariants are fixed to the 12-layer model), with the head of its
    get_predict_output applied at every position rather than the last only."""
    sys.modules["fire"] = types.ModuleType("fire")
    sys.modules["tokenization"] = types.ModuleType("tokenization")
    mod = load_upstream(os.path.join(src, "interactive_conditional_generation.py"), "nezha_gen")
    # no config ships with the release: 64-wide heads, as its scripts' GPTConfig (768 / 12), which the loader assumes
    config = dict(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=1, intermediate_size=24,
                  hidden_act="gelu", max_position_embeddings=32, initializer_range=0.02)
    ids, _, _ = inputs(config["vocab_size"])
    mask = np.ones_like(ids)  # its mask ignores input_mask (ones over past + current tokens)
    cfg = mod.GPTConfig(temperature=1, **{k: v for k, v in config.items()})
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    with tf.Graph().as_default(), v1.Session() as sess:
        input_ids = tf.constant(ids)
        with v1.variable_scope("bert", reuse=v1.AUTO_REUSE):
            with v1.variable_scope("embeddings"):
                emb, table = mod.embedding_lookup(input_ids=input_ids, vocab_size=cfg.vocab_size,
                                                  embedding_size=cfg.hidden_size, initializer_range=0.02,
                                                  word_embedding_name="word_embeddings", use_one_hot_embeddings=True)
                emb = mod.embedding_postprocessor(input_tensor=emb, use_token_type=False, token_type_ids=None,
                                                  token_type_vocab_size=cfg.type_vocab_size,
                                                  use_position_embeddings=True, position_embedding_name="position_embeddings",
                                                  initializer_range=0.02, max_position_embeddings=cfg.max_position_embeddings,
                                                  dropout_prob=0.0, predict_token_idx=0)
            with v1.variable_scope("encoder"):
                attention_mask = mod.create_attention_mask_from_input_mask(input_ids, tf.constant(mask), predict_token_idx=0)
                layers, _, _ = mod.transformer_model(
                    input_tensor=emb, attention_mask=attention_mask, hidden_size=cfg.hidden_size,
                    num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
                    intermediate_size=cfg.intermediate_size, intermediate_act_fn=mod.get_activation(cfg.hidden_act),
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.02,
                    do_return_all_layers=True, past=None, predict_token_idx=0)
        seq = layers[-1]
        with v1.variable_scope("cls/predictions", reuse=v1.AUTO_REUSE):  # get_predict_output, every position
            h = v1.reshape(seq, [-1, cfg.hidden_size])
            with v1.variable_scope("transform", reuse=v1.AUTO_REUSE):
                h = _dense(h, cfg.hidden_size, activation=mod.get_activation(cfg.hidden_act),
                           kernel_initializer=mod.create_initializer(0.02))
                h = mod.layer_norm(h)
            bias = v1.get_variable("output_bias", shape=[cfg.vocab_size], initializer=v1.zeros_initializer())
            logits = tf.nn.bias_add(tf.matmul(h, table, transpose_b=True), bias)
        logits = v1.reshape(logits, [B, S, cfg.vocab_size])
        sess.run(v1.global_variables_initializer())
        randomize(sess, std=0.1, seed=5)  # 64-wide: smaller weights keep float32 rounding well under 1e-5
        hs, lg = sess.run([seq, logits])
        save(sess, out, None, None, cfg.vocab_size, dict(input_ids=ids, hidden=hs, lm_logits=lg))


def make_albert_zh(src, out):
    sys.modules["bert_utils"] = types.ModuleType("bert_utils")
    mod = load_upstream(os.path.join(src, "modeling.py"), "albert_zh_modeling")
    config = dict(vocab_size=97, hidden_size=32, embedding_size=16, num_hidden_layers=3, num_attention_heads=4,
                  intermediate_size=37, hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  max_position_embeddings=64, type_vocab_size=2, initializer_range=0.02, ln_type="postln",
                  directionality="bidi")
    cfg = mod.BertConfig.from_dict(config)
    ids, mask, tt = inputs(cfg.vocab_size)
    with tf.Graph().as_default(), v1.Session() as sess:
        model = mod.BertModel(cfg, is_training=False, input_ids=tf.constant(ids), input_mask=tf.constant(mask),
                              token_type_ids=tf.constant(tt), use_one_hot_embeddings=False)
        seq = model.get_sequence_output()
        logits = mlm_head(mod, seq, cfg, model.get_embedding_table(), project=model.get_embedding_table_2())
        sess.run(v1.global_variables_initializer())
        randomize(sess, seed=2)
        h, lg = sess.run([seq, logits])
        save(sess, out, "albert_config.json", config, cfg.vocab_size,
             dict(input_ids=ids, input_mask=mask, token_type_ids=tt, hidden=h, mlm_logits=lg))


def make_gpt2_ml(src, out):
    utils = load_upstream(os.path.join(src, "train", "utils.py"), "train_utils")
    pkg = types.ModuleType("train")
    pkg.utils = utils
    pkg.optimization_adafactor = types.ModuleType("optimization_adafactor")
    sys.modules["train"], sys.modules["train.utils"] = pkg, utils
    sys.modules["train.optimization_adafactor"] = pkg.optimization_adafactor
    mod = load_upstream(os.path.join(src, "train", "modeling.py"), "gpt2_ml_modeling")
    config = dict(vocab_size=97, hidden_size=32, attention_probs_dropout_prob=0.1, hidden_dropout_prob=0.1,
                  hidden_act="gelu", initializer_range=0.02, intermediate_size=37, max_position_embeddings=64,
                  num_attention_heads=4, num_hidden_layers=2)
    cfg = mod.GroverConfig.from_dict(config)
    ids, _, _ = inputs(cfg.vocab_size)
    with tf.Graph().as_default(), v1.Session() as sess:
        model = mod.GroverModel(cfg, is_training=False, input_ids=tf.constant(ids), chop_off_last_token=False)
        hidden = v1.reshape(model.hidden_state, [B, S, cfg.hidden_size])
        logits = v1.reshape(model.logits_flat, [B, S, cfg.vocab_size])
        sess.run(v1.global_variables_initializer())
        randomize(sess, seed=3)
        h, lg = sess.run([hidden, logits])
        save(sess, out, "config.json", config, cfg.vocab_size, dict(input_ids=ids, hidden=h, lm_logits=lg))


def make_xlnet(src, out):
    mod = load_upstream(os.path.join(src, "modeling.py"), "xlnet_modeling")
    config = dict(d_head=8, d_inner=37, d_model=32, ff_activation="gelu", n_head=4, n_layer=2, n_token=97,
                  untie_r=True)
    ids, mask, tt = inputs(config["n_token"])
    # XLNet's inputs are time-major [len, batch]; its input_mask is 1 at padding (HF's convention: 1 = token)
    with tf.Graph().as_default(), v1.Session() as sess:
        init = v1.initializers.random_normal(stddev=0.02)
        with v1.variable_scope("model", reuse=v1.AUTO_REUSE):
            hidden, _, table = mod.transformer_xl(
                inp_k=tf.constant(ids.T), seg_id=tf.constant(tt.T), input_mask=tf.constant((1 - mask).T, tf.float32),
                n_token=config["n_token"], n_layer=config["n_layer"], d_model=config["d_model"], n_head=config["n_head"],
                d_head=config["d_head"], d_inner=config["d_inner"], dropout=0.0, dropatt=0.0, attn_type="bi",
                bi_data=False, initializer=init, is_training=False, mem_len=None, untie_r=True, use_tpu=False,
                ff_activation="gelu", clamp_len=-1, same_length=False)
            with v1.variable_scope("lm_loss"):
                bias = v1.get_variable("bias", [config["n_token"]], initializer=v1.zeros_initializer())
                logits = tf.einsum("ibd,nd->ibn", hidden, table) + bias
        sess.run(v1.global_variables_initializer())
        randomize(sess, seed=4)
        h, lg = sess.run([hidden, logits])
        save(sess, out, "xlnet_config.json", config, config["n_token"],
             dict(input_ids=ids, input_mask=mask, token_type_ids=tt, hidden=h.transpose(1, 0, 2),
                  lm_logits=lg.transpose(1, 0, 2)), vocab_name=None)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--nezha")
    ap.add_argument("--nezha_gen")
    ap.add_argument("--albert_zh")
    ap.add_argument("--gpt2_ml")
    ap.add_argument("--xlnet")
    a = ap.parse_args()
    for name, fn in (("nezha", make_nezha), ("nezha_gen", make_nezha_gen), ("albert_zh", make_albert_zh), ("gpt2_ml", make_gpt2_ml),
                     ("xlnet", make_xlnet)):
        if getattr(a, name):
            fn(getattr(a, name), os.path.join(a.out, name))
