"""The model utilities (scripts/cloze_test.py, topn_words.py, average_models.py, build_vocab.py, diff_vocab.py,
extract_embeddings.py, dynamic_vocab_adapter.py) against direct computations with transformers and torch."""

import pytest
import torch
import transformers

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
