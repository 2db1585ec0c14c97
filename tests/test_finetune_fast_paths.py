"""Fine-tuning's fast paths give what the plain ones give.

A classifier pooling [CLS] computes its encoder's last layer for the first position alone
(TransformerEncoder.forward's first_only): the logits and the gradients must be those of the full encoder, in
evaluation (padded layout) and in training (unpadded layout, padding in the batch), for post-LN, pre-LN and
parameter-sharing encoders; encoders whose position scheme reads query positions keep the full path.
Text -> ids by the C tokenizer equals the Python tokenizer."""
import pytest
import torch

from uer_like import load_config
from uer_like.finetune.classification import Classifier
from uer_like.finetune.multiple_choice import MultipleChoice
from uer_like.targets.cls import pool

VOCAB = 120
SMALL = dict(layers_num=2, hidden_size=32, emb_size=32, heads_num=4, feedforward_size=64, dropout=0.0)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = [12, 5, 9, 3]
    src = torch.zeros(len(lengths), 12, dtype=torch.long)
    seg = torch.zeros_like(src)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(5, VOCAB, (n,), generator=g)
        seg[i, :n] = 1
        seg[i, n // 2:n] = 2 if n > 3 else 1
    return src, seg


def full_logits(model, src, seg):
    """The classifier's forward with every position of the encoder computed."""
    hidden = model.encode(src, seg)
    assert hidden.shape[1] == src.shape[1]
    return model.output_layer_2(model.dropout(torch.tanh(model.output_layer_1(pool(hidden, seg, "first")))))


def make(name, **extra):
    torch.manual_seed(0)
    config = load_config(name, **SMALL, **extra)
    return Classifier(config, VOCAB, 3)


CASES = {"bert post-LN": ("bert/base_config.json", {}),
         "pre-LN": ("bert/base_config.json", {"layernorm_positioning": "pre"}),
         "albert sharing": ("albert/base_config.json", {})}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("training", [False, True])
def test_first_only_matches_the_full_encoder(case, training):
    name, extra = CASES[case]
    model = make(name, **extra)
    assert model.encoder.computes_first_only()
    model.train(training)
    src, seg = batch()
    labels = torch.tensor([0, 2, 1, 2])
    grads = []
    outs = []
    for forward in (lambda: model(src, seg), lambda: full_logits(model, src, seg)):
        model.zero_grad()
        logits = forward()
        Classifier.loss(logits, labels).backward()
        outs.append(logits.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert model.encode(src, seg, first_only=True).shape == (4, 1, 32)
    assert (outs[0] - outs[1]).abs().max() < 1e-5
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        assert (grads[0][n] - grads[1][n]).abs().max() < 1e-5, n


def test_multiple_choice_scores_match_the_full_encoder():
    torch.manual_seed(0)
    model = MultipleChoice(load_config("bert/base_config.json", **SMALL), VOCAB).eval()
    src, seg = batch(1)
    full = model.output_layer_2(torch.tanh(model.output_layer_1(model.encode(src, seg)[:, 0]))).squeeze(-1)
    assert (model.scores(src, seg) - full).abs().max() < 1e-5


def test_schemes_that_read_query_positions_keep_the_full_path():
    model = make("nezha/base_config.json").eval()
    assert not model.encoder.computes_first_only()
    src, seg = batch()
    assert model.encode(src, seg, first_only=True).shape[1] == src.shape[1]  # all positions, as asked without it
    assert (model(src, seg) - full_logits(model, src, seg)).abs().max() == 0
    with pytest.raises(ValueError, match="first_only"):
        model.encoder(model.embedding(src, seg), seg, first_only=True)


def test_native_ids_equal_the_python_tokenizer_on_book_reviews():
    """Encoder.ids (fine-tuning's text -> ids) runs the C tokenizer for BertTokenizer; the ids must be the
    Python tokenizer's, on real reviews and on text with accents, capitals, unknown words and control bytes."""
    import os
    import pickle

    from uer_like.finetune.data import Encoder
    from uer_like.tokenizers import build_tokenizer

    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "..", "..", "shared", "data")
    if not os.path.isdir(data):
        pytest.skip(f"{data}: the shared data is not there")
    tok = build_tokenizer("bert", os.path.join(data, "vocab", "google_zh_vocab.txt"))
    assert tok._native_wordpiece() is not None, "the C tokenizer is not used (uer_like._native not built?)"
    with open(os.path.join(data, "datasets", "book_review", "dev.tsv"), encoding="utf-8") as f:
        texts = [line.split("\t")[1] for line in f.read().split("\n")[1:3001] if "\t" in line]
    texts += ["Héllo WORLD naïve café", "x" * 150 + " ok", "tab\tand\x00nul \u200b zero-width", "", "  ", "🙂 emoji ##x"]
    enc = Encoder(tok)
    for t in texts:
        assert enc.ids(t) == tok.convert_tokens_to_ids(tok.tokenize(t)), t
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.ids(texts[0]) == enc.ids(texts[0])


def _tiny_classifier(tmp_path, labels=3):
    """A random tiny classifier saved as run_classifier.py saves one, and its vocabulary."""
    from uer_like.finetune.core import save_finetuned

    chars = "这本书很好看太无聊了一般作者写得不错的故事情节人物"
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(chars)) + "\n", encoding="utf-8")
    torch.manual_seed(3)
    model = Classifier(load_config("bert/base_config.json", **SMALL), 5 + len(chars), labels)
    path = str(tmp_path / "clf.bin")
    save_finetuned(model, path, {"task": "classification", "seq_length": 16, "labels_num": labels, "text_pair": False})
    return path, str(vocab), model


def test_predictor_batches_equal_one_by_one_and_the_model(tmp_path):
    """Predictor (batch inference from Python) gives, for texts of many lengths in one call, the labels and
    logits each text gets alone, and the logits of the model's own forward on the text's ids."""
    from uer_like.finetune.predict import Predictor
    from uer_like.tokenizers import build_tokenizer

    path, vocab, model = _tiny_classifier(tmp_path)
    texts = ["这本书很好看", "太无聊了", "一般", "作者写得不错的故事情节人物" * 3, "好", "人物很好看，故事无聊"]
    p = Predictor(path, batch_size=4, precision="fp32", vocab_path=vocab)
    batch_logits = p.logits(texts)
    alone = [p.logits([t])[0] for t in texts]
    assert p.predict(texts) == [int(x.argmax()) for x in alone]
    tok = build_tokenizer("bert", vocab)
    model.eval()
    for t, b, a in zip(texts, batch_logits, alone):
        ids = [2] + tok.convert_tokens_to_ids(tok.tokenize(t))[:14] + [3]
        with torch.no_grad():
            ref = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
        assert (b - a).abs().max() < 1e-5 and (b - ref).abs().max() < 1e-5, t
    assert p.predict([]) == []
    with pytest.raises(TypeError):
        p.predict("一个字符串")


def test_predictor_refuses_models_of_other_tasks(tmp_path):
    import json

    from uer_like.errors import ConfigError
    from uer_like.finetune.predict import Predictor

    path, vocab, _ = _tiny_classifier(tmp_path)
    meta = tmp_path / "clf_finetune.json"
    meta.write_text(json.dumps({"task": "tagging", "seq_length": 16}), encoding="utf-8")
    with pytest.raises(ConfigError, match="a tagging model"):
        Predictor(path, vocab_path=vocab)
