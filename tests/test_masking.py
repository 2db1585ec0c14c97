"""Masking strategies (uer_like/data/masking.py, csrc/instances.c) over the real corpora: masked fractions,
UER-py's span-length distribution (chi-square), whole words and n-grams never split, MacBERT's similar words,
PERT's windows and inverse; native and Python paths byte-identical (static datasets, dynamic masks); a tiny model
pretrains on each; bad inputs are refused in one line."""
import collections
import hashlib
import os
import re

import numpy as np
import pytest

from conftest import DATA, SAMPLE_CORPUS, VOCAB, need_native
from helpers import preprocess
from uer_like.config import load_config
from uer_like.data import native
from uer_like.data.dataset import Dataset
from uer_like.data.masking import (MaskingOptions, SimilarWords, _units, mask_with, options_from_manifest,
                                   span_candidates, span_length_pmf)
from uer_like.data.rng import SplitMix64
from uer_like.errors import ConfigError, DataError

BERT_TEXT = open(SAMPLE_CORPUS, "rb").read()  # sentences per line, blank lines between documents
LINE_CORPUS = os.path.join(DATA, "corpora", "CLUECorpusSmall_sampled.txt")  # one document per line


def bert_slice(n):
    t = BERT_TEXT[:n]
    return t[: t.rfind(b"\n\n") + 2]


def line_slice(n):
    if not os.path.exists(LINE_CORPUS):
        pytest.skip(f"{LINE_CORPUS} is not here (../shared/data)")
    t = open(LINE_CORPUS, "rb").read(n)
    return t[: t.rfind(b"\n") + 1]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def rows(path):
    ds = Dataset(path)
    m = ds.manifest
    special = {m["special_ids"][k] for k in ("pad", "cls", "sep")}
    for i in range(len(ds)):
        pos, lab = ds.instance_masks(i)
        yield ds.instance_ids(i), ds.instance_bits(i), pos, lab, special


_CACHE = {}


def dataset(tmp_path_factory, name, text, **kw):
    """A dataset made by the native path, once per module."""
    if name not in _CACHE:
        need_native()
        d = tmp_path_factory.mktemp(name)
        _CACHE[name] = preprocess(str(d), text, implementation="native", **kw)
    return _CACHE[name]


# ------------------------------------------------------------------------------------------ fractions
STRATEGIES = {
    "mlm": {}, "span": dict(span_masking=True), "span_wwm": dict(span_masking=True, whole_word_masking=True),
    "ngram": dict(ngram_masking=True), "ngram_wwm": dict(ngram_masking=True, whole_word_masking=True),
    "pert_wwm": dict(pert_masking=True, whole_word_masking=True),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("proc", ["bert", "mlm"])
def test_masked_fraction_is_the_configured_rate(tmp_path_factory, name, proc):
    """Over the whole bundled corpus (bert pairs) or 1 MB of the one-document-per-line corpus (mlm pieces),
    at seq_length 128: masked / maskable tokens within 0.5 points of mask_prob."""
    text = BERT_TEXT if proc == "bert" else line_slice(1 << 20)
    for prob in (0.15, 0.3) if name == "span" else (0.15,):
        path, m = dataset(tmp_path_factory, f"{proc}_{name}_{prob}", text, data_processor=proc, seq_length=128,
                          mask_prob=prob, corpus_format="bert" if proc == "bert" else "line", **STRATEGIES[name])
        special = 3 if proc == "bert" else 2
        maskable = m["tokens"] - special * m["instances"]
        frac = m["sections"]["mask_pos"]["count"] / maskable
        assert abs(frac - prob) < 0.005, (name, proc, prob, frac)


# ------------------------------------------------------------------------------------------ span
def _chi_square(counts, pmf, total):
    return sum((counts.get(k + 1, 0) - total * p) ** 2 / (total * p) for k, p in enumerate(pmf))


# the 0.999 quantiles of chi-square with 9 and 4 degrees of freedom
CHI2_999 = {9: 27.877, 4: 18.467}


@pytest.mark.parametrize("geo,max_len,wwm", [(0.2, 10, False), (0.4, 5, True)])
def test_span_lengths_follow_the_clipped_geometric_distribution(tmp_path_factory, geo, max_len, wwm):
    """Spans drawn over the units of the corpus's instances (one RNG per instance): spans with at least
    span_max_length adjacent units ahead are never cut, so their lengths must follow P(k) ~ p (1-p)^(k-1) on
    1..max (UER-py's get_span_len). Chi-square at the 0.999 level; and the means agree within 2%."""
    path, m = dataset(tmp_path_factory, f"span_{geo}_{wwm}", bert_slice(600000), data_processor="bert",
                      seq_length=128, span_masking=True, span_geo_prob=geo, span_max_length=max_len,
                      whole_word_masking=wwm)
    o = options_from_manifest(m)
    assert (o.strategy, o.span_geo_prob, o.span_max_length) == ("span", geo, max_len)
    counts, total = collections.Counter(), 0
    for i, (ids, bits, _, _, special) in enumerate(rows(path)):
        units = _units(ids.tolist(), bits.tolist(), special, wwm)
        run = [1] * len(units)
        for k in range(len(units) - 2, -1, -1):
            if units[k][1] == units[k + 1][0]:
                run[k] = run[k + 1] + 1
        for k, j in span_candidates(units, o, SplitMix64(i)):
            if run[k] >= max_len:
                counts[j - k] += 1
                total += 1
    pmf = span_length_pmf(geo, max_len)
    assert total > 5000
    assert _chi_square(counts, pmf, total) < CHI2_999[max_len - 1], (counts, total)
    mean = sum(k * c for k, c in counts.items()) / total
    assert abs(mean - sum((k + 1) * p for k, p in enumerate(pmf))) < 0.02 * mean


def test_span_masks_are_runs_with_one_decision_per_span():
    """A chosen span is contiguous, never crosses a special token, and gets one 80/10/10 decision: all its
    tokens are [MASK], or none is."""
    need_native()
    ids = [101] + list(range(1000, 1060)) + [102] + list(range(2000, 2030)) + [102]
    bits = [1] * len(ids)
    o = MaskingOptions(strategy="span", prob=0.3, span_geo_prob=0.2, span_max_length=10)
    for seed in range(200):
        out, pos, lab = mask_with(ids, bits, {0, 101, 102}, SplitMix64(seed), 21128, 103, o)
        assert lab == [ids[p] for p in pos] and all(ids[p] not in (101, 102) for p in pos)
        units = _units(ids, bits, {0, 101, 102}, False)
        for k, j in span_candidates(units, o, SplitMix64(seed)):
            a, b = units[k][0], units[j - 1][1]
            assert not any(t in (101, 102) for t in ids[a:b])
            chosen = [p for p in pos if a <= p < b]
            assert chosen in ([], list(range(a, b)))
            masked = [out[p] == 103 for p in chosen]
            assert all(masked) or not any(masked)


# ------------------------------------------------------------------------------------------ groups
def _words(bits, ids, special):
    """[start, end) of each word (a word-start bit opens one; special tokens stand alone)."""
    words = []
    for i, (b, t) in enumerate(zip(bits, ids)):
        if t in special:
            continue
        if b or not words or words[-1][1] != i:
            words.append([i, i + 1])
        else:
            words[-1][1] = i + 1
    return words


@pytest.mark.parametrize("name", ["span_wwm", "ngram_wwm", "pert_wwm", "mlm_wwm"])
def test_whole_words_are_never_split(tmp_path_factory, name):
    kw = dict(STRATEGIES.get(name, {}), whole_word_masking=True)
    path, m = dataset(tmp_path_factory, f"groups_{name}", bert_slice(400000), data_processor="bert",
                      seq_length=128, **kw)
    multi = 0
    for ids, bits, pos, lab, special in rows(path):
        chosen = set(pos.tolist())
        for a, b in _words(bits, ids, special):
            inside = sum(p in chosen for p in range(a, b))
            assert inside in (0, b - a), (name, a, b, pos)
            multi += inside > 1
    assert multi > 1000  # multi-token jieba words were chosen, whole


def test_ngrams_are_adjacent_words_of_the_configured_lengths():
    """With only 3-grams allowed, every chosen run of words (n-grams never overlap; adjacent ones merge) is
    made of whole 3-word n-grams, except where fewer adjacent words remained or the budget shortened one;
    on long spans of text nearly all runs are multiples of 3 words."""
    text = open(SAMPLE_CORPUS, encoding="utf-8").read(20000).replace("\n", "")
    from uer_like.tokenizers import build_tokenizer

    tok = build_tokenizer("bert", VOCAB)
    ids = [101] + tok.vocab.convert_tokens_to_ids(tok.tokenize(text))[:126] + [102]
    bits = [1] * len(ids)
    o = MaskingOptions(strategy="ngram", prob=0.15, ngram_probs=(0, 0, 1))
    runs = collections.Counter()
    for seed in range(300):
        _, pos, _ = mask_with(ids, bits, {0, 101, 102}, SplitMix64(seed), 21128, 103, o)
        assert len(pos) == round(126 * 0.15)
        run = 1
        for p, q in zip(pos, pos[1:] + [None]):
            if q == p + 1:
                run += 1
            else:
                runs[run] += 1
                run = 1
    triples = sum(c for r, c in runs.items() if r % 3 == 0)
    assert triples / sum(runs.values()) > 0.8, runs


# ------------------------------------------------------------------------------------------ macbert
SIMILAR = "<similar words>"  # in a strategy's options: the similar-words file similar_words() writes


def similar_words(tmp_path_factory):
    """A similar-words file from the corpus's own jieba words (Chinese characters only, so one token each):
    per length 1..4, the 150 most frequent words, each with 3 candidates among the next 300 of its length.
    -> (path, {word ids: {candidate ids}}, {length: {ids of the file's words of that length}})."""
    if "similar" not in _CACHE:
        from uer_like.segmentation import Segmenter
        from uer_like.tokenizers import build_tokenizer

        seg, han = Segmenter(), re.compile("^[\u4e00-\u9fff]+$")
        freq = collections.Counter(w for line in bert_slice(600000).decode("utf-8").splitlines()
                                   for w in seg.cut(line) if han.match(w))
        by_len = collections.defaultdict(list)
        for w, _ in sorted(freq.items(), key=lambda x: (-x[1], x[0])):
            by_len[len(w)].append(w)
        lines = ["# word<TAB>similar words", ""]
        for n in range(1, 5):
            words = by_len[n][:450]
            assert len(words) == 450, (n, len(words))
            lines += [f"{w}\t" + " ".join(words[150 + (3 * i + j) % 300] for j in range(3))
                      for i, w in enumerate(words[:150])]
        path = tmp_path_factory.mktemp("similar") / "similar.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        vocab = build_tokenizer("bert", VOCAB).vocab
        ids = lambda w: tuple(vocab.convert_tokens_to_ids(list(w)))  # noqa: E731
        table, lexicon = {}, collections.defaultdict(set)
        for line in lines[2:]:
            w, cands = line.split("\t")
            table[ids(w)] = {ids(c) for c in cands.split()}
            lexicon[len(w)] |= {ids(w)} | table[ids(w)]
        _CACHE["similar"] = (str(path), table, lexicon)
    return _CACHE["similar"]


def options(kw, tmp_path_factory):
    """A strategy's preprocess options with SIMILAR replaced by the similar-words file."""
    return {k: similar_words(tmp_path_factory)[0] if v == SIMILAR else v for k, v in kw.items()}


def test_macbert_replaces_words_with_their_similar_words(tmp_path_factory):
    """MacBERT over 600 KB of the corpus (bert pairs, whole words, static masks) with the corpus's own words as
    the similar-words file: nothing becomes [MASK]; whole words are never split and n-grams of several words are
    chosen; the labels are the original tokens (the same corpus made without masks); a chosen word with
    candidates becomes one of them 80% of the time, stays 10%; a word without becomes another word of its length
    from the file (or random non-special tokens where the file has none of that length) 90%, stays 10%; the
    masked fraction is the configured rate."""
    sim_path, table, lexicon = similar_words(tmp_path_factory)
    text = bert_slice(600000)
    path, m = dataset(tmp_path_factory, "macbert", text, data_processor="bert", seq_length=128,
                      whole_word_masking=True, macbert_masking=True, similar_words_path=sim_path)
    plain, _ = dataset(tmp_path_factory, "macbert_plain", text, data_processor="bert", seq_length=128,
                       whole_word_masking=True, dynamic_masking=True)
    s = m["masking"]
    assert (s["strategy"], s["ngram_probs"]) == ("macbert", [0.4, 0.3, 0.2, 0.1])
    assert (s["similar_words"]["file"], s["similar_words"]["words"], s["similar_words"]["dropped_candidates"]) == \
        ("similar.txt", 600, 0)
    assert abs(m["sections"]["mask_pos"]["count"] / (m["tokens"] - 3 * m["instances"]) - 0.15) < 0.005
    orig_ds, mask_id = Dataset(plain), m["special_ids"]["mask"]
    n = collections.Counter()
    for i, (ids, bits, pos, lab, special) in enumerate(rows(path)):
        orig = orig_ds.instance_ids(i)
        assert (lab == orig[pos]).all() and len(ids) == len(orig)
        keep = np.ones(len(ids), bool)
        keep[pos] = False
        assert (ids[keep] == orig[keep]).all()
        assert not (ids == mask_id).any() and not np.isin(ids[pos], list(special)).any()
        chosen = set(pos.tolist())
        run = 0
        for a, b in _words(bits, orig, special) + [[len(ids), len(ids)]]:
            inside = sum(p in chosen for p in range(a, b))
            assert inside in (0, b - a), (i, a, b, pos)
            if not inside:
                if run:
                    n["runs"] += 1
                    n["multi_word_runs"] += run > 1
                run = 0
                continue
            run += 1
            word, new = tuple(orig[a:b].tolist()), tuple(ids[a:b].tolist())
            kind = "cand" if word in table else "other"
            n[kind] += 1
            n[kind + "_kept"] += new == word
            n[kind + "_similar"] += word in table and new in table[word]
            if new != word:
                if b - a in lexicon:
                    assert new in lexicon[b - a], (i, a, b, word, new)
                else:
                    n["random_tokens"] += b - a
    assert n["cand"] > 5000 and n["other"] > 5000 and n["random_tokens"] > 20, n
    assert abs(n["cand_similar"] / n["cand"] - 0.8) < 0.02, n
    assert abs(n["cand_kept"] / n["cand"] - 0.1) < 0.02, n
    assert abs(n["other_kept"] / n["other"] - 0.1) < 0.02, n
    assert n["multi_word_runs"] / n["runs"] > 0.3, n


def test_macbert_random_tokens_are_never_special():
    """A word of a length the similar-words file lacks gets random tokens: never [MASK], [CLS], [SEP] or [PAD],
    every other id drawn, in the Python and the native path alike (a vocabulary of 106 ids, so the special ones
    would come up often)."""
    need_native()
    sim = SimilarWords([(1000, 1001), (1002, 1003)], {(1000, 1001): [1]})
    o = MaskingOptions(strategy="macbert", prob=0.3, similar=sim)
    ids = [101] + list(range(1, 41)) + [102] + list(range(41, 61)) + [102]
    bits = [1] * len(ids)
    special, seen = {0, 101, 102}, collections.Counter()
    out_py = []
    for seed in range(400):
        out, pos, lab = mask_with(ids, bits, special, SplitMix64(seed), 106, 103, o)
        assert lab == [ids[p] for p in pos] and len(pos) == round(60 * 0.3)
        out_py.append(out)
        seen.update(out[p] for p in pos if out[p] != ids[p])
    assert set(seen) == set(range(1, 106)) - {101, 102, 103}
    n = len(out_py)
    keys = np.array([[seed] for seed in range(n)], np.uint64)
    nat, _, _, _ = native.mask_instances(np.array(ids * n, np.int64), np.full(n, len(ids), np.int64),
                                         np.array(bits * n, np.uint8), keys, special, 106, 103, options=o)
    assert nat.reshape(n, -1).tolist() == out_py


# ------------------------------------------------------------------------------------------ parity
PARITY = {
    "span": dict(span_masking=True, mask_decision="token"),
    "span_wwm": dict(span_masking=True, whole_word_masking=True, span_geo_prob=0.35, span_max_length=4),
    "ngram": dict(ngram_masking=True, ngram_probs=[0.4, 0.3, 0.2, 0.1]),
    "ngram_wwm": dict(ngram_masking=True, whole_word_masking=True, mask_decision="token"),
    "pert_wwm": dict(pert_masking=True, whole_word_masking=True, pert_window=8),
    "macbert": dict(macbert_masking=True, similar_words_path=SIMILAR, ngram_probs=[0.5, 0.5]),
    "macbert_wwm": dict(macbert_masking=True, whole_word_masking=True, similar_words_path=SIMILAR),
}


@pytest.mark.parametrize("name", list(PARITY))
def test_native_and_python_datasets_are_byte_identical(tmp_path, tmp_path_factory, name):
    """The same corpus slice through --implementation python (jieba itself for whole words) and native:
    byte-identical dataset files, static masks, two duplicates, two processes, chunks of 48 KB."""
    need_native()
    data = bert_slice(160000)
    kw = dict(data_processor="albert" if "wwm" in name else "bert", seq_length=96, dup_factor=2, chunk_bytes=49152,
              seed=13, **options(PARITY[name], tmp_path_factory))
    py, mp = preprocess(str(tmp_path), data, name="py.bin", implementation="python", **kw)
    nat, mn = preprocess(str(tmp_path), data, name="nat.bin", implementation="native", processes_num=2, **kw)
    assert mn["masking"]["strategy"] == name.split("_")[0]
    assert mp == mn and sha(py) == sha(nat)


@pytest.mark.parametrize("name", list(PARITY))
def test_native_dynamic_masks_equal_python(tmp_path_factory, name, monkeypatch):
    """The Collator's dynamic masks: the native batch call and the Python mask_with draw the same masks."""
    from uer_like.training.batches import Collator

    kw = dict(options(PARITY[name], tmp_path_factory), dynamic_masking=True)
    path, m = dataset(tmp_path_factory, f"dyn_{name}", bert_slice(120000), data_processor="bert", seq_length=96,
                      **kw)
    assert m["masking"]["strategy"] == name.split("_")[0] and m["dynamic_masking"]
    ds = Dataset(path)
    coll = Collator(ds, ["mlm", "sp"] if name != "pert_wwm" else ["sp"], seed=5)
    idx = np.arange(min(len(ds), 400))
    rows_ = [ds.instance_ids(int(i)) for i in idx]
    nat = coll.mask_batch(idx, 3, rows_)
    monkeypatch.setattr(native, "AVAILABLE", False)
    py = coll.mask_batch(idx, 3, rows_)
    assert len(nat) == len(py) == len(idx)
    for (a, pa, la), (b, pb, lb) in zip(nat, py):
        assert a.tolist() == b.tolist() and pa.tolist() == pb.tolist() and la.tolist() == lb.tolist()
    assert sum(len(p) for _, p, _ in py) > 0.14 * sum(len(r) - 3 for r in rows_)


# ------------------------------------------------------------------------------------------ pert
def test_pert_permutations_stay_in_their_window_and_the_labels_invert_them(tmp_path_factory):
    """Static PERT masks over the corpus: each chosen position's label (where its token came from) lies in
    the same window of pert_window positions, the labels are a permutation of the chosen positions, and
    putting each token back at its label restores the unpermuted instance (the same corpus made without
    masks). Most windows with two or more chosen tokens are really permuted."""
    text = bert_slice(300000)
    path, m = dataset(tmp_path_factory, "pert", text, data_processor="mlm", corpus_format="line",
                      seq_length=128, pert_masking=True, pert_window=8)
    plain, _ = dataset(tmp_path_factory, "pert_plain", text, data_processor="mlm", corpus_format="line",
                       seq_length=128, dynamic_masking=True)
    orig = Dataset(plain)
    moved = windows = 0
    for i, (ids, bits, pos, lab, special) in enumerate(rows(path)):
        o = orig.instance_ids(i)
        assert (pos // 8 == lab // 8).all()
        assert sorted(lab.tolist()) == pos.tolist()
        restored = ids.copy()
        restored[lab] = ids[pos]
        assert restored.tolist() == o.tolist()
        keep = np.ones(len(ids), bool)
        keep[pos] = False
        assert (ids[keep] == o[keep]).all() and not np.isin(o[pos], list(special)).any()
        for w in np.unique(pos // 8):
            sel = pos // 8 == w
            if sel.sum() >= 2:
                windows += 1
                moved += bool((lab[sel] != pos[sel]).any())
    assert windows > 1000 and moved / windows > 0.4


# ------------------------------------------------------------------------------------------ pretraining
def small_args(ds, tmp_path, **kw):
    from uer_like.training.trainer import TrainArgs

    base = dict(dataset_path=ds, config="bert/tiny_config.json", total_steps=12, batch_size=8, learning_rate=3e-3,
                warmup=0.1, save_checkpoint_steps=1000, report_steps=5, output_model_path=str(tmp_path / "m.bin"),
                trace_path=str(tmp_path / "trace.jsonl"), seed=3,
                config_overrides={"layers_num": 1, "hidden_size": 64, "emb_size": 64, "feedforward_size": 128,
                                  "heads_num": 2})
    base.update(kw)
    return TrainArgs(**base)


def _losses(tmp_path):
    import json

    steps = {}
    for line in open(tmp_path / "trace.jsonl"):
        r = json.loads(line)
        steps[r["step"]] = r["loss"]
    return [steps[k] for k in sorted(steps)]


@pytest.mark.parametrize("name,dynamic", [("span", False), ("ngram_wwm", True), ("macbert_wwm", False),
                                          ("macbert", True)])
def test_a_tiny_model_pretrains_with_the_strategy(tmp_path, tmp_path_factory, name, dynamic):
    """BERT-tiny-sized (1 layer, 64 wide) for 12 steps on the corpus masked by the strategy, the config naming
    it: the loss is finite and falls (MacBERT: the mlm target predicts the original words of the replaced and
    kept ones; dynamic, the similar-word table travels in the manifest)."""
    from uer_like.training.trainer import Trainer

    kw = dict(options(PARITY[name], tmp_path_factory), dynamic_masking=dynamic)
    kw.pop("mask_decision", None)
    ds, m = preprocess(str(tmp_path), bert_slice(150000), data_processor="bert", seq_length=64, **kw)
    assert ("similar_table" in m["masking"]) == (dynamic and "macbert" in name)
    over = {k: v for k, v in kw.items() if k in ("span_masking", "span_geo_prob", "span_max_length", "ngram_masking",
                                                 "ngram_probs", "macbert_masking")}
    args = small_args(ds, tmp_path)
    args.config_overrides.update(over)
    Trainer(args).train()
    losses = _losses(tmp_path)
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:2]) - 0.5, losses


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("over,msg", [
    (dict(span_masking=True, ngram_masking=True), r"span_masking and ngram_masking cannot be combined"),
    (dict(span_masking=True, pert_masking=True), r"span_masking and pert_masking cannot be combined"),
    (dict(span_geo_prob=1.0), r"span_geo_prob must be in \(0, 1\), got 1.0"),
    (dict(span_geo_prob=0), r"span_geo_prob must be in \(0, 1\), got 0"),
    (dict(span_geo_prob=-0.5), r"span_geo_prob must be in \(0, 1\)"),
    (dict(span_max_length=0), r"span_max_length must be an integer in 1..64"),
    (dict(ngram_probs=[0.5, "x"]), r"'ngram_probs' must be a list of numbers"),
    (dict(ngram_probs=[0, 0]), r"ngram_probs must list"),
    (dict(pert_window=1), r"pert_window must be an integer >= 2"),
    (dict(span_masking="yes"), r"'span_masking' must be true or false"),
])
def test_bad_masking_config_is_one_line(over, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        load_config("bert/tiny", **over)
    assert "\n" not in str(e.value)


def test_uer_py_span_keys_load():
    """UER-py's keys (its configs and flags) are accepted now, and name the strategy."""
    from uer_like.legacy_config import normalize

    d = normalize({"span_masking": True, "span_geo_prob": 0.3, "span_max_length": 5, "emb_size": 128})
    cfg = load_config("bert/tiny", **d)
    assert (cfg.masking_strategy, cfg.span_geo_prob, cfg.span_max_length) == ("span", 0.3, 5)


@pytest.mark.parametrize("kw,msg", [
    (dict(span_masking=True, ngram_masking=True), r"--span_masking and --ngram_masking cannot be combined"),
    (dict(span_masking=True, span_geo_prob=1.5), r"--span_geo_prob must be in \(0, 1\)"),
    (dict(span_masking=True, data_processor="lm"), r"--span_masking masks instances, which the 'lm' processor"),
    (dict(macbert_masking=True), r"--macbert_masking needs --similar_words_path"),
    (dict(similar_words_path="x.txt"), r"--similar_words_path is for --macbert_masking"),
    (dict(ngram_probs=[0.5, 0.5]), r"--ngram_probs is for --ngram_masking or --macbert_masking"),
])
def test_bad_preprocess_flags_are_one_line(tmp_path, kw, msg):
    with pytest.raises(DataError, match=msg) as e:
        preprocess(str(tmp_path), bert_slice(2000), **kw)
    assert "\n" not in str(e.value)


def _macbert_with(tmp_path, content, **kw):
    path = tmp_path / "similar.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return preprocess(str(tmp_path), bert_slice(20000), macbert_masking=True, similar_words_path=str(path), **kw)


def test_bad_similar_words_lines_are_one_error_naming_the_file_and_lines(tmp_path):
    """Lines without a TAB, without candidates, with an empty word or a word with a space, or not UTF-8: one
    DataError naming the file and each line (the first five, then how many more); comments, blank lines, a
    BOM and CRLF endings are fine."""
    good = "\ufeff# word<TAB>candidates\r\n苹果\t香蕉 橘子\r\n\r\n"
    bad = ["苹果 香蕉", "西瓜\t", "\t香蕉", "大 西瓜\t香瓜"]
    content = (good + "\n".join(bad[:2])).encode("utf-8") + b"\n\xe8\x8b\t\xe9\xa6\x99\n" + \
        "\n".join(bad[2:]).encode("utf-8")
    path = re.escape(str(tmp_path / "similar.txt"))
    with pytest.raises(DataError, match=path + r": 5 bad line\(s\) in the similar-words file \(expected "
                       r"`word<TAB>candidate candidate ...`\): line 4: no TAB between the word and its candidates; "
                       r"line 5: no candidates for '西瓜'; line 6: invalid UTF-8 at byte 0; line 7: empty word; "
                       r"line 8: the word '大 西瓜' contains whitespace$") as e:
        _macbert_with(tmp_path, content)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=r": 7 bad line\(s\) .*; line 5: no TAB .* \(and 2 more\)$"):
        _macbert_with(tmp_path, "\n".join(["苹果"] * 7))
    for content, msg in [("# only a comment\n\n", "the similar-words file has no entries"),
                         ("苹果\t大西瓜 苹果\n", r"no word of the similar-words file has a usable candidate \(a "
                          r"candidate needs as many tokens as its word, and must differ from it\): line 1: '苹果' -> "
                          r"'大西瓜' \(3 token\(s\), the word 2\); line 1: '苹果' -> '苹果' \(the word itself\)$")]:
        with pytest.raises(DataError, match=path + ": " + msg) as e:
            _macbert_with(tmp_path, content)
        assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=r"--similar_words_path \S+missing.txt: No such file or directory$"):
        preprocess(str(tmp_path), bert_slice(20000), macbert_masking=True,
                   similar_words_path=str(tmp_path / "missing.txt"))


def test_similar_words_of_another_length_are_dropped_with_a_warning(tmp_path, caplog):
    """A candidate with another number of tokens than its word (or the word itself) cannot replace it in place:
    it is dropped, one warning names the file and the lines, and the manifest counts them; the rest is used."""
    content = "苹果\t香蕉 大西瓜 苹果\n中国\t美国\n我\t你 他们\n"
    with caplog.at_level("WARNING", logger="uer_like"):
        _, m = _macbert_with(tmp_path, content)
    warned = [r.getMessage() for r in caplog.records if "similar-words" in r.getMessage()]
    assert warned == [f"{tmp_path / 'similar.txt'}: 3 candidate(s) of the similar-words file dropped (a candidate "
                      "needs as many tokens as its word, and must differ from it): line 1: '苹果' -> '大西瓜' (3 "
                      "token(s), the word 2); line 1: '苹果' -> '苹果' (the word itself); line 3: '我' -> '他们' (2 "
                      "token(s), the word 1)"]
    s = m["masking"]["similar_words"]
    assert (s["words"], s["lexicon"], s["dropped_candidates"]) == (3, 6, 3)


def test_dataset_made_with_another_strategy_is_refused(tmp_path_factory, tmp_path):
    from uer_like.training.trainer import Trainer

    path, _ = dataset(tmp_path_factory, "refuse_plain", bert_slice(60000), data_processor="bert", seq_length=64)
    args = small_args(path, tmp_path)
    args.config_overrides.update(span_masking=True)
    with pytest.raises(DataError, match=r"made with mlm masking, but the model config asks for span masking "
                                        r"\(span_masking\); re-run preprocess.py with --span_masking"):
        Trainer(args)
    span, _ = dataset(tmp_path_factory, "refuse_span", bert_slice(60000), data_processor="bert", seq_length=64,
                      span_masking=True)
    args = small_args(span, tmp_path)
    args.config_overrides.update(span_masking=True, span_geo_prob=0.3)
    with pytest.raises(DataError, match=r"made with span_geo_prob 0.2, but the model config says 0.3"):
        Trainer(args)


def test_pert_dataset_is_refused_for_the_mlm_target(tmp_path):
    """A PERT dataset's labels are original positions: with the mlm target they would be read as token ids, so
    pretraining refuses it in one line, whether or not the config names pert_masking (the pert target trains on it:
    tests/test_pert.py)."""
    from uer_like.training.trainer import Trainer

    ds, _ = preprocess(str(tmp_path), bert_slice(60000), data_processor="mlm", corpus_format="line", seq_length=64,
                       pert_masking=True, pert_window=8)
    for over in ({}, {"pert_masking": True}):
        args = small_args(ds, tmp_path, config="roberta/tiny_config.json")
        args.config_overrides.update(over)
        with pytest.raises(DataError, match="PERT's permuted-LM masking, whose labels are original positions: it trains the 'pert' target"):
            Trainer(args).train()
