"""The prefix LM (UniLM; UER-py's mask causal_with_prefix, data_processor prefixlm, target lm): the mask, UER-py
parity (tests/data/uer_py_fixtures/make_prefixlm_2024.py: its preprocess.py, dataloader, model and loss),
pretraining, generation (cached = uncached) and the refusals of what does not fit."""
import json
import os

import numpy as np
import pytest
import torch

import uer_like
from uer_like.data.dataset import Dataset
from uer_like.errors import ConfigError, DataError
from uer_like.layers.context import AttentionContext
from uer_like.training.batches import Collator
from uer_like.training.trainer import TrainArgs, Trainer
from conftest import SAMPLE_CORPUS
from helpers import preprocess

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "uer_py_fixtures")
FIXTURE = {k: os.path.join(HERE, v) for k, v in (("bin", "prefixlm_2024.bin"), ("config", "prefixlm_2024_config.json"),
                                                  ("io", "prefixlm_2024_io.npz"), ("vocab", "prefixlm_vocab.txt"),
                                                  ("corpus", "prefixlm_corpus.txt"))}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models throughout: one thread (much faster on a busy machine)."""


@pytest.fixture(scope="module")
def uer_model():
    return uer_like.load_model(FIXTURE["bin"], config=FIXTURE["config"]).eval()


def fixture_dataset(tmp_path, **kw):
    return preprocess(str(tmp_path), corpus_path=FIXTURE["corpus"], vocab_path=FIXTURE["vocab"],
                      data_processor="prefixlm", seq_length=16, **kw)


# ------------------------------------------------------------------------------------------ the mask
def test_mask_source_both_ways_target_causal_padding_never():
    seg = torch.tensor([[1, 1, 1, 2, 2, 2, 0, 0], [1, 1, 1, 1, 1, 2, 2, 2], [1, 1, 2, 2, 2, 2, 2, 0]])
    mask = AttentionContext.build(seg, False, prefix=True).mask
    assert mask.shape == (3, 1, 8, 8)
    m = mask[:, 0]
    for b in range(3):
        for i in range(8):
            for j in range(8):
                si, sj = int(seg[b, i]), int(seg[b, j])
                if si == 0:
                    continue  # a padding query: its output is never read
                expected = sj == 1 or (sj == 2 and si == 2 and j <= i)
                assert bool(m[b, i, j]) == expected, (b, i, j)
    # no query row is empty (SDPA would give NaN there)
    assert bool(m.any(-1).all())


def test_encoder_source_never_sees_the_target_and_target_sees_source_and_earlier_targets(uer_model):
    src = torch.tensor([[2, 5, 6, 7, 3, 10, 11, 12, 13, 3]])
    seg = torch.tensor([[1, 1, 1, 1, 1, 2, 2, 2, 2, 2]])
    with torch.no_grad():
        base = uer_model.encode(src, seg)
        later = src.clone()
        later[0, 8] = 20  # a target token: the source and the targets before it must not change
        h = uer_model.encode(later, seg)
        assert torch.equal(h[0, :8], base[0, :8]) and not torch.allclose(h[0, 8:], base[0, 8:])
        first = src.clone()
        first[0, 1] = 20  # a source token: every position changes (the source reads itself both ways)
        h = uer_model.encode(first, seg)
        assert not torch.isclose(h[0], base[0]).all(-1).any()


# ------------------------------------------------------------------------------------------ UER-py parity
def test_prefixlm_dataset_logits_and_loss_equal_uer_py(uer_model, tmp_path, caplog):
    """The fixture corpus preprocessed here gives UER-py's batch exactly (its PrefixlmDataset: a line without a
    tab and a source that fills seq_length give nothing; a cut target keeps the label of the last position);
    UER-py's checkpoint gives its encoder output and logits, and the lm loss UER-py's LmTarget computed on
    that batch until July 2023 (tgt_lm > 0: each target token from the position before it)."""
    io = np.load(FIXTURE["io"])
    with caplog.at_level("WARNING", logger="uer_like"):
        path, manifest = fixture_dataset(tmp_path)
    assert manifest["problems"]["counts"] == {"bad_columns": 1, "long_source": 1}
    assert "long_source" in caplog.text
    batch = Collator(Dataset(path), ["lm"], seed=1, pad_to_multiple=16)(list(range(6)), 0)
    np.testing.assert_array_equal(batch["src"].numpy(), io["src"])
    np.testing.assert_array_equal(batch["seg"].numpy(), io["seg"])
    np.testing.assert_array_equal(batch["tgt_lm"].numpy(), io["tgt_lm"])
    real = io["seg"] > 0
    with torch.no_grad():
        hidden = uer_model.encode(batch["src"], batch["seg"])
        logits = uer_model.target_logits(hidden, batch["seg"])["lm"]
        loss = uer_model.target.lm.loss(hidden, batch)
    np.testing.assert_allclose(hidden.numpy()[real], io["encoder_output"][real], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits.numpy()[real], io["lm_logits"][real], atol=1e-5, rtol=0)
    assert abs(float(loss["loss"]) - float(io["loss_tgt_lm"])) < 1e-5
    assert int(loss["count"]) == round(float(io["denominator_tgt_lm"]))
    assert int(loss["correct"]) == round(float(io["correct_tgt_lm"]))
    # UER-py 5743050's prefix_lm_loss takes the segment-2 positions instead (the first target token's
    # prediction left out, [PAD] after the last [SEP] learnt): the same logits give its figure that way
    seg2 = torch.from_numpy(io["seg"] == 2)
    ref = torch.nn.functional.cross_entropy(logits[seg2], torch.from_numpy(io["tgt_lm"])[seg2])
    assert abs(float(ref) - float(io["loss_seg2"])) < 1e-5


def test_uer_py_config_forms_load():
    cfg = uer_like.load_config(FIXTURE["config"])
    assert (cfg.mask, cfg.data_processor, cfg.target) == ("causal_with_prefix", "prefixlm", ["lm"])
    old = uer_like.load_config({"target": "prefixlm", "mask": "causal_with_prefix"})  # 2021-2022: PrefixlmTarget
    assert (old.target, old.data_processor) == (["lm"], "prefixlm")
    with pytest.raises(ConfigError, match=r"prefix_lm_loss.*drop the key") as e:
        uer_like.load_config({"target": ["lm"], "mask": "causal_with_prefix", "prefix_lm_loss": True})
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ pretraining
def pair_corpus(n=256, seed=0):
    """source<TAB>target lines over the fixture vocabulary's characters (Zipf-distributed): the target is the
    source reversed."""
    chars = [t for t in open(FIXTURE["vocab"], encoding="utf-8").read().split() if not t.startswith("[")]
    p = 1.0 / np.arange(1, len(chars) + 1) ** 1.5
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        src = "".join(rng.choice(chars, rng.integers(3, 9), p=p / p.sum()))
        lines.append(src + "\t" + src[::-1])
    return "\n".join(lines) + "\n"


def test_tiny_prefix_lm_pretrains_and_generates(tmp_path):
    """30 steps of a tiny prefix LM on a reversal task: the loss (on the target tokens only) falls."""
    ds, manifest = preprocess(str(tmp_path), pair_corpus(), vocab_path=FIXTURE["vocab"], data_processor="prefixlm",
                              seq_length=24)
    assert manifest["data_processor"] == "prefixlm" and manifest["instances"] == 256
    over = dict(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=2, layers_num=2, max_seq_length=32,
                mask="causal_with_prefix", target=["lm"], data_processor="prefixlm")
    trace = tmp_path / "trace.jsonl"
    args = TrainArgs(dataset_path=ds, config="bert/tiny_config.json", config_overrides=over, total_steps=30,
                     batch_size=16, learning_rate=1e-2, warmup=0.1, report_steps=1, save_checkpoint_steps=1000,
                     vocab_path=FIXTURE["vocab"], output_model_path=str(tmp_path / "m.bin"), trace_path=str(trace),
                     seed=1, precision="fp32")
    Trainer(args).train()
    steps = {}
    for line in open(trace):
        r = json.loads(line)
        steps[r["step"]] = r["loss"]
    losses = [steps[k] for k in sorted(steps)]
    assert len(losses) >= 25
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first * 0.8, (first, last)  # about 3.1 -> 2.2 over seeds 1-3
    model = uer_like.load_model(str(tmp_path / "m.bin"))
    assert model.config.mask == "causal_with_prefix"
    out = uer_like.generate(model, [[2, 5, 6, 7, 3], [2, 9, 3]], 4)
    assert out == uer_like.generate(model, [[2, 5, 6, 7, 3], [2, 9, 3]], 4, use_cache=False)


def test_causal_with_prefix_on_an_lm_dataset_is_refused(tmp_path):
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:20000]
    ds, _ = preprocess(str(tmp_path), text, data_processor="lm", seq_length=32, corpus_format="line")
    args = TrainArgs(dataset_path=ds, config="bert/tiny_config.json", total_steps=1,
                     config_overrides=dict(mask="causal_with_prefix", target=["lm"], layers_num=1),
                     output_model_path=str(tmp_path / "m.bin"))
    with pytest.raises(ConfigError, match=r"mask 'causal_with_prefix'.*data_processor 'lm'.*--data_processor prefixlm") \
            as e:
        Trainer(args)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("target,field", [(["bilm"], "tgt_backward"), (["mlm"], "mlm_pos")])
def test_prefixlm_dataset_for_another_target_is_refused(tmp_path, target, field):
    ds, _ = fixture_dataset(tmp_path)
    with pytest.raises(DataError, match=rf"needs batch field '{field}'.*data_processor 'prefixlm' cannot supply") as e:
        Collator(Dataset(ds), target, seed=1)
    assert "\n" not in str(e.value)


def test_preprocess_refusals_are_one_line(tmp_path):
    with pytest.raises(DataError, match=r"prefixlm processor reads `source<TAB>target` lines: use --corpus_format line"):
        fixture_dataset(tmp_path, corpus_format="bert")
    with pytest.raises(DataError, match=r"--implementation native: the 'prefixlm' processor has no native"):
        fixture_dataset(tmp_path, implementation="native")
    with pytest.raises(DataError, match=r":5: expected 2 tab-separated columns \(source, target\), got 1"):
        fixture_dataset(tmp_path, invalid_lines="error")


# ------------------------------------------------------------------------------------------ generation
@pytest.mark.parametrize("kw", [{}, {"num_beams": 3}, {"do_sample": True, "seed": 5, "top_k": 8}])
def test_cached_generation_equals_uncached(uer_model, kw):
    """Prompts of different lengths (left-padded together): the source is read once, bidirectionally, into the
    cache; each new token (segment 2) then sees the source and the new tokens before it."""
    prompts = [[2, 5, 6, 6, 7, 3], [2, 17, 3], [2, 22, 23, 24, 25, 26, 9, 3]]
    cached = uer_like.generate(uer_model, prompts, 7, **kw)
    assert cached == uer_like.generate(uer_model, prompts, 7, use_cache=False, **kw)
    if not kw:
        _, a = uer_like.generate(uer_model, prompts, 7, return_logits=True)
        _, b = uer_like.generate(uer_model, prompts, 7, return_logits=True, use_cache=False)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        # a prompt alone continues as in the batch; and as the whole sequence re-read, seg 1 then seg 2
        for p, row in zip(prompts, cached):
            assert uer_like.generate(uer_model, [p], 7) == [row]
            ids = p + row[:-1]
            seg = torch.tensor([[1] * len(p) + [2] * len(row[:-1])])
            with torch.no_grad():
                logits = uer_model.target_logits(uer_model.encode(torch.tensor([ids]), seg), seg)["lm"][0]
            assert logits[len(p) - 1:].argmax(-1).tolist() == row


def test_generate_text_frames_the_source_and_score_is_refused(uer_model):
    from uer_like.generation import generate_text, score
    from uer_like.tokenizers import build_tokenizer

    tok = build_tokenizer("bert", FIXTURE["vocab"])
    text = generate_text(uer_model, tok, ["今天天气"], seq_length=14, end_token=None)[0]
    ids = tok.convert_tokens_to_ids(tok.tokenize("今天天气"))
    row = uer_like.generate(uer_model, [[2] + ids + [3]], 14 - len(ids) - 2)[0]
    assert text == "".join(tok.vocab.convert_ids_to_tokens(row))
    with pytest.raises(ConfigError, match=r"prefix LM \(mask 'causal_with_prefix'\).*scoring whole sequences"):
        score(uer_model, [[2, 5, 6]])


def test_generate_lm_script_continues_each_line_as_a_source(uer_model, tmp_path, capsys):
    from helpers import run_cli
    from uer_like.generation import generate_text
    from uer_like.tokenizers import build_tokenizer

    (tmp_path / "p.txt").write_text("今天天气\n你好\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    code, err = run_cli("scripts/generate_lm.py", ["--load_model_path", FIXTURE["bin"], "--config_path",
                                                   FIXTURE["config"], "--vocab_path", FIXTURE["vocab"], "--test_path",
                                                   tmp_path / "p.txt", "--prediction_path", out, "--seq_length", 12,
                                                   "--top_k", 1], capsys)
    assert code in (0, None), err
    tok = build_tokenizer("bert", FIXTURE["vocab"])
    texts = generate_text(uer_model, tok, ["今天天气", "你好"], seq_length=12, do_sample=False)
    assert out.read_text(encoding="utf-8") == "今天天气" + texts[0] + "\n你好" + texts[1] + "\n"


def test_classifier_shortcut_is_off_under_the_prefix_mask(uer_model):
    """The last layer for the first token alone (first_only) assumes one mask row for every query; the prefix
    mask has a row per query, so the encoder does not offer it."""
    assert not uer_model.encoder.computes_first_only()
    fully = uer_like.build_model(uer_like.load_config(FIXTURE["config"], mask="fully_visible"), vocab_size=33)
    assert fully.encoder.computes_first_only()
