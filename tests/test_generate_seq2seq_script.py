"""scripts/generate_seq2seq.py on the encoder-decoder fixtures made by transformers (../shared/fixtures/seq2seq):
greedy and 4-beam search over reference.json's sources give transformers' ids (--ids) and their text (text
sources); bad input is one line."""
import json
import os

import pytest

from conftest import SHARED, need
from helpers import run_cli

SCRIPT = "scripts/generate_seq2seq.py"
FIX = os.path.join(SHARED, "fixtures", "seq2seq")
NAMES = ["bart", "pegasus", "t5", "t5_v1_1", "mt5"]


def _reference(name):
    d = need(os.path.join(FIX, name))
    return d, json.load(open(os.path.join(d, "reference.json")))


def _ids_file(path, rows):
    path.write_text("".join(" ".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", NAMES)
def test_ids_greedy_and_beam_give_transformers_ids(name, tmp_path, capsys):
    d, ref = _reference(name)
    src = _ids_file(tmp_path / "src.txt", ref["sources"])
    new = str(ref["max_new_tokens"])
    for mode, extra in (("greedy", ["--top_k", "1"]), ("beam", ["--num_beams", "4", "--length_penalty", "1.0"])):
        out = tmp_path / f"{mode}.txt"
        code, err = run_cli(SCRIPT, ["--load_model_path", d, "--test_path", src, "--prediction_path", out, "--ids",
                                     "--max_new_tokens", new, "--end_token", "[SEP]", *extra], capsys)
        assert code in (0, None), err
        got = [[int(t) for t in line.split()] for line in out.read_text().splitlines()]
        assert got == ref[mode]["outputs"], mode


@pytest.mark.parametrize("name", ["bart", "t5"])
def test_text_sources_give_the_decoded_greedy_text(name, tmp_path, capsys):
    """reference.json's sources (ids 670..8000, each ending with [SEP]) written as text through the vocabulary:
    the script encodes text + [SEP] (no [CLS]: --source_start_token '') back to the same ids, and writes the
    greedy ids as text without [SEP]."""
    from uer_like.generation import detokenize
    from uer_like.tokenizers.vocab import Vocab

    d, ref = _reference(name)
    vocab = Vocab.load(os.path.join(d, "vocab.txt"))
    texts = [" ".join(vocab.convert_ids_to_tokens(s[:-1])) for s in ref["sources"]]
    src = tmp_path / "src.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    code, err = run_cli(SCRIPT, ["--load_model_path", d, "--test_path", src, "--prediction_path", out, "--top_k", "1",
                                 "--max_new_tokens", str(ref["max_new_tokens"]), "--source_start_token", "",
                                 "--end_token", "[SEP]"], capsys)
    assert code in (0, None), err
    want = [detokenize(vocab.convert_ids_to_tokens([i for i in row if i != 102])) for row in ref["greedy"]["outputs"]]
    assert out.read_text(encoding="utf-8").splitlines() == want


def test_text_source_ids_are_cls_tokens_sep_and_long_ones_truncated(tmp_path, capsys, caplog):
    d, _ = _reference("bart")
    src = tmp_path / "src.txt"
    src.write_text("今天天气很好\n" + "北京" * 40 + "\n", encoding="utf-8")
    import uer_like

    model = uer_like.load_model(d)
    want = uer_like.generate(model, [[101, 791, 1921, 1921, 3698, 2523, 1962, 102], ([101] + [1266, 776] * 40)[:20]],
                             5, eos_token_id=102, decoder_start_token_id=101)
    out = tmp_path / "out.txt"
    code, err = run_cli(SCRIPT, ["--load_model_path", d, "--test_path", src, "--prediction_path", out, "--top_k", "1",
                                 "--seq_length", "20", "--max_new_tokens", "5"], capsys)
    assert code in (0, None), err
    assert "1 of 2 sources are longer than --seq_length 20 tokens and were truncated to it (the first: line 2)" \
        in caplog.text
    from uer_like.generation import detokenize
    from uer_like.tokenizers.vocab import Vocab

    vocab = Vocab.load(os.path.join(d, "vocab.txt"))
    assert out.read_text(encoding="utf-8").splitlines() == [
        detokenize(vocab.convert_ids_to_tokens([i for i in row if i != 102])) for row in want]


def _error(argv, capsys):
    code, err = run_cli(SCRIPT, argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_input_is_one_line(tmp_path, capsys):
    d, ref = _reference("bart")
    out = tmp_path / "out.txt"
    src = tmp_path / "src.txt"
    src.write_text("今天\n\n北京\n", encoding="utf-8")
    assert "line 2 is empty" in _error(["--load_model_path", d, "--test_path", src, "--prediction_path", out], capsys)
    src = _ids_file(tmp_path / "ids.txt", [[5, 6], list(range(700, 740))])
    line = _error(["--load_model_path", d, "--test_path", src, "--prediction_path", out, "--ids", "--seq_length", "30"],
                  capsys)
    assert "line 2 has 40 ids, more than --seq_length 30" in line and str(src) in line
    line = _error(["--load_model_path", d, "--test_path", src, "--prediction_path", out, "--seq_length", "100"], capsys)
    assert "--seq_length 100 exceeds the model's position table" in line
    line = _error(["--load_model_path", d, "--test_path", src, "--prediction_path", out, "--tgt_seq_length", "100"],
                  capsys)
    assert "--tgt_seq_length 100" in line
    assert not out.exists()


def test_a_model_without_a_decoder_points_to_generate_lm(tmp_path, capsys):
    import uer_like
    from conftest import ROOT

    c = json.load(open(os.path.join(ROOT, "configs", "gpt2", "mini_config.json")))
    c.update(layers_num=1, hidden_size=32, emb_size=32, feedforward_size=64, heads_num=2, max_seq_length=64)
    (tmp_path / "gpt2.json").write_text(json.dumps(c))
    uer_like.save_model(uer_like.build_model(str(tmp_path / "gpt2.json"), vocab_size=21128), str(tmp_path / "lm.bin"))
    src = tmp_path / "src.txt"
    src.write_text("今天\n", encoding="utf-8")
    line = _error(["--load_model_path", tmp_path / "lm.bin", "--config_path", tmp_path / "gpt2.json",
                   "--vocab_path", os.path.join(ROOT, "models", "google_zh_vocab.txt"), "--test_path", src,
                   "--prediction_path", tmp_path / "o.txt"], capsys)
    assert "has no decoder" in line and "scripts/generate_lm.py" in line


def test_generate_lm_points_an_encoder_decoder_model_to_this_script(tmp_path, capsys):
    d, _ = _reference("t5")
    src = tmp_path / "src.txt"
    src.write_text("今天\n", encoding="utf-8")
    code, err = run_cli("scripts/generate_lm.py", ["--load_model_path", d, "--test_path", src, "--prediction_path",
                                                   tmp_path / "o.txt", "--seq_length", "16"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "encoder-decoder model" in err and "scripts/generate_seq2seq.py" in err


def test_sampling_is_reproducible_by_seed_and_stays_within_tgt_seq_length(tmp_path, capsys):
    d, ref = _reference("bart")
    src = _ids_file(tmp_path / "src.txt", ref["sources"])
    outs = []
    for k, seed in enumerate(["3", "3", "4"]):
        out = tmp_path / f"o{k}.txt"
        code, err = run_cli(SCRIPT, ["--load_model_path", d, "--test_path", src, "--prediction_path", out, "--ids",
                                     "--tgt_seq_length", "9", "--seed", seed, "--top_k", "0"], capsys)
        assert code in (0, None), err
        outs.append([[int(t) for t in line.split()] for line in out.read_text().splitlines()])
    assert outs[0] == outs[1] and len(outs[0]) == 4
    assert all(0 < len(row) <= 8 for row in outs[0])
    assert outs[0] != outs[2]  # sampling over the whole vocabulary (21,128 tokens): another seed, other ids


def test_a_release_generation_config_gives_the_defaults(tmp_path, capsys, caplog):
    """A release whose generation_config.json asks for 4 beams and a max_length of max_new_tokens + 1 (the start
    token counted) generates transformers' beam-search ids without those flags; a flag overrides it; a setting
    generation does not apply is named in a warning (the rules it applies: tests/test_generation_rules.py)."""
    import shutil

    d, ref = _reference("bart")
    rel = tmp_path / "bart"
    shutil.copytree(d, rel)
    gen = json.load(open(rel / "generation_config.json"))
    gen.update(num_beams=4, max_length=ref["max_new_tokens"] + 1, encoder_no_repeat_ngram_size=3)
    (rel / "generation_config.json").write_text(json.dumps(gen), encoding="utf-8")
    src = _ids_file(tmp_path / "src.txt", ref["sources"])
    out = tmp_path / "out.txt"
    with caplog.at_level("WARNING"):
        code, err = run_cli(SCRIPT, ["--load_model_path", rel, "--test_path", src, "--prediction_path", out, "--ids"],
                            capsys)
    assert code in (0, None), err
    assert [[int(t) for t in line.split()] for line in out.read_text().splitlines()] == ref["beam"]["outputs"]
    assert "encoder_no_repeat_ngram_size 3, which uer_like.generate does not apply" in caplog.text + err
    code, err = run_cli(SCRIPT, ["--load_model_path", rel, "--test_path", src, "--prediction_path", out, "--ids",
                                 "--num_beams", "1", "--top_k", "1"], capsys)
    assert code in (0, None), err
    assert [[int(t) for t in line.split()] for line in out.read_text().splitlines()] == ref["greedy"]["outputs"]
