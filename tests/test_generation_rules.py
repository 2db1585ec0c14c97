"""The logits rules of uer_like.generate (uer_like/logits_processors.py) against transformers' generate with the
same setting: no_repeat_ngram_size, repetition_penalty, bad_words_ids, min_length / min_new_tokens,
forced_bos_token_id, forced_eos_token_id; greedy and 4-beam search; on the encoder-decoder fixtures made by
transformers (../shared/fixtures/seq2seq: bart, t5) and a GPT-2 made at random by transformers. Every setting
is one that changes transformers' output (asserted), so a broken rule fails. Bad settings are one line; the
scripts take a release's settings as transformers does."""
import json
import os
import shutil

import pytest
import torch

import uer_like
from uer_like.errors import ConfigError
from conftest import GPT2_VOCAB, SHARED, need
from helpers import run_cli

transformers = pytest.importorskip("transformers")

FIX = os.path.join(SHARED, "fixtures", "seq2seq")
NEW = 12
START, EOS = 101, 102


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models throughout: one thread (much faster on a busy machine)."""


def _cut(rows, eos):
    return [r[:r.index(eos) + 1] if eos is not None and eos in r else r for r in rows]


def _shortest_stop(rows):
    """The fewest new tokens of a row that stopped at eos (its last): a minimum length of that many changes it."""
    stops = [len(r) for r in rows if len(r) < NEW]
    assert stops, "no row stops early: the min_length settings would change nothing"
    return min(stops)


# ------------------------------------------------------------------------------------------- encoder-decoder
@pytest.fixture(scope="module", params=["bart", "t5"])
def seq2seq(request):
    d = need(os.path.join(FIX, request.param))
    with open(os.path.join(d, "reference.json")) as f:
        sources = json.load(f)["sources"]
    transformers.logging.set_verbosity_error()
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(d).eval()
    return request.param, hf, uer_like.load_model(d), sources


def _hf_seq2seq(hf, sources, **kw):
    """transformers' ids for the sources (right-padded, masked), without the start token, cut after eos."""
    s = max(len(p) for p in sources)
    ids = torch.tensor([p + [0] * (s - len(p)) for p in sources])
    mask = torch.tensor([[1] * len(p) + [0] * (s - len(p)) for p in sources])
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=mask, decoder_start_token_id=START, eos_token_id=EOS, pad_token_id=0,
                          do_sample=False, max_new_tokens=NEW, **kw)
    return _cut(out[:, 1:].tolist(), EOS)


def _seq2seq_rules(base):
    """Settings that change these random models' output (their rows repeat tokens and bigrams, and stop at eos
    early), some read from the output without the rule (base: greedy or beam ids)."""
    first, second = base[0][0], base[1][:2]
    shortest = _shortest_stop(base)
    return [dict(no_repeat_ngram_size=2), dict(no_repeat_ngram_size=1), dict(repetition_penalty=1.6),
            dict(bad_words_ids=[[first], second]), dict(min_length=shortest + 1), dict(min_new_tokens=shortest),
            dict(forced_bos_token_id=first + 1), dict(forced_eos_token_id=EOS)]


@pytest.mark.parametrize("beams", [1, 4])
def test_seq2seq_rules_give_transformers_ids(seq2seq, beams):
    name, hf, m, sources = seq2seq
    base = _hf_seq2seq(hf, sources, num_beams=beams)
    assert uer_like.generate(m, sources, NEW, num_beams=beams, eos_token_id=EOS, decoder_start_token_id=START) == base
    for rule in _seq2seq_rules(base):
        want = _hf_seq2seq(hf, sources, num_beams=beams, **rule)
        assert want != base, (name, beams, rule)  # the rule changes the output: the comparison means something
        got = uer_like.generate(m, sources, NEW, num_beams=beams, eos_token_id=EOS, decoder_start_token_id=START,
                                **rule)
        assert got == want, (name, beams, rule)


# ------------------------------------------------------------------------------------------- decoder-only
V = GPT2_VOCAB
PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 40], [14], [15, 16, 17, 18]]


@pytest.fixture(scope="module")
def gpt2(random_gpt2):
    return random_gpt2


def _hf_lm(hf, prompts, eos, max_new_tokens=NEW, **kw):
    """transformers' continuations, one prompt at a time (no padding: each prompt alone, which is what ours
    gives every prompt of a left-padded batch)."""
    rows = []
    for p in prompts:
        with torch.no_grad():
            out = hf.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                              pad_token_id=0, eos_token_id=eos, do_sample=False, max_new_tokens=max_new_tokens, **kw)
        rows.append(out[0, len(p):].tolist())
    return _cut(rows, eos)


@pytest.mark.parametrize("beams", [1, 4])
def test_decoder_only_rules_give_transformers_ids(gpt2, beams):
    hf, m = gpt2
    eos = _hf_lm(hf, PROMPTS, None)[0][4]  # a token greedy decoding produces a few steps in: it stops rows early
    base = _hf_lm(hf, PROMPTS, eos, num_beams=beams)
    assert uer_like.generate(m, PROMPTS, NEW, num_beams=beams, eos_token_id=eos) == base
    stop = min(range(len(base)), key=lambda i: len(base[i]))  # a row that stops early, at eos
    assert len(base[stop]) < NEW
    rules = [dict(no_repeat_ngram_size=2), dict(no_repeat_ngram_size=3), dict(repetition_penalty=1.5),
             dict(bad_words_ids=[[base[1][0]], base[2][:2]]), dict(min_new_tokens=len(base[stop])),
             dict(min_length=len(PROMPTS[stop]) + len(base[stop])),
             dict(forced_eos_token_id=eos)]
    for rule in rules:
        want = _hf_lm(hf, PROMPTS, eos, num_beams=beams, **rule)
        assert want != base, (beams, rule)
        assert uer_like.generate(m, PROMPTS, NEW, num_beams=beams, eos_token_id=eos, **rule) == want, (beams, rule)
    # forced_bos_token_id: transformers forces the first new token where the sequence is one token long
    one = [[14], [3], [200]]
    want = _hf_lm(hf, one, eos, num_beams=beams, forced_bos_token_id=7)
    assert want != _hf_lm(hf, one, eos, num_beams=beams) and all(r[0] == 7 for r in want)
    assert uer_like.generate(m, one, NEW, num_beams=beams, eos_token_id=eos, forced_bos_token_id=7) == want
    mixed = uer_like.generate(m, PROMPTS, NEW, num_beams=beams, eos_token_id=eos, forced_bos_token_id=7)
    assert mixed == [want[0] if p == [14] else b for p, b in zip(PROMPTS, base)]  # each prompt as alone


def test_rules_combine_in_transformers_order_and_sampling_keeps_them(gpt2):
    hf, m = gpt2
    eos = _hf_lm(hf, PROMPTS, None)[0][4]
    kw = dict(no_repeat_ngram_size=2, repetition_penalty=1.3, min_new_tokens=5, forced_eos_token_id=eos)
    assert uer_like.generate(m, PROMPTS, NEW, eos_token_id=eos, **kw) == _hf_lm(hf, PROMPTS, eos, **kw)
    # sampling: no sampled row repeats a bigram, whatever the seed
    for seed in range(3):
        for row, p in zip(uer_like.generate(m, PROMPTS, NEW, do_sample=True, seed=seed, no_repeat_ngram_size=2), PROMPTS):
            seq = p + row
            grams = list(zip(seq, seq[1:]))
            assert len(grams) == len(set(grams)), (seed, seq)


def test_rules_that_are_off_build_nothing(gpt2, monkeypatch):
    """The decoding loop of a call with every rule off (generate's defaults) builds no rule and no per-row
    state: a rule that is off costs nothing per step."""
    from uer_like import logits_processors

    def refuse(*a, **k):
        raise AssertionError("a rule was built although every rule is off")

    monkeypatch.setattr(logits_processors, "State", refuse)
    m = gpt2[1]
    assert len(uer_like.generate(m, PROMPTS, 4)[0]) == 4
    assert len(uer_like.generate(m, PROMPTS, 4, num_beams=2, no_repeat_ngram_size=0, repetition_penalty=1.0)[0]) == 4


def test_bad_settings_are_one_line_errors(gpt2):
    m = gpt2[1]
    cases = [
        (dict(no_repeat_ngram_size=-1), r"^no_repeat_ngram_size must be >= 0 and <= \d+, got -1$"),
        (dict(no_repeat_ngram_size=2.5), r"^no_repeat_ngram_size must be an integer, got 2.5$"),
        (dict(min_length=-3), r"^min_length must be >= 0"),
        (dict(forced_bos_token_id=V), rf"^forced_bos_token_id must be a token id in \[0, {V}\) \(the model's "),
        (dict(forced_eos_token_id=-1), r"^forced_eos_token_id must be a token id"),
        (dict(bad_words_ids=[[5], [7, V]]), rf"^bad_words_ids entry 1 must be >= 0 and <= {V - 1}, got {V}$"),
        (dict(bad_words_ids=[[5], []]), r"^bad_words_ids entry 1 must be a non-empty list of token ids"),
        (dict(bad_words_ids=[5, 6]), r"^bad_words_ids entry 0 must be a non-empty list of token ids"),
        (dict(bad_words_ids=[]), r"^bad_words_ids must be a list of token-id lists"),
        (dict(num_beams=2, do_sample=True, forced_eos_token_id=3), r"^forced_bos_token_id / forced_eos_token_id "
                                                                    r"with beam sampling"),
    ]
    for kw, match in cases:
        with pytest.raises(ConfigError, match=match) as e:
            uer_like.generate(m, PROMPTS, 4, **kw)
        assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------- the scripts
def _release(tmp_path, name, where, **settings):
    """A copy of fixture `name` whose generation settings (in generation_config.json, or in config.json with no
    generation_config.json, as fnlp/bart-base-chinese ships) are `settings`."""
    d = tmp_path / name
    shutil.copytree(need(os.path.join(FIX, name)), d)
    if where == "config.json":
        os.remove(d / "generation_config.json")
    with open(d / where) as f:
        c = json.load(f)
    c.update(settings)
    with open(d / where, "w") as f:
        json.dump(c, f)
    return d


@pytest.mark.parametrize("where", ["generation_config.json", "config.json"])
def test_seq2seq_script_applies_the_release_settings_as_transformers(tmp_path, capsys, where):
    """A directory whose generation settings ask for 4 beams and no repeated bigram (fnlp/bart-base-chinese
    ships num_beams 4 and no_repeat_ngram_size 3 in config.json): the script without flags gives the ids
    transformers' generate gives for that directory with its own generation config; a flag overrides it."""
    d = _release(tmp_path, "bart", where, num_beams=4, no_repeat_ngram_size=2, max_length=NEW + 1)
    with open(d / "reference.json") as f:
        sources = json.load(f)["sources"]
    transformers.logging.set_verbosity_error()
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(d).eval()
    assert (hf.generation_config.num_beams, hf.generation_config.no_repeat_ngram_size) == (4, 2)
    s = max(len(p) for p in sources)
    with torch.no_grad():  # the directory's own generation config: no settings given
        out = hf.generate(torch.tensor([p + [0] * (s - len(p)) for p in sources]),
                          attention_mask=torch.tensor([[1] * len(p) + [0] * (s - len(p)) for p in sources]))
    want = _cut(out[:, 1:].tolist(), EOS)
    assert want != _hf_seq2seq(hf, sources, num_beams=4, no_repeat_ngram_size=0)
    src = tmp_path / "src.txt"
    src.write_text("".join(" ".join(map(str, p)) + "\n" for p in sources))
    pred = tmp_path / "pred.txt"
    code, err = run_cli("scripts/generate_seq2seq.py", ["--load_model_path", d, "--test_path", src,
                                                        "--prediction_path", pred, "--ids"], capsys)
    assert code in (0, None), err
    assert [[int(t) for t in line.split()] for line in pred.read_text().splitlines()] == want
    code, err = run_cli("scripts/generate_seq2seq.py", ["--load_model_path", d, "--test_path", src,
                                                        "--prediction_path", pred, "--ids", "--no_repeat_ngram_size",
                                                        "0"], capsys)
    assert code in (0, None), err
    assert [[int(t) for t in line.split()] for line in pred.read_text().splitlines()] == \
        _hf_seq2seq(hf, sources, num_beams=4, no_repeat_ngram_size=0)


def test_script_flags_are_checked_in_one_line(tmp_path, capsys):
    d = need(os.path.join(FIX, "bart"))
    src = tmp_path / "src.txt"
    src.write_text("700 800 102\n")
    for flag, value, match in (("--no_repeat_ngram_size", "-1", "must be >= 0 and <= 16777216, got -1"),
                               ("--forced_bos_token_id", "-2", "or -1, got -2"),
                               ("--bad_words_ids", "[[5], 6]", "entry 1 must be a non-empty list of token ids"),
                               ("--bad_words_ids", "5,6", "must be JSON"),
                               ("--forced_eos_token_id", "30000", "--forced_eos_token_id must be a token id in "
                                                                  "[0, 21128)")):
        code, err = run_cli("scripts/generate_seq2seq.py", ["--load_model_path", d, "--test_path", src,
                                                            "--prediction_path", tmp_path / "o.txt", "--ids", flag,
                                                            value], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and match in lines[0] and flag in lines[0], err


def test_lm_script_applies_the_release_settings_as_transformers(tmp_path, capsys, gpt2):
    """A GPT-2 directory (with a vocab.txt, as uer/gpt2-chinese-*) whose generation_config.json bans repeated
    tokens (no_repeat_ngram_size 1): scripts/generate_lm.py with no rule flags writes the tokens transformers' generate gives for that
    directory with its own generation config; --no_repeat_ngram_size 0 gives the plain greedy ones."""
    from conftest import VOCAB

    d = tmp_path / "hf"
    gpt2[0].save_pretrained(d)
    with open(d / "generation_config.json") as f:
        gen = json.load(f)
    gen.update(no_repeat_ngram_size=1)
    with open(d / "generation_config.json", "w") as f:
        json.dump(gen, f)
    with open(VOCAB, encoding="utf-8") as f:
        tokens = [next(f).rstrip("\n") for _ in range(V)]
    (d / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    hf = transformers.AutoModelForCausalLM.from_pretrained(d).eval()
    assert hf.generation_config.no_repeat_ngram_size == 1
    with torch.no_grad():  # the empty line is [CLS] (id 101) alone; 13 new tokens fill --seq_length 14
        want = hf.generate(torch.tensor([[101]]), max_new_tokens=13, do_sample=False, eos_token_id=None)[0, 1:]
    plain = _hf_lm(hf, [[101]], None, max_new_tokens=13, no_repeat_ngram_size=0)[0]
    src = tmp_path / "prompts.txt"
    src.write_text("\n", encoding="utf-8")
    for extra, ids in (([], want.tolist()), (["--no_repeat_ngram_size", "0"], plain)):
        out = tmp_path / "out.txt"
        code, err = run_cli("scripts/generate_lm.py", ["--load_model_path", d, "--test_path", src, "--prediction_path",
                                                      out, "--seq_length", "14", "--top_k", "1", "--end_token", "",
                                                      *extra], capsys)
        assert code in (0, None), err
        assert out.read_text(encoding="utf-8").splitlines() == ["".join(tokens[i] for i in ids)], extra
    assert want.tolist() != plain
