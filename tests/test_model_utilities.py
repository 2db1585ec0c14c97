"""The model utilities (scripts/cloze_test.py, topn_words.py, average_models.py, build_vocab.py, diff_vocab.py,
extract_embeddings.py, dynamic_vocab_adapter.py) against direct computations with transformers and torch."""

import json
import os

import pytest
import torch
import transformers

from conftest import ROOT
from helpers import run_cli

CHARS = list("北京是中国的首都上海南天气很好今日我们你他她它大小山水人口手")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + CHARS
SMALL = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=64, type_vocab_size=2)


def _write_vocab(path, tokens):
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """A tiny random BertForMaskedLM saved with its vocab.txt: (directory, the transformers model in eval mode)."""
    d = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    m = transformers.BertForMaskedLM(transformers.BertConfig(**SMALL)).eval()
    m.save_pretrained(d)
    _write_vocab(d / "vocab.txt", VOCAB)
    return d, m


def _ids(text):
    """[CLS] chars [SEP] with [MASK] kept whole (the tiny vocabulary's ids)."""
    ids, i = [VOCAB.index("[CLS]")], 0
    while i < len(text):
        if text.startswith("[MASK]", i):
            ids.append(VOCAB.index("[MASK]"))
            i += 6
        else:
            ids.append(VOCAB.index(text[i]))
            i += 1
    return ids + [VOCAB.index("[SEP]")]


# ---------------------------------------------------------------------------------------------------- cloze
def test_cloze_matches_transformers_top_k(hf, tmp_path, capsys):
    d, m = hf
    lines = ["北京是中[MASK]的首都", "[MASK]海天气很[MASK]", "我们"[:1] + "[MASK]"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, err = run_cli("scripts/cloze_test.py", ["--load_model_path", d, "--test_path", tmp_path / "in.txt",
                                                  "--prediction_path", tmp_path / "out.txt", "--topn", "5",
                                                  "--batch_size", "2"], capsys)
    assert code in (0, None), err
    blocks = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n\n")
    worst = 0.0
    for line, block in zip(lines, blocks):
        rows = block.strip().split("\n")
        assert rows[0] == line
        ids = torch.tensor([_ids(line)])
        with torch.no_grad():
            probs = m(input_ids=ids).logits[0].softmax(-1)
        pos = (ids[0] == VOCAB.index("[MASK]")).nonzero().flatten().tolist()
        assert len(rows) == 1 + len(pos)
        for n, (p, row) in enumerate(zip(pos, rows[1:]), 1):
            cells = row.split("\t")
            assert cells[0] == f"[MASK] {n}"
            got = [c.split(" ") for c in cells[1:]]
            top = probs[p].topk(5)
            assert [t for t, _ in got] == [VOCAB[i] for i in top.indices.tolist()]
            worst = max(worst, max(abs(float(g) - r) for (_, g), r in zip(got, top.values.tolist())))
    assert worst < 1e-5


def test_cloze_errors_are_one_line(hf, tmp_path, capsys):
    d, _ = hf
    (tmp_path / "in.txt").write_text("北京是[MASK]\n北京是中国\n", encoding="utf-8")
    base = ["--load_model_path", d, "--test_path", tmp_path / "in.txt", "--prediction_path", tmp_path / "o.txt"]
    code, err = run_cli("scripts/cloze_test.py", base, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "in.txt:2: no [MASK]" in err, err
    (tmp_path / "in.txt").write_text("北京是[MASK]\n", encoding="utf-8")
    code, err = run_cli("scripts/cloze_test.py", base + ["--topn", str(len(VOCAB) + 1)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--topn" in err, err
    assert not (tmp_path / "o.txt").exists()


# ---------------------------------------------------------------------------------------------- topn words
def _parse_topn(text):
    """-> [(target word, [(word, cosine), ...])] from topn_words.py's output."""
    out = []
    for block in text.strip().split("\n\n"):
        rows = block.split("\n")
        word = rows[0].removeprefix("Target word: ")
        rows = [r for r in rows[1:] if not r.startswith("Sentence: ")]
        out.append((word, [(r.split("\t")[0], float(r.split("\t")[1])) for r in rows]))
    return out


def _reference_top(sims, exclude, k):
    sims = sims.clone()
    sims[exclude] = -float("inf")
    top = sims.topk(k)
    return [VOCAB[i] for i in top.indices.tolist()], top.values.tolist()


def test_topn_words_indep_matches_transformers_embeddings(hf, tmp_path, capsys):
    d, m = hf
    words = ["北", "天", "山"]
    (tmp_path / "w.txt").write_text("\n".join(words) + "\n\n", encoding="utf-8")
    code, err = run_cli("scripts/topn_words.py", ["--load_model_path", d, "--test_path", tmp_path / "w.txt",
                                                  "--prediction_path", tmp_path / "o.txt", "--topn", "7"], capsys)
    assert code in (0, None), err
    got = _parse_topn((tmp_path / "o.txt").read_text(encoding="utf-8"))
    emb = m.bert.embeddings.word_embeddings.weight.detach()
    worst = 0.0
    for word, (w, top) in zip(words, got):
        assert w == word
        i = VOCAB.index(word)
        names, values = _reference_top(torch.nn.functional.cosine_similarity(emb[i:i + 1], emb), i, 7)
        assert [t for t, _ in top] == names
        worst = max(worst, max(abs(s - v) for (_, s), v in zip(top, values)))
    assert worst < 1e-5


def test_topn_words_dep_matches_transformers_encoder(hf, tmp_path, capsys):
    d, m = hf
    cases = [("京", "北京是中国的首都"), ("好", "今天天气很好")]
    (tmp_path / "s.txt").write_text("".join(f"{w}\t{s}\n" for w, s in cases), encoding="utf-8")
    code, err = run_cli("scripts/topn_words.py", ["--mode", "dep", "--load_model_path", d, "--test_path",
                                                  tmp_path / "s.txt", "--prediction_path", tmp_path / "o.txt",
                                                  "--topn", "6", "--batch_size", "7"], capsys)
    assert code in (0, None), err
    got = _parse_topn((tmp_path / "o.txt").read_text(encoding="utf-8"))
    worst = 0.0
    for (word, sentence), (w, top) in zip(cases, got):
        assert w == word
        ids = torch.tensor([_ids(sentence)])
        pos = ids[0].tolist().index(VOCAB.index(word))
        batch = ids.repeat(len(VOCAB), 1)
        batch[:, pos] = torch.arange(len(VOCAB))
        with torch.no_grad():
            ref = m.bert(input_ids=ids).last_hidden_state[0, pos]
            cands = m.bert(input_ids=batch).last_hidden_state[:, pos]
        names, values = _reference_top(torch.nn.functional.cosine_similarity(ref[None], cands), VOCAB.index(word), 6)
        assert [t for t, _ in top] == names
        worst = max(worst, max(abs(s - v) for (_, s), v in zip(top, values)))
    assert worst < 1e-5


@pytest.mark.parametrize("mode,line,needle", [("indep", "火\n", "w.txt:1: the word '火' is not in the vocabulary"),
                                              ("dep", "山\t北京是中国\n", "w.txt:1: the word '山' is not a token"),
                                              ("dep", "山\n", "w.txt:1: --mode dep takes"),
                                              ("indep", "山\n", "--topn")])
def test_topn_words_errors_are_one_line(hf, tmp_path, capsys, mode, line, needle):
    d, _ = hf
    (tmp_path / "w.txt").write_text(line, encoding="utf-8")
    topn = str(len(VOCAB)) if needle == "--topn" else "5"
    code, err = run_cli("scripts/topn_words.py", ["--mode", mode, "--load_model_path", d, "--test_path",
                                                  tmp_path / "w.txt", "--topn", topn], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


# --------------------------------------------------------------------------------------------- averaging
def _uer_model(tmp_path, name, seed, fmt="uer", **over):
    import uer_like

    c = json.load(open(os.path.join(ROOT, "configs", "roberta", "tiny_config.json")))
    c.update(dict(layers_num=2, hidden_size=32, emb_size=32, feedforward_size=64, heads_num=2, max_seq_length=64),
             **over)
    (tmp_path / f"{name}.json").write_text(json.dumps(c))
    torch.manual_seed(seed)
    m = uer_like.build_model(str(tmp_path / f"{name}.json"), vocab_size=len(VOCAB))
    suffix = ".bin" if fmt == "uer" else ".safetensors"
    path = uer_like.save_model(m, str(tmp_path / (name + suffix)), format=fmt)
    return m, path


def test_average_of_two_checkpoints_is_the_exact_mean(tmp_path, capsys):
    from uer_like import load_model

    a, pa = _uer_model(tmp_path, "a", 1)
    b, pb = _uer_model(tmp_path, "b", 2, fmt="safetensors")  # mixed formats, one architecture
    out = tmp_path / "avg.safetensors"
    code, err = run_cli("scripts/average_models.py", ["--model_list_path", pa, pb, "--config_path", tmp_path / "a.json",
                                                      "--output_model_path", out], capsys)
    assert code in (0, None), err
    avg = load_model(str(out))
    sa, sb = a.state_dict(), b.state_dict()
    got = avg.state_dict()
    assert set(got) == set(sa)
    for k, v in got.items():
        assert torch.equal(v, (sa[k] + sb[k]) / 2), k
    with torch.no_grad():  # and it runs
        src = torch.tensor([[2, 5, 6, 3]])
        assert torch.isfinite(avg.eval().encode(src, torch.ones_like(src))).all()


@pytest.mark.parametrize("over,needle", [({"layers_num": 1}, "has no tensor encoder.transformer.1."),
                                         ({"feedforward_size": 48}, "tensor encoder.transformer.0.feed_forward")])
def test_average_refuses_other_architectures_naming_the_tensor(tmp_path, capsys, over, needle):
    _, pa = _uer_model(tmp_path, "a", 1)
    _, pb = _uer_model(tmp_path, "b", 2, **over)
    code, err = run_cli("scripts/average_models.py", ["--model_list_path", pa, pb, "--output_model_path",
                                                      tmp_path / "avg.bin"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "different architectures" in err and needle in err, err
    assert not (tmp_path / "avg.bin").exists()


# ------------------------------------------------------------------------------------------- vocabularies
def _corpus(tmp_path):
    from conftest import SAMPLE_CORPUS

    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:6000]
    text += "\nHello WordPiece tokenizers, unbelievable résumé! 3.14159\n"
    p = tmp_path / "corpus.txt"
    p.write_text(text, encoding="utf-8")
    return p, text


def test_build_vocab_holds_every_character_with_specials_at_googles_ids(tmp_path, capsys):
    from conftest import VOCAB as GOOGLE

    corpus, text = _corpus(tmp_path)
    out = tmp_path / "vocab.txt"
    code, err = run_cli("scripts/build_vocab.py", ["--corpus_path", corpus, "--vocab_path", out], capsys)
    assert code in (0, None), err
    tokens = out.read_text(encoding="utf-8").split("\n")[:-1]
    google = open(GOOGLE, encoding="utf-8").read().split("\n")
    assert tokens[:104] == google[:104]  # [PAD] 0, [unused1..99], [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103
    assert len(tokens) == len(set(tokens))
    tok = transformers.BertTokenizer(str(out), do_lower_case=True)
    normalized = tok.backend_tokenizer.normalizer.normalize_str(text)  # transformers' lower case, accents
    missing = {c for c in normalized if not c.isspace()} - set(tokens)
    assert not missing and len(set(normalized)) > 300
    ids = tok(text.split("\n"), add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id == 100 and not any(100 in row for row in ids)  # WordPiece spells every word
    for w in ("hello", "wordpiece", "unbelievable", "resume"):
        assert w in tokens
    code, err = run_cli("scripts/build_vocab.py", ["--corpus_path", corpus, "--vocab_path", tmp_path / "v3.txt",
                                                   "--workers_num", "3"], capsys)
    assert code in (0, None), err
    assert (tmp_path / "v3.txt").read_bytes() == out.read_bytes()  # parts of the file counted apart, same vocabulary


def test_build_vocab_min_count_and_no_unused(tmp_path, capsys):
    from collections import Counter

    corpus = tmp_path / "c.txt"
    corpus.write_text("天天 向上\n天 气\n好 好 好\n", encoding="utf-8")
    out = tmp_path / "v.txt"
    code, err = run_cli("scripts/build_vocab.py", ["--corpus_path", corpus, "--vocab_path", out, "--tokenizer",
                                                   "char", "--min_count", "2", "--unused_tokens", "0"], capsys)
    assert code in (0, None), err
    counts = Counter(c for c in corpus.read_text(encoding="utf-8") if not c.isspace())
    assert out.read_text(encoding="utf-8").split("\n")[:-1] == (
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted([c for c, n in counts.items() if n >= 2],
                                                                 key=lambda c: (-counts[c], c)))


def test_diff_vocab_counts(tmp_path, capsys):
    a = _write_vocab(tmp_path / "a.txt", ["[PAD]", "x", "y", "z", "y"])
    b = _write_vocab(tmp_path / "b.txt", ["[PAD]", "z", "w"])
    import runpy
    import sys

    argv, sys.argv = sys.argv, ["diff_vocab.py", "--vocab_1", str(a), "--vocab_2", str(b), "--output_path",
                                str(tmp_path / "d.tsv")]
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(os.path.join(ROOT, "scripts", "diff_vocab.py"), run_name="__main__")
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "vocab_1 - vocab_2 = 2: x y" in out and "vocab_2 - vocab_1 = 1: w" in out and "vocab_1 & vocab_2 = 2" in out
    assert "size: 4" in out
    assert (tmp_path / "d.tsv").read_text() == "vocab_1\tx\nvocab_1\ty\nvocab_2\tw\n"


# ---------------------------------------------------------------------------------- embeddings, adaptation
def test_extract_embeddings_writes_the_matrix_load_model_holds(hf, tmp_path, capsys):
    import numpy as np

    from uer_like import load_model

    d, m = hf
    held = load_model(str(d)).embedding.word.embedding.weight.detach()
    assert torch.equal(held, m.bert.embeddings.word_embeddings.weight.detach())
    code, err = run_cli("scripts/extract_embeddings.py", ["--load_model_path", d, "--word_embedding_path",
                                                          tmp_path / "e.npy"], capsys)
    assert code in (0, None), err
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "e.npy")), held)
    assert (tmp_path / "e.vocab.txt").read_text(encoding="utf-8").split("\n")[:-1] == VOCAB
    code, err = run_cli("scripts/extract_embeddings.py", ["--load_model_path", d, "--word_embedding_path",
                                                          tmp_path / "e.txt"], capsys)
    assert code in (0, None), err
    lines = (tmp_path / "e.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert lines[0] == f"{len(VOCAB)} 32"
    assert [line.split(" ")[0] for line in lines[1:]] == VOCAB
    text = torch.tensor(np.array([[np.float32(v) for v in line.split(" ")[1:]] for line in lines[1:]]))
    assert torch.equal(text, held)  # 9 significant digits read float32 back exactly


@pytest.mark.parametrize("tied", [True, False])
def test_dynamic_vocab_adapter_keeps_shared_rows_bit_identical(hf, tmp_path, capsys, tied):
    from uer_like import load_model

    d, _ = hf
    if not tied:  # an MLM output layer of its own
        d = tmp_path / "untied"
        torch.manual_seed(1)
        transformers.BertForMaskedLM(transformers.BertConfig(tie_word_embeddings=False, **SMALL)).save_pretrained(d)
        _write_vocab(d / "vocab.txt", VOCAB)
    new = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "新", "词"] + CHARS[::-1][:20]  # reordered, 2 new, some dropped
    _write_vocab(tmp_path / "new.txt", new)
    out = tmp_path / "adapted.bin"
    code, err = run_cli("scripts/dynamic_vocab_adapter.py", ["--old_model_path", d, "--new_vocab_path",
                                                             tmp_path / "new.txt", "--new_model_path", out], capsys)
    assert code in (0, None), err
    old = load_model(str(d)).eval()
    adapted = load_model(str(out), vocab=str(tmp_path / "new.txt")).eval()
    assert old.config.tie_weights == adapted.config.tie_weights == tied
    if not tied:
        assert not torch.equal(old.target.mlm.linear_2.weight, old.embedding.word.embedding.weight)
    assert adapted.embedding.word.embedding.weight.shape[0] == len(new)
    so, sa = old.state_dict(), adapted.state_dict()
    shared = [(VOCAB.index(t), i) for i, t in enumerate(new) if t in VOCAB]
    oi = torch.tensor([o for o, _ in shared])
    ni = torch.tensor([n for _, n in shared])
    vocab_keys = ["embedding.word.embedding.weight", "target.mlm.linear_2.weight", "target.mlm.linear_2.bias"]
    for k in vocab_keys:
        assert torch.equal(sa[k][ni], so[k][oi]), k
    assert (sa["target.mlm.linear_2.bias"][[new.index("新"), new.index("词")]] == 0).all()
    for k, v in so.items():  # everything else untouched
        if k not in vocab_keys:
            assert torch.equal(sa[k], v), k
    # the adapted model runs, and predicts the shared tokens as the old one did
    text = "".join(CHARS[-6:-1])  # kept tokens, at other ids
    src_old = torch.tensor([[VOCAB.index("[CLS]")] + [VOCAB.index(c) for c in text] + [VOCAB.index("[SEP]")]])
    src_new = torch.tensor([[new.index("[CLS]")] + [new.index(c) for c in text] + [new.index("[SEP]")]])
    with torch.no_grad():
        lo = old.target_logits(old.encode(src_old, torch.ones_like(src_old)))["mlm"]
        ln = adapted.target_logits(adapted.encode(src_new, torch.ones_like(src_new)))["mlm"]
    assert ln.shape[-1] == len(new) and torch.isfinite(ln).all()
    assert (ln[..., ni] - lo[..., oi]).abs().max() < 1e-5  # (a matmul over other rows: not bit-exact)


@pytest.mark.parametrize("script,argv,needle", [
    ("scripts/extract_embeddings.py", ["--load_model_path", "{hf}", "--vocab_path", "{small}",
                                       "--word_embedding_path", "{tmp}/e.txt"], "has 6 tokens but the word embedding"),
    ("scripts/dynamic_vocab_adapter.py", ["--old_model_path", "{hf}", "--old_vocab_path", "{small}", "--new_vocab_path",
                                          "{small}", "--new_model_path", "{tmp}/a.bin"], "has 6 tokens but the model's word"),
    ("scripts/build_vocab.py", ["--corpus_path", "{gbk}", "--vocab_path", "{tmp}/v.txt"], "gbk.txt:2: not valid UTF-8"),
    ("scripts/build_vocab.py", ["--corpus_path", "{small}", "--vocab_path", "{tmp}/v.txt", "--min_count", "9"],
     "no token occurs 9 times or more"),
    ("scripts/average_models.py", ["--model_list_path", "{hf}", "--output_model_path", "{tmp}/a.bin"],
     "average two or more"),
])
def test_utilities_refuse_bad_input_in_one_line(hf, tmp_path, capsys, script, argv, needle):
    _write_vocab(tmp_path / "small.txt", VOCAB[:6])
    (tmp_path / "gbk.txt").write_bytes("北京\n".encode() + "北京".encode("gbk") + b"\n")
    subst = {"{hf}": str(hf[0]), "{small}": str(tmp_path / "small.txt"), "{gbk}": str(tmp_path / "gbk.txt"),
             "{tmp}": str(tmp_path)}
    for k, v in subst.items():
        argv = [a.replace(k, v) for a in argv]
    code, err = run_cli(script, argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not [p for p in os.listdir(tmp_path) if p not in ("small.txt", "gbk.txt")]  # nothing written


def test_word2vec_text_refuses_a_token_with_whitespace(tmp_path):
    from uer_like.errors import DataError
    from uer_like.inspection import save_word_embeddings

    with pytest.raises(DataError, match="whitespace.*write .npy"):
        save_word_embeddings(torch.zeros(2, 3), ["a", "b c"], str(tmp_path / "e.txt"))
    assert save_word_embeddings(torch.zeros(2, 3), ["a", "b c"], str(tmp_path / "e.npy"))[1].endswith("e.vocab.txt")
