"""Point 1: with the same (converted) weights, the same batch and dropout off, the fine-tuning heads give
the logits and loss of transformers' BertForSequenceClassification / BertForTokenClassification /
BertForQuestionAnswering within 1e-5."""
import pytest
import torch

from uer_like.config import ModelConfig
from uer_like.finetune import Classifier, SpanExtractor, Tagger

transformers = pytest.importorskip("transformers")

V, H, L, HEADS, FF, MAXLEN = 60, 32, 2, 4, 64, 40
TOL = 1e-5


def hf_config(num_labels=3):
    return transformers.BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=HEADS,
                                   intermediate_size=FF, max_position_embeddings=MAXLEN, type_vocab_size=2,
                                   hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                   layer_norm_eps=1e-12, num_labels=num_labels)


def our_config():
    return ModelConfig(emb_size=H, hidden_size=H, feedforward_size=FF, heads_num=HEADS, layers_num=L,
                       max_seq_length=MAXLEN, dropout=0.0, hidden_act="gelu", layernorm="torch",
                       layernorm_eps=1e-12, vocab_size=V)


def map_bert(bert):
    """HF BertModel state -> our embedding.* / encoder.* names. Our segment table has 3 rows
    (0 padding, 1 sentence A, 2 sentence B); HF's token types 0/1 go to rows 1/2 and row 0 copies type 0."""
    s = {k: v.detach().clone() for k, v in bert.state_dict().items()}
    out = {
        "embedding.word.embedding.weight": s["embeddings.word_embeddings.weight"],
        "embedding.pos.embedding.weight": s["embeddings.position_embeddings.weight"],
        "embedding.seg.embedding.weight": torch.cat([s["embeddings.token_type_embeddings.weight"][:1],
                                                     s["embeddings.token_type_embeddings.weight"]], 0),
        "embedding.layer_norm.gamma": s["embeddings.LayerNorm.weight"],
        "embedding.layer_norm.beta": s["embeddings.LayerNorm.bias"],
    }
    for i in range(L):
        p, q = f"encoder.layer.{i}.", f"encoder.transformer.{i}."
        for kind in ("weight", "bias"):
            out[q + f"self_attn.qkv.{kind}"] = torch.cat(
                [s[p + f"attention.self.{n}.{kind}"] for n in ("query", "key", "value")], 0)
            out[q + f"self_attn.final_linear.{kind}"] = s[p + f"attention.output.dense.{kind}"]
            out[q + f"feed_forward.linear_1.{kind}"] = s[p + f"intermediate.dense.{kind}"]
            out[q + f"feed_forward.linear_2.{kind}"] = s[p + f"output.dense.{kind}"]
        for ours, theirs in (("layer_norm_1", "attention.output.LayerNorm"), ("layer_norm_2", "output.LayerNorm")):
            out[q + f"{ours}.gamma"] = s[p + f"{theirs}.weight"]
            out[q + f"{ours}.beta"] = s[p + f"{theirs}.bias"]
    return out


def report(what, d_logits, d_loss):
    print(f"max |{what} difference| {float(d_logits.abs().max()):.1e}, |loss difference| {abs(float(d_loss)):.1e}")


def load(model, state):
    own = model.state_dict()
    assert set(own) == set(state), (set(own) ^ set(state))
    model.load_state_dict(state)
    return model.eval()


def batch():
    """Two sentence pairs of different lengths, padded: [CLS] a [SEP] b [SEP] [PAD]..."""
    torch.manual_seed(0)
    lens = [(5, 4), (7, 0)]
    n = max(a + b + 2 + (1 if b else 0) for a, b in lens) + 2
    src = torch.zeros(2, n, dtype=torch.long)
    seg = torch.zeros(2, n, dtype=torch.long)
    for i, (a, b) in enumerate(lens):
        toks = [2] + torch.randint(5, V, (a,)).tolist() + [3]
        sg = [1] * len(toks)
        if b:
            toks += torch.randint(5, V, (b,)).tolist() + [3]
            sg += [2] * (b + 1)
        src[i, :len(toks)] = torch.tensor(toks)
        seg[i, :len(sg)] = torch.tensor(sg)
    mask = (seg > 0).long()
    token_type = (seg == 2).long()
    return src, seg, mask, token_type


def hf(cls, num_labels=3):
    torch.manual_seed(1)
    m = cls(hf_config(num_labels)).eval()
    with torch.no_grad():  # non-trivial layer norms, so that a mapping mistake shows
        for n, p in m.named_parameters():
            if "LayerNorm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    return m


def test_sequence_classification_parity():
    ref = hf(transformers.BertForSequenceClassification)
    state = map_bert(ref.bert)
    state["output_layer_1.weight"], state["output_layer_1.bias"] = ref.bert.pooler.dense.weight, ref.bert.pooler.dense.bias
    state["output_layer_2.weight"], state["output_layer_2.bias"] = ref.classifier.weight, ref.classifier.bias
    ours = load(Classifier(our_config(), V, 3), state)
    src, seg, mask, tt = batch()
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        r = ref(input_ids=src, attention_mask=mask, token_type_ids=tt, labels=labels)
        logits = ours(src, seg)
        loss = ours.loss(logits, labels)
    report("sequence classification logits", logits - r.logits, loss - r.loss)
    assert (logits - r.logits).abs().max() < TOL
    assert abs(float(loss) - float(r.loss)) < TOL


def test_token_classification_parity():
    ref = hf(transformers.BertForTokenClassification)
    state = map_bert(ref.bert)
    state["output_layer.weight"], state["output_layer.bias"] = ref.classifier.weight, ref.classifier.bias
    ours = load(Tagger(our_config(), V, 3), state)
    src, seg, mask, tt = batch()
    torch.manual_seed(2)
    # labels on the tokens between [CLS] and the last [SEP]; -100 elsewhere (HF's convention)
    n_tok = [int(x) - 2 for x in mask.sum(1)]
    word_pos = torch.zeros(2, max(n_tok), dtype=torch.long)
    word_mask = torch.zeros(2, max(n_tok), dtype=torch.bool)
    word_labels = torch.full((2, max(n_tok)), -100)
    hf_labels = torch.full(src.shape, -100)
    for i, n in enumerate(n_tok):
        lab = torch.randint(0, 3, (n,))
        word_pos[i, :n] = torch.arange(1, n + 1)
        word_mask[i, :n] = True
        word_labels[i, :n] = lab
        hf_labels[i, 1:n + 1] = lab
    with torch.no_grad():
        r = ref(input_ids=src, attention_mask=mask, token_type_ids=tt, labels=hf_labels)
        logits = ours(src, seg)
        loss = ours.loss(logits, word_pos, word_mask, word_labels)
    report("token classification logits", logits - r.logits, loss - r.loss)
    assert (logits - r.logits).abs().max() < TOL  # every position, padding included
    assert abs(float(loss) - float(r.loss)) < TOL


def test_question_answering_parity():
    ref = hf(transformers.BertForQuestionAnswering, num_labels=2)
    state = map_bert(ref.bert)
    state["output_layer.weight"], state["output_layer.bias"] = ref.qa_outputs.weight, ref.qa_outputs.bias
    ours = load(SpanExtractor(our_config(), V), state)
    src, seg, mask, tt = batch()
    start, end = torch.tensor([7, 3]), torch.tensor([8, 5])
    with torch.no_grad():
        r = ref(input_ids=src, attention_mask=mask, token_type_ids=tt, start_positions=start, end_positions=end)
        s, e = ours(src, seg)
        loss = ours.loss(s, e, start, end)
    report("question answering start/end logits", torch.cat([s - r.start_logits, e - r.end_logits]), loss - r.loss)
    assert (s - r.start_logits).abs().max() < TOL
    assert (e - r.end_logits).abs().max() < TOL
    assert abs(float(loss) - float(r.loss)) < TOL

