"""Text generation (uer_like.generate / score, scripts/generate_lm.py).

References: transformers' GPT2LMHeadModel.generate and its logits processors on a GPT-2 made at random by
transformers (saved, loaded with load_model); the uncached full forward for the caches; UER-py's gpt2_tiny
fixture through the script."""
import os
import re

import pytest
import torch

import uer_like
from uer_like.errors import ConfigError, DataError
from uer_like.generation import apply_repetition_penalty, top_k_filter, top_p_filter
from conftest import GPT2_VOCAB

transformers = pytest.importorskip("transformers")

V = GPT2_VOCAB
N_NEW = 16
# prompts of different lengths (left padding inside generate); the one-token prompt has no context at all
PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 40], [14], [15, 16, 17, 18]]


@pytest.fixture(scope="module")
def gpt2(random_gpt2):
    """(transformers model, our model loaded from its saved directory): conftest's random GPT-2."""
    return random_gpt2


def _hf_generate(hf, prompts, eos=None, **kw):
    """transformers' continuations, cut after the first eos (what follows is its padding)."""
    s = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (s - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (s - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=mask, pad_token_id=0, eos_token_id=eos, do_sample=False, **kw)
    rows = out[:, s:].tolist()
    return [r[:r.index(eos) + 1] if eos is not None and eos in r else r for r in rows]


def _eos_from(rows):
    """A token transformers' own greedy output produces a few steps in (so an eos there stops a row early)."""
    return rows[0][4]


# ------------------------------------------------------------------------------------------- parity
def test_greedy_matches_transformers_for_prompts_of_different_lengths(gpt2):
    hf, m = gpt2
    ref = _hf_generate(hf, PROMPTS, max_new_tokens=N_NEW)
    assert uer_like.generate(m, PROMPTS, N_NEW) == ref
    eos = _eos_from(ref)
    ref_eos = _hf_generate(hf, PROMPTS, eos=eos, max_new_tokens=N_NEW)
    assert any(len(r) < N_NEW for r in ref_eos)  # the end token stops some rows
    assert uer_like.generate(m, PROMPTS, N_NEW, eos_token_id=eos) == ref_eos
    # min_new_tokens and the repetition penalty, as transformers' processors apply them
    kw = dict(eos_token_id=eos, min_new_tokens=6, repetition_penalty=1.4)
    ref = _hf_generate(hf, PROMPTS, eos=eos, max_new_tokens=N_NEW, min_new_tokens=6, repetition_penalty=1.4)
    assert uer_like.generate(m, PROMPTS, N_NEW, **kw) == ref
    # each prompt alone gives what it gives in the batch
    for p, row in zip(PROMPTS, uer_like.generate(m, PROMPTS, N_NEW)):
        assert uer_like.generate(m, [p], N_NEW)[0] == row


@pytest.mark.parametrize("length_penalty", [1.0, 0.6, 2.0])
def test_beam_search_matches_transformers(gpt2, length_penalty):
    hf, m = gpt2
    eos = _eos_from(_hf_generate(hf, PROMPTS, max_new_tokens=N_NEW))
    for e in (None, eos):
        ref = _hf_generate(hf, PROMPTS, eos=e, max_new_tokens=N_NEW, num_beams=4, length_penalty=length_penalty)
        ours = uer_like.generate(m, PROMPTS, N_NEW, num_beams=4, length_penalty=length_penalty, eos_token_id=e)
        assert ours == ref, (e, ours, ref)


def test_beam_search_with_repetition_penalty_matches_transformers(gpt2):
    hf, m = gpt2
    eos = _eos_from(_hf_generate(hf, PROMPTS, max_new_tokens=N_NEW))
    ref = _hf_generate(hf, PROMPTS, eos=eos, max_new_tokens=N_NEW, num_beams=3, repetition_penalty=1.5,
                       min_new_tokens=4)
    ours = uer_like.generate(m, PROMPTS, N_NEW, num_beams=3, repetition_penalty=1.5, min_new_tokens=4,
                             eos_token_id=eos)
    assert ours == ref


def test_score_matches_transformers_log_probs(gpt2):
    hf, m = gpt2
    seqs = PROMPTS + [list(range(3, 45))]
    got = uer_like.score(m, seqs)
    for s, lp in zip(seqs, got):
        with torch.no_grad():
            logits = hf(torch.tensor([s])).logits[0, :-1]
        want = torch.log_softmax(logits, -1).gather(1, torch.tensor(s[1:])[:, None])[:, 0]
        assert len(lp) == len(s) - 1
        assert len(s) == 1 or (torch.tensor(lp) - want).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------- the caches
def _lstm():
    torch.manual_seed(0)
    return uer_like.build_model("rnn/lstm_config.json", vocab_size=V, emb_size=32, hidden_size=48, dropout=0.0).eval()


@pytest.mark.parametrize("prompts", [PROMPTS, [[3, 4, 5, 6]] * 3], ids=["left_padded", "no_padding"])
@pytest.mark.parametrize("which", ["gpt2", "lstm"])
def test_cached_and_uncached_logits_agree_at_every_step(gpt2, which, prompts):
    m = gpt2[1] if which == "gpt2" else _lstm()
    ids_c, logits_c = uer_like.generate(m, prompts, 20, return_logits=True)
    ids_u, logits_u = uer_like.generate(m, prompts, 20, return_logits=True, use_cache=False)
    assert ids_c == ids_u
    assert logits_c.shape == (20, len(prompts), V)
    assert (logits_c - logits_u).abs().max() < 1e-5


SMALL = dict(layers_num=2, hidden_size=32, emb_size=32, heads_num=4, feedforward_size=64, dropout=0.0)
OTHER_LMS = {
    "post_ln_causal": ("bert/tiny_config.json", dict(SMALL, mask="causal", target=["lm"])),
    "albert_shared": ("albert/base_config.json", dict(SMALL, mask="causal", target=["lm"])),
    "nezha_gen": ("nezha/gen_base_config.json", SMALL),
    "rotary_causal": ("roformer/small_config.json", dict(SMALL, mask="causal", target=["lm"])),
    "gru": ("rnn/gru_config.json", dict(emb_size=32, hidden_size=32, dropout=0.0)),
}


@pytest.mark.parametrize("kind", sorted(OTHER_LMS))
def test_other_language_models_decode_through_their_cache_as_the_full_forward(kind):
    name, kw = OTHER_LMS[kind]
    torch.manual_seed(0)
    m = uer_like.build_model(name, vocab_size=V, **kw).eval()
    ids_c, logits_c = uer_like.generate(m, PROMPTS, 12, return_logits=True)
    ids_u, logits_u = uer_like.generate(m, PROMPTS, 12, return_logits=True, use_cache=False)
    assert ids_c == ids_u and (logits_c - logits_u).abs().max() < 1e-5
    assert uer_like.generate(m, PROMPTS, 8, num_beams=3) == uer_like.generate(m, PROMPTS, 8, num_beams=3,
                                                                              use_cache=False)


def test_single_token_steps_never_use_the_top_left_causal_flag(gpt2, monkeypatch):
    # scaled_dot_product_attention(is_causal=True) aligns its mask top-left: one query against T cached
    # keys would see only the first key. Every decoding step must go without the flag.
    import torch.nn.functional as F

    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        calls.append((q.size(2), k.size(2), is_causal))
        return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    for prompts in ([[3, 4, 5, 6]] * 2, PROMPTS):  # without padding (no mask at all) and left-padded
        calls.clear()
        uer_like.generate(gpt2[1], prompts, 5)
        steps = [c for c in calls if c[0] == 1]
        assert steps and all(keys > 1 and not causal for _, keys, causal in steps)


def test_beam_search_cached_equals_uncached_for_lstm():
    m = _lstm()
    for e in (None, 7):
        assert uer_like.generate(m, PROMPTS, 12, num_beams=3, eos_token_id=e) == \
            uer_like.generate(m, PROMPTS, 12, num_beams=3, eos_token_id=e, use_cache=False)


def test_lstm_language_model_generates_each_prompt_as_alone():
    m = _lstm()
    rows = uer_like.generate(m, PROMPTS, 10)
    assert [len(r) for r in rows] == [10] * len(PROMPTS)
    for p, row in zip(PROMPTS, rows):
        assert uer_like.generate(m, [p], 10)[0] == row
    assert all(len(r) == 9 for r in uer_like.score(m, [list(range(3, 13))] * 2))


# ------------------------------------------------------------------------------------------- sampling
def test_seeded_sampling_is_reproducible_and_top_k_1_is_greedy(gpt2):
    m = gpt2[1]
    kw = dict(do_sample=True, temperature=1.3, top_p=0.9, seed=7)
    a = uer_like.generate(m, PROMPTS, N_NEW, **kw)
    assert a == uer_like.generate(m, PROMPTS, N_NEW, **kw)
    assert a != uer_like.generate(m, PROMPTS, N_NEW, **dict(kw, seed=8))
    greedy = uer_like.generate(m, PROMPTS, N_NEW)
    assert uer_like.generate(m, PROMPTS, N_NEW, do_sample=True, top_k=1, seed=3) == greedy
    assert uer_like.generate(m, PROMPTS, N_NEW, do_sample=True, top_k=1, top_p=0.5, temperature=2.0) == greedy


def test_sampled_tokens_lie_in_the_top_k_of_their_step(gpt2):
    m = gpt2[1]
    ids, logits = uer_like.generate(m, PROMPTS, N_NEW, do_sample=True, top_k=3, seed=0, return_logits=True)
    top3 = logits.topk(3, -1).indices  # [steps, batch, 3]
    for b, row in enumerate(ids):
        for t, tok in enumerate(row):
            assert tok in top3[t, b].tolist()
    assert len({tok for row in ids for tok in row}) > 3  # it samples, not always the top token


def test_filters_match_transformers_logits_processors():
    from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TopKLogitsWarper,
                                                        TopPLogitsWarper)

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 80, generator=g) * 3
    logits[0, :5] = 2.0  # ties at the k-th value
    ids = torch.randint(0, 80, (6, 12), generator=g)
    for k in (1, 5, 40, 200):
        for keep in (1, 2):
            assert torch.equal(top_k_filter(logits, k, keep), TopKLogitsWarper(k, min_tokens_to_keep=keep)(ids, logits))
    for p in (0.05, 0.3, 0.9, 0.999, 1.0):
        for keep in (1, 2):
            assert torch.equal(top_p_filter(logits, p, keep), TopPLogitsWarper(p, min_tokens_to_keep=keep)(ids, logits))
    seen = torch.zeros(6, 80, dtype=torch.bool).scatter_(1, ids, True)
    for penalty in (0.7, 1.3):
        want = RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone())
        assert torch.equal(apply_repetition_penalty(logits, seen, penalty), want)


# ------------------------------------------------------------------------------------------- lengths, errors
def test_per_prompt_budgets_and_the_position_table(gpt2):
    m = gpt2[1]  # 48 positions
    rows = uer_like.generate(m, PROMPTS, [3, 0, 5, 1])
    assert [len(r) for r in rows] == [3, 0, 5, 1]
    assert rows[2] == uer_like.generate(m, PROMPTS, 5)[2]
    beams = uer_like.generate(m, PROMPTS, [3, 0, 5, 1], num_beams=2)
    assert [len(r) for r in beams] == [3, 0, 5, 1] and beams[2] == uer_like.generate(m, PROMPTS, 5, num_beams=2)[2]
    assert len(uer_like.generate(m, [[5] * 40], 8)[0]) == 8  # exactly fills the table
    with pytest.raises(DataError, match=r"prompt 0 has 40 tokens; with 9 new tokens .* 48"):
        uer_like.generate(m, [[5] * 40], 9)
    with pytest.raises(DataError, match="sequence 0 has 49 tokens"):
        uer_like.score(m, [[5] * 49])


def test_bad_inputs_are_one_line_errors(gpt2):
    m = gpt2[1]
    cases = [
        (lambda: uer_like.generate(m, [[5, 6], []], 4), DataError, "prompt 1 is empty"),
        (lambda: uer_like.generate(m, [[5, V]], 4), DataError, "outside the model's vocabulary"),
        (lambda: uer_like.generate(m, PROMPTS, 4, do_sample=True, top_p=0.0), ConfigError,
         r"top_p must be > 0 and <= 1, got 0"),
        (lambda: uer_like.generate(m, PROMPTS, 4, top_p=1.5), ConfigError, "top_p"),
        (lambda: uer_like.generate(m, PROMPTS, 4, do_sample=True, temperature=0), ConfigError, "temperature"),
        (lambda: uer_like.generate(m, PROMPTS, 4, num_beams=0), ConfigError, "num_beams"),
        (lambda: uer_like.generate(m, PROMPTS, [1, 2]), ConfigError, "4 prompts"),
    ]
    torch.manual_seed(0)
    bert = uer_like.build_model("bert/tiny_config.json", vocab_size=V)
    cases.append((lambda: uer_like.generate(bert, PROMPTS, 4), ConfigError, r"no 'lm' target \(its targets: mlm, sp\)"))
    bilstm = uer_like.build_model("rnn/bilstm_config.json", vocab_size=V, emb_size=16, hidden_size=16, target=["lm"])
    cases.append((lambda: uer_like.generate(bilstm, PROMPTS, 4), ConfigError, "bidirectional"))
    for call, kind, match in cases:
        with pytest.raises(kind, match=match) as e:
            call()
        assert "\n" not in str(e.value)


def test_options_are_checked_with_the_command_lines_ranges_and_the_model(gpt2):
    """Every option is checked (flags.check_value, the ranges generate_lm.py's flags declare) before any work:
    one ConfigError line naming it; ids against the model's vocabulary. Before: 5.5 new tokens was a
    TypeError, a NaN length_penalty stopped beam search after 2 tokens, beams were not bounded by the
    vocabulary, a float inside a prompt was truncated to an id."""
    import numpy as np

    m = gpt2[1]
    cases = [
        (dict(max_new_tokens=5.5), ConfigError, r"^max_new_tokens must be an integer, got 5.5$"),
        (dict(max_new_tokens=[3, 2.5, 1, 1]), ConfigError, r"^max_new_tokens must be an integer, got 2.5$"),
        (dict(max_new_tokens=-1), ConfigError, r"^max_new_tokens must be >= 0"),
        (dict(length_penalty=float("nan"), num_beams=2), ConfigError, r"^length_penalty must be finite, got nan$"),
        (dict(length_penalty=1e9, num_beams=2), ConfigError, r"^length_penalty must be >= -100 and <= 100"),
        (dict(num_beams=V + 1), ConfigError, rf"^num_beams must be <= {V} \(the model's vocabulary size\), got 301$"),
        (dict(num_beams=2.0), ConfigError, r"^num_beams must be an integer"),
        (dict(top_k=-1), ConfigError, r"^top_k must be >= 0"),
        (dict(top_k=2.5, do_sample=True), ConfigError, r"^top_k must be an integer"),
        (dict(top_p=float("nan"), do_sample=True), ConfigError, r"^top_p must be finite"),
        (dict(top_p=0.0, do_sample=True), ConfigError, r"^top_p must be > 0 and <= 1, got 0$"),
        (dict(temperature=float("inf"), do_sample=True), ConfigError, r"^temperature must be finite"),
        (dict(temperature=0, do_sample=True), ConfigError, r"^temperature must be > 0"),
        (dict(repetition_penalty=0.0), ConfigError, r"^repetition_penalty must be > 0"),
        (dict(repetition_penalty=float("nan")), ConfigError, r"^repetition_penalty must be finite"),
        (dict(min_new_tokens=-2, eos_token_id=2), ConfigError, r"^min_new_tokens must be >= 0"),
        (dict(eos_token_id=V), ConfigError, rf"^eos_token_id must be a token id in \[0, {V}\) \(the model's "),
        (dict(eos_token_id=-1), ConfigError, r"^eos_token_id must be a token id"),
        (dict(seed=-1, do_sample=True), ConfigError, r"^seed must be >= 0"),
        (dict(do_sample="yes"), ConfigError, r"^do_sample must be True or False, got 'yes'$"),
        (dict(prompts=[[5, 6.5]]), DataError, r"^prompt 0 holds 6.5, not a token id$"),
        (dict(prompts=[5, 6, 7]), DataError, r"^prompt 0 is not a list of token ids: 5 \(give a list of prompts, "
                                             r"e\.g\. \[\[5, 6, 7\]\] for one\)$"),
    ]
    for kw, kind, match in cases:
        kw = {"prompts": PROMPTS, "max_new_tokens": 4, **kw}
        with pytest.raises(kind, match=match) as e:
            uer_like.generate(m, kw.pop("prompts"), kw.pop("max_new_tokens"), **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"^batch_size must be >= 1 and <= \d+, got 0$"):
        uer_like.score(m, PROMPTS, batch_size=0)
    with pytest.raises(DataError, match=r"^sequence 1 holds token id 300, outside the model's vocabulary"):
        uer_like.score(m, [[5, 6], [7, V]])
    # integers of numpy and torch are integers
    want = uer_like.generate(m, [[5, 6, 7]], 3)
    assert uer_like.generate(m, [np.array([5, 6, 7])], np.int64(3)) == want
    assert uer_like.generate(m, torch.tensor([[5, 6, 7]]), torch.tensor(3)) == want


def test_non_finite_scores_are_one_line_errors(gpt2):
    """A model whose output is NaN/inf (a weight of inf, built in Python: loading refuses such checkpoints)
    is a one-line error naming the weight, not a torch.multinomial traceback, nor garbage tokens from an
    argmax over NaN (greedy, beams) or NaN log-probabilities (score); a temperature so small that the
    sampling probabilities overflow names the temperature."""
    import copy

    from uer_like.errors import CheckpointError

    m = copy.deepcopy(gpt2[1])
    with torch.no_grad():  # the output layer is tied to the word embedding: named as the embedding
        m.target.lm.output_layer.weight[7, 3] = float("inf")
    for kw in (dict(do_sample=True, seed=1), dict(), dict(num_beams=3), dict(num_beams=2, do_sample=True, seed=1)):
        with pytest.raises(CheckpointError, match=r"^the model's output is not finite \(NaN or inf\): its weight "
                                                  r"embedding\.word\.embedding\.weight holds inf") as e:
            uer_like.generate(m, PROMPTS, 4, **kw)
        assert "\n" not in str(e.value), kw
    with pytest.raises(CheckpointError, match="embedding.word.embedding.weight holds inf"):
        uer_like.score(m, PROMPTS)
    with pytest.raises(ConfigError, match=r"^sampling probabilities are not finite: temperature 1e-40 and "
                                          r"repetition_penalty 1 scale the scores past float32's range"):
        uer_like.generate(gpt2[1], PROMPTS, 4, do_sample=True, temperature=1e-40)


def test_generate_text_checks_its_options_and_names_the_prompt_line(gpt2):
    """generate_text checks every option before the first batch runs (prefix: the script's '--'), the start and
    end tokens against the vocabulary, and each prompt by its line; before, a start token missing from the
    vocabulary was silently left out, an id past the model's vocabulary was 'prompt 0' of some batch."""
    from conftest import VOCAB
    from uer_like.generation import generate_text
    from uer_like.tokenizers import BertTokenizer, Vocab

    m = gpt2[1]  # 300 ids, 48 positions
    tok = BertTokenizer(Vocab.load(VOCAB))  # 21128 tokens: 我 (2769) is past the model's vocabulary
    texts = ["", "", "我们"]
    cases = [
        (dict(start_token="<s>"), r"^start_token '<s>' is not in the tokenizer's vocabulary$"),
        (dict(end_token="</s>"), r"^end_token '</s>' is not in the tokenizer's vocabulary"),
        (dict(seq_length=49), r"^seq_length 49 exceeds the model's position table \(max_seq_length 48\)$"),
        (dict(batch_size=0), r"^batch_size must be >= 1 and <= \d+, got 0$"),
        (dict(num_beams=V + 1), rf"^num_beams must be <= {V}"),
        (dict(option_prefix="--", num_beams=V + 1), rf"^--num_beams must be <= {V}"),
        (dict(option_prefix="--", length_penalty=float("nan")), r"^--length_penalty must be finite, got nan$"),
        (dict(texts=["", "", "我们"], batch_size=2, start_token="[PAD]", end_token=None),
         r"^prompts.txt line 3 holds token id 2769, outside the model's vocabulary \[0, 300\)$"),
    ]
    for kw, match in cases:
        kw = {"texts": ["", ""], "seq_length": 8, "source": "prompts.txt", **kw}
        with pytest.raises((ConfigError, DataError), match=match) as e:
            generate_text(m, tok, kw.pop("texts"), **kw)
        assert "\n" not in str(e.value)
    assert len(generate_text(m, tok, texts[:2], seq_length=8, start_token="[PAD]", end_token=None)) == 2


# ------------------------------------------------------------------------------------------- scripts/generate_lm.py
def _script():
    import importlib.util
    import os

    from conftest import ROOT

    path = os.path.join(ROOT, "scripts", "generate_lm.py")
    spec = importlib.util.spec_from_file_location("generate_lm_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_script(tmp_path, capsys, lines, *args, out=None):
    """(exit status, output lines, stderr); `lines` are the prompts (str) or the prompt file's bytes."""
    test = tmp_path / "prompts.txt"
    test.write_bytes(lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode("utf-8"))
    out = out or tmp_path / "out.txt"
    try:
        rc = _script().main(["--test_path", str(test), "--prediction_path", str(out), *args])
    except SystemExit as e:  # the parser's refusals
        rc = e.code
    err = capsys.readouterr().err
    return rc, (out.read_text(encoding="utf-8").split("\n")[:-1] if rc == 0 else None), err


def _uer_py_greedy(model, vocab, text, seq_length):
    """UER-py's generate_lm.py loop with top_k 1: [CLS] + tokens, the whole sequence re-run for each new
    token, the argmax of the lm logits at the last position; here it also stops after [SEP]."""
    from uer_like.tokenizers import BertTokenizer

    tok = BertTokenizer(vocab)
    ids = tok.convert_tokens_to_ids(["[CLS]"] + tok.tokenize(text))
    new = []
    with torch.inference_mode():
        while len(ids) < seq_length:
            src = torch.tensor([ids])
            nxt = int(model.target_logits(model.encode(src, torch.ones_like(src)))["lm"][0, -1].argmax())
            ids.append(nxt)
            if nxt == vocab.id("[SEP]"):
                break
            new.append(nxt)
    return "".join(t[2:] if t.startswith("##") else t for t in vocab.convert_ids_to_tokens(new))


def test_gpt2_tiny_fixture_generates_through_the_script(tmp_path, capsys):
    import os

    from conftest import FIXTURES, VOCAB, need
    from uer_like.tokenizers import Vocab

    d = need(os.path.join(FIXTURES, "uer"))
    ckpt, cfg = os.path.join(d, "gpt2_tiny.bin"), os.path.join(d, "gpt2_tiny_config.json")
    lines = ["易先生早期的杰作", "", "学摄影成本大么？应该怎么样开始？",
             "误打误撞地到了他们家"]
    flags = ["--load_model_path", ckpt, "--config_path", cfg, "--seq_length", "30", "--batch_size", "3"]
    rc, out, err = _run_script(tmp_path, capsys, lines, *flags, "--top_k", "1")
    assert rc == 0, err
    model = uer_like.load_model(ckpt, config=cfg).eval()
    vocab = Vocab.load(VOCAB)
    # the empty line generates from [CLS] alone
    assert out == [line + _uer_py_greedy(model, vocab, line, 30) for line in lines]
    assert all(len(o) > len(line) for o, line in zip(out, lines))
    # sampling with a seed is reproducible; beam search runs
    sampled = [_run_script(tmp_path, capsys, lines, *flags, "--seed", "3", "--top_p", "0.9")[1] for _ in range(2)]
    assert sampled[0] == sampled[1] and sampled[0] != out
    rc, beams, err = _run_script(tmp_path, capsys, lines, *flags, "--num_beams", "3", "--max_new_tokens", "6")
    assert rc == 0 and [b[:len(line)] for b, line in zip(beams, lines)] == lines, err
    # UER-py's layout before July 2023 (embedding.word_embedding.weight, target.output_layer.weight) and
    # the same weights as safetensors
    d23 = need(os.path.join(FIXTURES, "uer_2023"))
    old_ckpt = os.path.join(d23, "gpt2_tiny_2023.bin")
    rc, out23, err = _run_script(tmp_path, capsys, lines, "--load_model_path", old_ckpt, "--seq_length", "20",
                                 "--top_k", "1")
    old_model = uer_like.load_model(old_ckpt).eval()
    assert rc == 0 and out23 == [line + _uer_py_greedy(old_model, vocab, line, 20) for line in lines], err
    uer_like.save_model(old_model, str(tmp_path / "m.safetensors"))
    rc, out_st, err = _run_script(tmp_path, capsys, lines, "--load_model_path", str(tmp_path / "m.safetensors"),
                                  "--seq_length", "20", "--top_k", "1")
    assert rc == 0 and out_st == out23, err


def test_lstm_and_hugging_face_gpt2_generate_through_the_script(tmp_path, capsys, gpt2):
    from conftest import VOCAB

    torch.manual_seed(0)
    lstm = uer_like.build_model("rnn/lstm_config.json", vocab_size=21128, emb_size=32, hidden_size=32)
    uer_like.save_model(lstm, str(tmp_path / "lstm.bin"))  # lstm_config.json beside it
    lines = ["今天天气很好", "我们"]
    rc, out, err = _run_script(tmp_path, capsys, lines, "--load_model_path", str(tmp_path / "lstm.bin"),
                               "--seq_length", "16", "--top_k", "1")
    assert rc == 0, err
    assert [o[:len(line)] for o, line in zip(out, lines)] == lines
    assert all(len(o) > len(line) for o, line in zip(out, lines))
    # a Hugging Face GPT-2 directory with its own vocab.txt (as uer/gpt2-chinese-*): [CLS] is id 101
    hf_dir = tmp_path / "hf"
    gpt2[0].save_pretrained(hf_dir)
    with open(VOCAB, encoding="utf-8") as f:
        tokens = [next(f).rstrip("\n") for _ in range(V)]
    (hf_dir / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    rc, out, err = _run_script(tmp_path, capsys, [""], "--load_model_path", str(hf_dir), "--seq_length", "12",
                               "--top_k", "1", "--end_token", "")
    assert rc == 0, err
    want = uer_like.generate(gpt2[1], [[101]], 11)[0]
    assert out == ["".join(tokens[i] for i in want)]


def test_script_bad_inputs_are_one_line_errors(tmp_path, capsys):
    import os

    from conftest import FIXTURES, need

    d = need(os.path.join(FIXTURES, "uer"))
    gpt2_tiny = ["--load_model_path", os.path.join(d, "gpt2_tiny.bin")]
    small_vocab = tmp_path / "vocab.txt"
    small_vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", encoding="utf-8")
    cases = [
        (gpt2_tiny + ["--top_p", "0"], r"argument --top_p: must be > 0 and <= 1, got 0"),
        (gpt2_tiny + ["--top_p", "1.5"], r"argument --top_p: must be > 0 and <= 1"),
        (gpt2_tiny + ["--num_beams", "4", "--length_penalty", "nan"], r"argument --length_penalty: must be finite"),
        (gpt2_tiny + ["--batch_size", "0"], r"argument --batch_size: must be >= 1"),
        (gpt2_tiny + ["--threads", "-1"], r"argument --threads: must be >= 0"),
        (gpt2_tiny + ["--start_token", "<s>"], r"^error: --start_token '<s>' is not in the tokenizer's vocabulary"),
        (gpt2_tiny + ["--seq_length", "6"], r"prompts.txt line 2 has 9 tokens, which leaves no room"),
        (gpt2_tiny + ["--seq_length", "200"], "exceeds the model's max_position_embeddings"),
        (gpt2_tiny + ["--vocab_path", str(small_vocab)],
         r"the tokenizer .*vocab.txt has 5 tokens but the word embedding of .*gpt2_tiny.bin has 21128 rows"),
        (["--load_model_path", os.path.join(d, "bert_tiny.bin")], r"no 'lm' target \(its targets: mlm, sp\)"),
    ]
    for flags, message in cases:
        rc, _, err = _run_script(tmp_path, capsys, ["我们", "易先生早期的杰作"], *flags)
        assert rc == 2 and err.count("\n") == 1 and err.startswith("error: "), (flags, err)
        assert re.search(message, err), (message, err)


def _hf_dir_with_vocab(gpt2, path, capsys):
    """The transformers GPT-2 (300 ids) saved with a vocab.txt of the first 300 tokens of google_zh_vocab."""
    from conftest import VOCAB

    gpt2[0].save_pretrained(path)
    with open(VOCAB, encoding="utf-8") as f:
        tokens = [next(f).rstrip("\n") for _ in range(V)]
    (path / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    capsys.readouterr()  # save_pretrained's progress bar
    return ["--load_model_path", str(path), "--seq_length", "12", "--top_k", "1"]


def test_script_checks_prompts_options_and_the_output_before_generating(tmp_path, capsys, monkeypatch, gpt2):
    """Before any generation, in one line: a prompt file that is not UTF-8 (its line), --num_beams above the
    model's vocabulary, --prediction_path naming a directory or in a read-only one. Before: a
    UnicodeDecodeError traceback, 301 beams over 300 tokens, and the output error after all the generation.
    A missing directory is created."""
    from helpers import read_only
    from uer_like import generation

    flags = _hf_dir_with_vocab(gpt2, tmp_path / "hf", capsys)
    cases = [
        (b"\xe4\xbd\xa0\xe5\xa5\xbd\n\xc4\xe3\xba\xc3\n", [], r"prompts.txt:2: not valid UTF-8 \(byte 0 of the line\); "
                                                        r"--test_path must be UTF-8 text"),
        ("我们\n".encode("utf-16"), [], r"--test_path .*prompts.txt is UTF-16LE text; it must be UTF-8: convert it "
                                       r"with `iconv -f UTF-16 -t UTF-8 "),
        (b"", [], r"--test_path .*prompts.txt is empty: give one prompt per line"),
        (["我们"], ["--num_beams", str(V + 1)],
         rf"^error: --num_beams must be <= {V} \(the model's vocabulary size\), got 301$"),
        (["我们"], ["--max_new_tokens", "3"], None),
    ]
    real = generation.generate_text
    for lines, extra, message in cases:
        rc, out, err = _run_script(tmp_path, capsys, lines, *flags, *extra)
        if message is None:
            assert rc == 0 and len(out) == 1, err
        else:
            assert rc == 2 and err.count("\n") == 1 and err.startswith("error: "), (extra, err)
            assert re.search(message, err), (message, err)
    monkeypatch.setattr(generation, "generate_text", lambda *a, **k: pytest.fail("generation started"))
    rc, _, err = _run_script(tmp_path, capsys, ["我们"], *flags, out=tmp_path)
    assert rc == 2 and re.search(rf"^error: --prediction_path {tmp_path} is a directory; give a file path$", err), err
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(ro, monkeypatch)
    try:
        rc, _, err = _run_script(tmp_path, capsys, ["我们"], *flags, out=ro / "out.txt")
    finally:
        os.chmod(ro, 0o755)
    assert rc == 2 and err.count("\n") == 1, err
    assert f"--prediction_path: the directory {ro} is not writable: Permission denied" in err, err
    monkeypatch.setattr(generation, "generate_text", real)
    rc, out, err = _run_script(tmp_path, capsys, ["我们"], *flags, out=tmp_path / "new" / "dir" / "out.txt")
    assert rc == 0 and len(out) == 1, err


def test_script_output_is_written_at_once_and_threads_apply(tmp_path, capsys, monkeypatch, gpt2):
    """An interrupted write of --prediction_path leaves the previous file whole and no temporary (before: the
    file was truncated at open); --threads sets torch's CPU threads before the model is loaded."""
    flags = _hf_dir_with_vocab(gpt2, tmp_path / "hf", capsys)
    out = tmp_path / "out.txt"
    out.write_text("previous\n", encoding="utf-8")
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    rc, _, err = _run_script(tmp_path, capsys, ["我们", "你好"], *flags, "--threads", "1")
    assert rc == 130 and err == "interrupted\n", err
    assert out.read_text(encoding="utf-8") == "previous\n" and sorted(os.listdir(tmp_path)) == ["hf", "out.txt",
                                                                                                 "prompts.txt"]
    assert threads == [1]
    monkeypatch.undo()
    rc, lines, err = _run_script(tmp_path, capsys, ["我们", "你好"], *flags)
    assert rc == 0 and [line[:2] for line in lines] == ["我们", "你好"], err
