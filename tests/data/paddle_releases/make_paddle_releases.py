"""Make the PaddleNLP release fixtures: tiny random models of PaddleNLP's BERT-shaped families, saved by
PaddleNLP's own `save_pretrained` (model_state.pdparams + config.json; ernie_1.0 in the older model_config.json
form), with the outputs PaddleNLP computes from those files (reference.npz).

usage: make_paddle_releases.py OUT_DIR VOCAB [NAME ...]
Run in a separate venv: paddlepaddle 3.3.1 (CPU), paddlenlp 2.8.1, numpy 1.26.4 (see README.md).
"""
import json
import os
import shutil
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddlenlp  # noqa: E402
import paddlenlp.transformers as T  # noqa: E402
from paddlenlp.transformers.electra.configuration import ElectraConfig  # noqa: E402
from paddlenlp.transformers.ernie_m.configuration import ErnieMConfig  # noqa: E402
from paddlenlp.transformers.ernie_gram.configuration import ErnieGramConfig  # noqa: E402
from paddlenlp.transformers.nezha.configuration import NeZhaConfig  # noqa: E402
from paddlenlp.transformers.ppminilm.configuration import PPMiniLMConfig  # noqa: E402
from paddlenlp.transformers.roformer.configuration import RoFormerConfig  # noqa: E402
from paddlenlp.transformers.skep.configuration import SkepConfig  # noqa: E402
from paddlenlp.transformers.tinybert.configuration import TinyBertConfig  # noqa: E402

OUT, GOOGLE_VOCAB = sys.argv[1], sys.argv[2]
ONLY = set(sys.argv[3:])
paddle.set_device("cpu")

SENTS = [("今天天气很好，我们去公园散步", "好的，下午出发"), ("这本书的内容非常精彩", "值得一读")]

# ---- a trimmed Google Chinese vocabulary (384 tokens): [PAD], [unused1-99], [UNK], [CLS], [SEP], [MASK], <S>, <T>
# keep their ids (0, 100-103), then the characters of the inputs, then the next tokens of the vocabulary
google = [l.rstrip("\n") for l in open(GOOGLE_VOCAB, encoding="utf-8")]
chars = sorted({c for a, b in SENTS for c in a + b}, key=google.index)
VOCAB = google[:106] + chars
VOCAB += [t for t in google[106:] if t not in set(VOCAB)][: 384 - len(VOCAB)]
assert len(VOCAB) == 384 and VOCAB[0] == "[PAD]" and VOCAB[101] == "[CLS]"
ix = {t: i for i, t in enumerate(VOCAB)}
V, H, L, A, I, P = len(VOCAB), 32, 2, 4, 64, 64
COMMON = dict(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=A, intermediate_size=I,
              max_position_embeddings=P, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
              initializer_range=0.02, pad_token_id=0)


def pair(a, b):
    ids = [ix["[CLS]"]] + [ix[c] for c in a] + [ix["[SEP]"]]
    tt = [0] * len(ids)
    ids += [ix[c] for c in b] + [ix["[SEP]"]]
    tt += [1] * (len(b) + 1)
    return ids, tt


S = 24
input_ids = np.zeros((2, S), np.int64)
token_type_ids = np.zeros((2, S), np.int64)
attention_mask = np.zeros((2, S), np.int64)
for r, (ids, tt) in enumerate(pair(a, b) for a, b in SENTS):
    input_ids[r, :len(ids)] = ids
    token_type_ids[r, :len(tt)] = tt
    attention_mask[r, :len(ids)] = 1
assert attention_mask[0].sum() == 24 and attention_mask[1].sum() == 17
input_ids[0, 5] = ix["[MASK]"]
input_ids[1, 12] = ix["[MASK]"]
mlm_positions = np.array([0, 1, 5, 9, 12, 16, 20, 23], np.int64)

# name: (config, task class, tokenizer class, outputs of the task class, model_config.json form, notes)
SPECS = {
    # ERNIE 1.0 (ernie-1.0-base-zh): relu, 2 token types, no task types
    "ernie_1.0": (lambda: T.ErnieConfig(**COMMON, type_vocab_size=2, hidden_act="relu", use_task_id=False),
                  T.ErnieForMaskedLM, T.ErnieTokenizer, ("mlm",), True),
    "ernie_gram": (lambda: ErnieGramConfig(**COMMON, num_classes=3, embedding_size=H, type_vocab_size=2, hidden_act="gelu"),
                   T.ErnieGramForSequenceClassification, T.ErnieGramTokenizer, ("cls",),
                   False),
    "roformer": (lambda: RoFormerConfig(**COMMON, embedding_size=H, type_vocab_size=2, hidden_act="gelu",
                                        rotary_value=False),
                 T.RoFormerForMaskedLM, lambda v: T.RoFormerTokenizer(v, use_jieba=False), ("mlm",), False),
    # NEZHA: functional relative positions, clipped at 16 here (64 in the releases) so that clipping is exercised
    "nezha": (lambda: NeZhaConfig(**COMMON, type_vocab_size=2, hidden_act="gelu", use_relative_position=True,
                                  max_relative_position=16),
              T.NeZhaForPretraining, T.NeZhaTokenizer, ("mlm", "nsp"), False),
    # ELECTRA discriminator with the embedding projection (chinese-electra-small: embedding 128, hidden 256)
    "electra": (lambda: ElectraConfig(**COMMON, embedding_size=16, type_vocab_size=2, hidden_act="gelu"),
                T.ElectraDiscriminator, T.ElectraTokenizer, ("disc",), False),
    "ppminilm": (lambda: PPMiniLMConfig(**COMMON, num_classes=3, type_vocab_size=4, hidden_act="relu"),
                 T.PPMiniLMForSequenceClassification, T.PPMiniLMTokenizer, ("cls",),
                 False),
    # SKEP (skep_ernie_1.0_large_ch): relu, 4 token types
    "skep": (lambda: SkepConfig(**COMMON, num_classes=3, type_vocab_size=4, hidden_act="relu"),
             T.SkepForSequenceClassification,
             lambda v: T.SkepTokenizer(v, use_bpe_encoder=False), ("cls",), False),
    "bert": (lambda: T.BertConfig(**COMMON, type_vocab_size=2, hidden_act="gelu"),
             T.BertForPretraining, T.BertTokenizer, ("mlm", "nsp"), False),
    # Chinese RoBERTa (roberta-wwm-ext): pad 0, [CLS] 101, 2 token types
    "roberta": (lambda: T.RobertaConfig(**COMMON, type_vocab_size=2, hidden_act="gelu", cls_token_id=101),
                T.RobertaForMaskedLM, T.RobertaChineseTokenizer, ("mlm",), False),
    # TinyBERT (tinybert-4l-312d-zh): TinyBertForPretraining, the class its releases are saved from (the base
    # model and its fit_dense projections, used only in distillation)
    "tinybert": (lambda: TinyBertConfig(**COMMON, type_vocab_size=2, hidden_act="gelu", fit_size=48),
                 T.TinyBertForPretraining, T.TinyBertTokenizer, (), False),
    # ELECTRA generator (its MLM head tied to the word embedding)
    "electra_generator": (lambda: ElectraConfig(**COMMON, embedding_size=16, type_vocab_size=2, hidden_act="gelu"),
                          T.ElectraGenerator, T.ElectraTokenizer, ("mlm",), False),
    # RobertaForSequenceClassification (PaddleNLP 2.8: RoBERTa's own head, dense -> tanh -> out_proj on [CLS])
    "roberta_cls": (lambda: T.RobertaConfig(**COMMON, num_classes=3, type_vocab_size=2, hidden_act="gelu",
                                            cls_token_id=101),
                    T.RobertaForSequenceClassification, T.RobertaChineseTokenizer, ("cls",), False),
    # ERNIE-M (multilingual): no token types, positions + 2, feed-forward 4 x hidden whatever intermediate_size
    # says, pad_token_id 1; its tokenizer needs the release's sentencepiece model, so only the vocabulary is written
    "ernie_m": (lambda: ErnieMConfig(**{**COMMON, "pad_token_id": 1}, num_classes=3, hidden_act="gelu"),
                T.ErnieMForSequenceClassification, None, ("cls",), False),
}


def harden(model, rng):
    """Layer norms not 1 / 0, every bias non-zero, Linear weights N(0, 1/fan_in) (paddle: [in, out]); embeddings
    (and the tied decoders) keep PaddleNLP's N(0, 0.02), so the layer norms' eps matters."""
    done = set()
    for name, p in model.named_parameters():
        if id(p) in done:
            continue
        done.add(id(p))
        shape = list(p.shape)
        if "norm" in name:
            v = 1.0 + 0.2 * rng.randn(*shape) if name.endswith("weight") else 0.1 * rng.randn(*shape)
        elif name.endswith("bias") or len(shape) == 1:
            v = 0.1 * rng.randn(*shape)
        elif len(shape) == 2 and "embeddings." not in name and "decoder" not in name:
            v = rng.randn(*shape) / np.sqrt(shape[0])
        else:
            continue
        p.set_value(v.astype("float32"))


def run(model, heads, name):
    base = getattr(model, model.base_model_prefix)
    kw = dict(input_ids=paddle.to_tensor(input_ids), token_type_ids=paddle.to_tensor(token_type_ids))
    if name == "nezha":  # NeZhaModel makes no mask from pad_token_id: it takes the tokenizer's 0/1 mask
        kw["attention_mask"] = paddle.to_tensor(attention_mask)
    if name == "ernie_m":  # no token types; padding here is id 0, not ERNIE-M's pad_token_id 1: the 0/1 mask
        kw = dict(input_ids=kw["input_ids"], attention_mask=paddle.to_tensor(attention_mask))
    out = {}
    with paddle.no_grad():
        o = base(**kw)
        o = o if isinstance(o, (tuple, list)) else (o,)
        out["last_hidden_state"] = o[0].numpy()
        if len(o) > 1 and o[1] is not None and tuple(o[1].shape) == (2, H):
            out["pooler_output"] = o[1].numpy()
        try:
            hs = base(**kw, output_hidden_states=True, return_dict=True).hidden_states
            out["hidden_states"] = np.stack([h.numpy() for h in hs])
            assert np.array_equal(out["hidden_states"][-1], out["last_hidden_state"])
        except TypeError:
            pass
        r = model(**kw)
        r = r if isinstance(r, (tuple, list)) else (r,)
        if not heads:  # a class without task heads returns the base model's sequence output
            assert np.array_equal(r[0].numpy(), out["last_hidden_state"])
    for head, t in zip(heads, r):
        t = t.numpy()
        out[f"{head}_logits"] = t[:, mlm_positions] if head == "mlm" else t
    return out


def legacy_config(d):
    """config.json -> the model_config.json that PaddleNLP before 2.5 wrote: the base model's arguments under
    init_args (with its init_class), the task class in init_class."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch = cfg.pop("architectures")[0]
    mt = cfg.pop("model_type")
    for k in ("paddlenlp_version", "fuse", "dtype"):
        cfg.pop(k, None)
    cfg["init_class"] = {"ernie": "ErnieModel"}[mt]
    os.remove(os.path.join(d, "config.json"))
    with open(os.path.join(d, "model_config.json"), "w", encoding="utf-8") as f:
        json.dump({"init_args": [cfg], "init_class": arch}, f, indent=2, sort_keys=True)


os.makedirs(OUT, exist_ok=True)
vocab_file = os.path.join(OUT, "_vocab.txt")
with open(vocab_file, "w", encoding="utf-8") as f:
    f.write("\n".join(VOCAB) + "\n")
for seed, (name, (make_cfg, cls, tok, heads, legacy)) in enumerate(SPECS.items(), start=1):
    if ONLY and name not in ONLY:
        continue
    paddle.seed(seed)
    rng = np.random.RandomState(seed)
    model = cls(make_cfg())
    harden(model, rng)
    model.eval()
    ref = run(model, heads, name)
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    if tok is not None:
        tok(vocab_file).save_pretrained(d)
    else:
        shutil.copyfile(vocab_file, os.path.join(d, "vocab.txt"))
    assert open(os.path.join(d, "vocab.txt"), encoding="utf-8").read().split("\n")[:V] == VOCAB
    if legacy:
        legacy_config(d)
    # the reference must come back from the files alone
    task = type(model)
    m2 = task.from_pretrained(d)
    m2.eval()
    ref2 = run(m2, heads, name)
    for k in ref:
        assert np.array_equal(ref[k], ref2[k]), (name, k)
    eps = sorted({float(l._epsilon) for _, l in m2.named_sublayers() if isinstance(l, paddle.nn.LayerNorm)})
    np.savez_compressed(os.path.join(d, "reference.npz"), input_ids=input_ids, token_type_ids=token_type_ids,
                        attention_mask=attention_mask, mlm_positions=mlm_positions,
                        **{k: v.astype(np.float32) for k, v in ref.items()})
    size = sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))
    print(name, task.__name__, sorted(os.listdir(d)), {k: v.shape for k, v in ref.items()}, "eps", eps,
          f"{size / 1024:.0f} KB")
os.remove(vocab_file)
print("paddle", paddle.__version__, "paddlenlp", paddlenlp.__version__, "numpy", np.__version__)
