"""Google TensorFlow checkpoints: a checkpoint written by tensorflow under google-research's variable
names (BERT; also ALBERT and the ELECTRA discriminator/generator) loads with the same outputs as the
Hugging Face model it was made from, and uer_like's own checkpoint reader (io/tf_bundle.py, no tensorflow)
returns exactly the tensors tensorflow's reader returns, for every variable of every checkpoint written here
(also float16, bfloat16, int32, int64, float64 and a checkpoint in two shards).

Loading needs no tensorflow; it is the reference here, so the parity test runs when this interpreter imports tensorflow, or on
request (.ci/run asks for it):
  UER_LIKE_TF_PYTHON=/path/to/python   an interpreter that has tensorflow and this project's requirements;
  UER_LIKE_TF_INSTALL=1                make (once) a virtual environment with `pip install tensorflow-cpu` that
                                       also sees this interpreter's packages (a .pth file), kept in the temporary
                                       directory under a name keyed by this interpreter's path.
Otherwise it is skipped with these instructions. A request that cannot be met fails."""
import hashlib
import json
import os
import site
import subprocess
import sys
import tempfile

import pytest

from uer_like import CheckpointError
from uer_like.io import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
out_dir = sys.argv[2]
import numpy as np
import tensorflow as tf
import torch
import transformers as T
from uer_like.io import load_model
from uer_like.io.tf_bundle import read_bundle

V, H = 99, 32
SMALL = dict(vocab_size=V, hidden_size=H, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu")


def save_tf(variables, d, config, name):
    os.makedirs(d, exist_ok=True)
    names = sorted(variables)
    prefix = os.path.join(d, "model.ckpt")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(variables[n]) for n in names])
    with open(os.path.join(d, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model.ckpt"\n')
    if config is not None:
        with open(os.path.join(d, name), "w") as f:
            json.dump(config, f)
    reader_checks.append(compare_reader(prefix))
    return prefix


def compare_reader(prefix):
    """uer_like's own reader (io/tf_bundle.py) against tensorflow's: every variable, exactly (dtype, shape,
    values). -> (variables compared, names that differ)."""
    ref = tf.train.load_checkpoint(prefix)
    names = sorted(ref.get_variable_to_shape_map())
    ours = read_bundle(prefix)
    bad = sorted(set(names) ^ set(ours))
    for n in names:
        if n not in ours:
            continue
        t, o = np.asarray(ref.get_tensor(n)), ours[n]
        if o.dtype == torch.bfloat16:   # numpy has no bfloat16: compare the bits
            same = str(t.dtype) == "bfloat16" and np.array_equal(t.view(np.uint16), o.view(torch.int16).numpy().view(np.uint16))
        else:
            same = t.dtype == o.numpy().dtype and t.shape == tuple(o.shape) and np.array_equal(t, o.numpy())
        if not same:
            bad.append(n)
    return len(names), bad


reader_checks = []


def np_(t):
    return t.detach().numpy().astype(np.float32)


def dense(v, tf_name, lin):   # TF kernels are [in, out]
    v[tf_name + "/kernel"] = np_(lin.weight).T.copy()
    v[tf_name + "/bias"] = np_(lin.bias)


def ln(v, tf_name, mod):
    v[tf_name + "/gamma"] = np_(mod.weight)
    v[tf_name + "/beta"] = np_(mod.bias)


def emb(v, scope, e):
    v[scope + "/word_embeddings"] = np_(e.word_embeddings.weight)
    v[scope + "/position_embeddings"] = np_(e.position_embeddings.weight)
    v[scope + "/token_type_embeddings"] = np_(e.token_type_embeddings.weight)
    ln(v, scope + "/LayerNorm", e.LayerNorm)


def bert_layers(v, scope, layers):
    for i, L in enumerate(layers):
        p = f"{scope}/layer_{i}"
        for n in ("query", "key", "value"):
            dense(v, f"{p}/attention/self/{n}", getattr(L.attention.self, n))
        dense(v, f"{p}/attention/output/dense", L.attention.output.dense)
        ln(v, f"{p}/attention/output/LayerNorm", L.attention.output.LayerNorm)
        dense(v, f"{p}/intermediate/dense", L.intermediate.dense)
        dense(v, f"{p}/output/dense", L.output.dense)
        ln(v, f"{p}/output/LayerNorm", L.output.LayerNorm)


def perturb(model, std=0.1):   # weights away from initialisation (biases non-zero, layer norms not 1)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * std)
    return model


g = torch.Generator().manual_seed(5)
ids = torch.randint(5, V, (2, 12), generator=g)
tt = torch.zeros_like(ids); tt[:, 7:] = 1
mask = torch.ones_like(ids); mask[1, 9:] = 0
seg = (tt + 1) * mask
keep = mask.bool()
res = {}


def diff(a, b, m=None):
    if m is not None:
        a, b = a[m], b[m]
    return float((a - b).abs().max())


# ---------------------------------------------------------------- BERT (google-research/bert names)
torch.manual_seed(0)
hf = perturb(T.BertForPreTraining(T.BertConfig(**SMALL)).eval())
v = {}
emb(v, "bert/embeddings", hf.bert.embeddings)
bert_layers(v, "bert/encoder", hf.bert.encoder.layer)
dense(v, "bert/pooler/dense", hf.bert.pooler.dense)
dense(v, "cls/predictions/transform/dense", hf.cls.predictions.transform.dense)
ln(v, "cls/predictions/transform/LayerNorm", hf.cls.predictions.transform.LayerNorm)
v["cls/predictions/output_bias"] = np_(hf.cls.predictions.bias)
v["cls/seq_relationship/output_weights"] = np_(hf.cls.seq_relationship.weight)   # [2, hidden], not transposed
v["cls/seq_relationship/output_bias"] = np_(hf.cls.seq_relationship.bias)
v["global_step"] = np.array(7, dtype=np.int64)
v["bert/embeddings/word_embeddings/adam_m"] = np.zeros((V, H), np.float32)
google_cfg = {k: SMALL[k] for k in SMALL}
google_cfg.update(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.02)
save_tf(v, os.path.join(out_dir, "bert"), google_cfg, "bert_config.json")
m = load_model(os.path.join(out_dir, "bert")).eval()
with torch.no_grad():
    o = hf(input_ids=ids, token_type_ids=tt, attention_mask=mask)
    hs = hf.bert(input_ids=ids, token_type_ids=tt, attention_mask=mask).last_hidden_state
    h = m.encode(ids, seg)
    lg = m.target_logits(h, seg)
res["bert"] = {"hidden": diff(h, hs, keep), "mlm": diff(lg["mlm"], o.prediction_logits, keep),
               "sp": diff(lg["sp"], o.seq_relationship_logits), "targets": m.config.target}

# ---------------------------------------------------------------- ALBERT (google-research/albert names)
torch.manual_seed(1)
hf = perturb(T.AlbertForPreTraining(T.AlbertConfig(embedding_size=16, **SMALL)).eval())
v = {}
emb(v, "bert/embeddings", hf.albert.embeddings)
dense(v, "bert/encoder/embedding_hidden_mapping_in", hf.albert.encoder.embedding_hidden_mapping_in)
L = hf.albert.encoder.albert_layer_groups[0].albert_layers[0]
p = "bert/encoder/transformer/group_0/inner_group_0"
for n in ("query", "key", "value"):
    dense(v, f"{p}/attention_1/self/{n}", getattr(L.attention, n))
dense(v, f"{p}/attention_1/output/dense", L.attention.dense)
ln(v, f"{p}/LayerNorm", L.attention.LayerNorm)
dense(v, f"{p}/ffn_1/intermediate/dense", L.ffn)
dense(v, f"{p}/ffn_1/intermediate/output/dense", L.ffn_output)
ln(v, f"{p}/LayerNorm_1", L.full_layer_layer_norm)
dense(v, "bert/pooler/dense", hf.albert.pooler)
dense(v, "cls/predictions/transform/dense", hf.predictions.dense)
ln(v, "cls/predictions/transform/LayerNorm", hf.predictions.LayerNorm)
v["cls/predictions/output_bias"] = np_(hf.predictions.bias)
v["cls/seq_relationship/output_weights"] = np_(hf.sop_classifier.classifier.weight)
v["cls/seq_relationship/output_bias"] = np_(hf.sop_classifier.classifier.bias)
cfg = dict(SMALL, embedding_size=16, num_hidden_groups=1, inner_group_num=1)
save_tf({("module/" + k): x for k, x in v.items()}, os.path.join(out_dir, "albert"), cfg, "albert_config.json")
m = load_model(os.path.join(out_dir, "albert")).eval()
with torch.no_grad():
    o = hf(input_ids=ids, token_type_ids=tt, attention_mask=mask)
    hs = hf.albert(input_ids=ids, token_type_ids=tt, attention_mask=mask).last_hidden_state
    h = m.encode(ids, seg)
    lg = m.target_logits(h, seg)
res["albert"] = {"hidden": diff(h, hs, keep), "mlm": diff(lg["mlm"], o.prediction_logits, keep),
                 "sp": diff(lg["sp"], o.sop_logits), "targets": m.config.target}

# ---------------------------------------------------------------- ELECTRA (google-research/electra names)
torch.manual_seed(2)
disc = T.ElectraForPreTraining(T.ElectraConfig(embedding_size=16, hidden_size=64, num_hidden_layers=2,
                                               num_attention_heads=1, intermediate_size=37, vocab_size=V,
                                               max_position_embeddings=64)).eval()
gen = T.ElectraForMaskedLM(T.ElectraConfig(embedding_size=16, hidden_size=64, num_hidden_layers=1,
                                           num_attention_heads=1, intermediate_size=29, vocab_size=V,
                                           max_position_embeddings=64)).eval()
perturb(disc), perturb(gen)
gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())   # ELECTRA shares them
v = {}
emb(v, "electra/embeddings", disc.electra.embeddings)
dense(v, "electra/embeddings_project", disc.electra.embeddings_project)
bert_layers(v, "electra/encoder", disc.electra.encoder.layer)
dense(v, "discriminator_predictions/dense", disc.discriminator_predictions.dense)
dense(v, "discriminator_predictions/dense_1", disc.discriminator_predictions.dense_prediction)
dense(v, "generator/embeddings_project", gen.electra.embeddings_project)
bert_layers(v, "generator/encoder", gen.electra.encoder.layer)
dense(v, "generator_predictions/dense", gen.generator_predictions.dense)
ln(v, "generator_predictions/LayerNorm", gen.generator_predictions.LayerNorm)
v["generator_predictions/output_bias"] = np_(gen.generator_lm_head.bias)
save_tf(v, os.path.join(out_dir, "electra"), None, None)   # ELECTRA releases ship no config
for which, ref in (("discriminator", disc), ("generator", gen)):
    m = load_model(os.path.join(out_dir, "electra"), tf_model=which).eval()
    with torch.no_grad():
        o = ref(input_ids=ids, token_type_ids=tt, attention_mask=mask, output_hidden_states=True)
        h = m.encode(ids, seg)
        lg = m.target_logits(h, seg)
    name = m.config.target[0]
    res["electra_" + which] = {"hidden": diff(h, o.hidden_states[-1], keep), name: diff(lg[name], o.logits, keep),
                               "targets": m.config.target}
# ---------------------------------------------------------------- the reader: dtypes, several shards
rng = np.random.default_rng(3)
parts = [{"a/kernel": rng.standard_normal((3, 5)).astype(np.float32), "a/half": rng.standard_normal((4, 2)).astype(np.float16),
          "a/bf16": tf.cast(rng.standard_normal((2, 3)).astype(np.float32), tf.bfloat16),
          "a/int32": np.arange(6, dtype=np.int32).reshape(2, 3), "a/int64": np.array(2 ** 40 + 3, np.int64),
          "a/double": rng.standard_normal((2,))},
         {f"b/layer_{i:04d}/" + "w" * 200: rng.standard_normal((i % 3 + 1, 2)).astype(np.float32)
          for i in range(1500)}]   # an index over TF's 256 KiB table blocks: several blocks, shared-prefix keys
tmp = []
for i, v in enumerate(parts):
    p = os.path.join(out_dir, f"shard_{i}")
    names = sorted(v)
    tf.raw_ops.SaveV2(prefix=p, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[v[n] if isinstance(v[n], tf.Tensor) else tf.constant(v[n]) for n in names])
    tmp.append(p)
sharded = os.path.join(out_dir, "sharded", "model.ckpt")
tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=tmp, destination_prefix=sharded)
shards = sorted(f for f in os.listdir(os.path.dirname(sharded)) if ".data-" in f)
reader_checks.append(compare_reader(sharded))
from uer_like.io import tf_bundle as tb
raw = open(sharded + ".index", "rb").read()
f = raw[-48:]
_, q = tb._varint(f, 0); _, q = tb._varint(f, q); off, q = tb._varint(f, q); size, q = tb._varint(f, q)
index_blocks = len(list(tb._block_entries(tb._block(raw, off, size, "index"), "index")))
res["reader"] = {"compared": sum(n for n, _ in reader_checks), "differ": sum((b for _, b in reader_checks), []),
                 "shards": shards, "index_blocks": index_blocks}
print("RESULT " + json.dumps(res))
'''


PYTHON_ENV, INSTALL_ENV = "UER_LIKE_TF_PYTHON", "UER_LIKE_TF_INSTALL"
HOW = (f"{INSTALL_ENV}=1 python -m pytest tests/test_io_tf.py installs tensorflow-cpu (once) into a virtual "
       f"environment beside this interpreter's packages; {PYTHON_ENV}=/path/to/python names an interpreter that "
       "has tensorflow")


def _works(py):
    try:
        return subprocess.run([py, "-c", "import tensorflow, torch, transformers"], capture_output=True,
                              timeout=300).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def tf_venv_path():
    """The virtual environment made for this interpreter (keyed by its path and version)."""
    key = hashlib.sha256(f"{sys.executable}|{sys.prefix}|{sys.version}".encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"uer_like_tf_venv_{key}")


def make_tf_venv(venv):
    """python -m venv, a .pth that adds this interpreter's site-packages (with their own .pth files) after the
    venv's own, then pip install tensorflow-cpu. Returns the venv's python or raises RuntimeError."""
    py = os.path.join(venv, "bin", "python")
    if os.path.exists(py) and _works(py):
        return py
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True, capture_output=True, timeout=300)
    site_dir = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True, timeout=120).stdout.strip()
    parents = [p for p in site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
               if os.path.isdir(p)]
    with open(os.path.join(site_dir, "uer_like_parent_env.pth"), "w") as f:
        f.write("import site; " + "; ".join(f"site.addsitedir({p!r})" for p in parents) + "\n")
    r = subprocess.run([py, "-m", "pip", "install", "--quiet", "tensorflow-cpu"], capture_output=True, text=True,
                       timeout=1800)
    if r.returncode != 0 or not _works(py):
        tail = ((r.stderr or r.stdout).strip().splitlines() or ["tensorflow, torch or transformers does not import"])
        raise RuntimeError(f"{venv}: pip install tensorflow-cpu: {tail[-1]}")
    return py


def _tf_python():
    """An interpreter with tensorflow and this interpreter's packages; None when none was asked for."""
    try:
        import tensorflow  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    if os.environ.get(PYTHON_ENV):
        py = os.environ[PYTHON_ENV]
        if not _works(py):
            pytest.fail(f"{PYTHON_ENV}={py} cannot import tensorflow, torch and transformers")
        return py
    if os.environ.get(INSTALL_ENV) == "1":
        try:
            return make_tf_venv(tf_venv_path())
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            pytest.fail(f"{INSTALL_ENV}=1: tensorflow could not be installed: {e}")
    return None


def test_tf_checkpoints_match_hf(tmp_path):
    py = _tf_python()
    if py is None:
        pytest.skip(f"tensorflow is not installed here: {HOW}")
    script = tmp_path / "make_and_load_tf.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([py, str(script), ROOT, str(tmp_path)], capture_output=True, text=True, timeout=420, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    assert res["bert"]["targets"] == ["mlm", "sp"]
    assert res["albert"]["targets"] == ["mlm", "sp"]
    assert res["electra_discriminator"]["targets"] == ["electra_disc"]
    assert res["electra_generator"]["targets"] == ["electra_gen"]
    reader = res.pop("reader")
    assert reader["differ"] == [] and reader["compared"] > 1500 and reader["index_blocks"] > 1, reader
    assert reader["shards"] == ["model.ckpt.data-00000-of-00002", "model.ckpt.data-00001-of-00002"]
    for family, diffs in res.items():
        for k, d in diffs.items():
            if k != "targets":
                assert d <= 1e-5, f"{family} {k}: {d}"
    report = os.environ.get("UER_LIKE_PARITY_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps({"tf": res}) + "\n")


def test_tf_checkpoint_reader_needs_no_tensorflow(tmp_path, monkeypatch):
    """The reader is pure Python: with tensorflow made unimportable, a broken index is still one line naming it."""
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if it were not installed, even where it is
    (tmp_path / "model.ckpt.index").write_bytes(b"\0" * 16)
    (tmp_path / "model.ckpt.data-00000-of-00001").write_bytes(b"\0" * 16)
    (tmp_path / "bert_config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"model.ckpt.index: not a TensorFlow checkpoint index"):
        load_model(str(tmp_path / "model.ckpt"))
    with pytest.raises(CheckpointError, match="not a TensorFlow checkpoint index"):
        load_model(str(tmp_path))
