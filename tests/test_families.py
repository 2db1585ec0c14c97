"""NEZHA, RoFormer, ERNIE and XLNet beyond weight parity (which test_io_hf.py checks against transformers):
NEZHA against its reference implementation's fixture, the one-line errors, XLNet's tokenizer, and for each
family a tiny model that pretrains on the bundled corpus and fine-tunes with every finetune script."""
import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch

import uer_like
from uer_like.errors import ConfigError, DataError
from uer_like.io import load_model, save_model
from conftest import FIXTURES, ROOT, SAMPLE_CORPUS, SHARED, VOCAB, need
from helpers import preprocess

NEZHA = os.path.join(FIXTURES, "nezha")
SAMPLES = os.path.join(SHARED, "data", "datasets", "samples")
TINY = dict(emb_size=64, hidden_size=64, feedforward_size=128, heads_num=4, layers_num=2, max_seq_length=128,
            dropout=0.0)
# each family at its release's config, shrunk; the MLM families pretrain MLM only (one shared dataset)
FAMILIES = {
    "nezha": ("nezha/base_config.json", dict(target=["mlm"], data_processor="mlm", max_relative_position=8)),
    "roformer": ("roformer/base_config.json", dict(rotary_value=True)),
    "ernie": ("ernie/3.0_base_config.json", dict(task_id=1)),
    # XLNet pretrains left to right here (its attn_type 'uni'); the permutation LM is not implemented
    "xlnet": ("xlnet/base_config.json", dict(mask="causal", tokenizer="bert")),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run on one thread (a second one only waits on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_config(family, **over):
    name, extra = FAMILIES[family]
    return uer_like.load_config(name, **dict(TINY, **extra, **over))


# ---------------------------------------------------------------------------------------------- NEZHA
def test_nezha_reproduces_the_reference_implementation_and_exports_to_its_layout(tmp_path):
    """transformers 4.46's NezhaForPreTraining made the fixture: every output within 1e-5 at every
    non-padding position (one row is longer than max_relative_position, so clipping is exercised); the
    export is the same directory layout, key names and shapes, and loads back to the same outputs."""
    src = need(os.path.join(NEZHA, "nezha_tiny"))
    io = np.load(os.path.join(NEZHA, "nezha_tiny_io.npz"))
    model = load_model(src).eval()
    assert model.config.position_scheme == "nezha" and "pos" not in model.config.embedding
    ids, tt, am = (torch.tensor(io[k]) for k in ("input_ids", "token_type_ids", "attention_mask"))
    assert int(am.sum(1).max()) > model.config.max_relative_position
    seg = (tt + 1) * am
    keep = am.bool()

    pos = torch.tensor(io["mlm_positions"])

    def outputs(m):
        with torch.no_grad():
            hidden = m.encode(ids, seg)
            pooled = torch.tanh(m.target.sp.linear_1(hidden[:, 0]))
            return m.embed(ids, seg), hidden, pooled, m.target.mlm.logits(hidden[:, pos]), m.target.sp.logits(hidden)

    emb, hidden, pooled, mlm, nsp = outputs(model)
    diffs = {"embedding": (emb - torch.tensor(io["embedding_output"]))[keep].abs().max(),
             "last_hidden_state": (hidden - torch.tensor(io["last_hidden_state"]))[keep].abs().max(),
             "pooler_output": (pooled - torch.tensor(io["pooler_output"])).abs().max(),
             "mlm_logits": (mlm - torch.tensor(io["mlm_logits"]))[keep[:, pos]].abs().max(),
             "nsp_logits": (nsp - torch.tensor(io["nsp_logits"])).abs().max()}
    for k, v in diffs.items():
        assert v <= 1e-5, (k, float(v))

    out = tmp_path / "export"
    save_model(model, str(out), format="hf")
    assert {"config.json", "model.safetensors", "vocab.txt"} <= set(os.listdir(out))
    from safetensors.torch import load_file

    ref, ours = load_file(os.path.join(src, "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    cfg_ref, cfg_out = (json.load(open(os.path.join(d, "config.json"))) for d in (src, str(out)))
    for k in ("model_type", "architectures", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_relative_position", "max_position_embeddings", "type_vocab_size", "vocab_size"):
        assert cfg_out[k] == cfg_ref[k], k
    again = outputs(load_model(str(out)).eval())
    for a, b in zip(again, (emb, hidden, pooled, mlm, nsp)):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("scheme", ["nezha", "rotary", "xlnet"])
def test_relative_scheme_with_absolute_positions_too_is_one_line_error(scheme):
    with pytest.raises(ConfigError) as e:
        uer_like.load_config("bert/base_config.json", position_scheme=scheme)
    msg = str(e.value)
    assert "\n" not in msg and f"position_scheme '{scheme}'" in msg and "remove 'pos'" in msg


def test_sequence_longer_than_a_position_table_is_one_line_error():
    for family in ("roformer", "ernie"):  # the rotary table, the learned position embedding
        model = uer_like.build_model(tiny_config(family, max_seq_length=16), vocab_size=50)
        src = torch.ones(1, 17, dtype=torch.long)
        with pytest.raises(DataError, match=r"17 tokens is longer than the .*max_seq_length 16") as e:
            model.encode(src, src)
        assert "\n" not in str(e.value)
        model.encode(src[:, :16], src[:, :16])
    # NEZHA clips distances: any length works
    nezha = uer_like.build_model(tiny_config("nezha", max_seq_length=16), vocab_size=50)
    nezha.encode(torch.ones(1, 40, dtype=torch.long), torch.ones(1, 40, dtype=torch.long))
    with pytest.raises(ConfigError, match="rotary position table"):
        uer_like.io.check_seq_length(tiny_config("roformer", max_seq_length=16), 32)


# ---------------------------------------------------------------------------------------------- pretraining
@pytest.fixture(scope="module")
def corpus_datasets(tmp_path_factory):
    """One MLM and one LM dataset of 64 documents of the bundled corpus, shared by the families, with a
    vocabulary of the characters they use (so the tiny models' time is not all in a 21,128-row embedding)."""
    d = tmp_path_factory.mktemp("family_data")
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()
    lines = [line for line in text.split("\n") if len(line) > 40][:64]
    chars = sorted({c for line in lines for c in line if not c.isspace()})
    vocab = str(d / "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n")
    corpus = "\n".join(lines) + "\n"
    mlm, _ = preprocess(str(d), corpus, name="mlm.bin", data_processor="mlm", seq_length=32, corpus_format="line",
                        dynamic_masking=True, vocab_path=vocab)
    lm, _ = preprocess(str(d), corpus, name="lm.bin", data_processor="lm", seq_length=32, corpus_format="line",
                       vocab_path=vocab)
    return {"mlm": mlm, "lm": lm, "vocab": vocab, "vocab_size": len(chars) + 5}


def read_losses(path):
    steps = {}
    for line in open(path):
        r = json.loads(line)
        steps[r["step"]] = r["loss"]
    return [steps[k] for k in sorted(steps)]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tiny_model_of_each_family_pretrains_on_the_bundled_corpus(family, corpus_datasets, tmp_path):
    """The family's release config, shrunk, trained 60 steps on 64 real documents: the loss falls below 93% of
    its first step's (~6.8, uniform over the ~900 characters they use; MLM reaches ~6.15, LM ~4.4), and the
    output loads back as the same family."""
    from uer_like.training.trainer import TrainArgs, Trainer

    cfg = tiny_config(family)
    data = corpus_datasets["lm" if "lm" in cfg.target else "mlm"]
    args = TrainArgs(dataset_path=data, config=FAMILIES[family][0], config_overrides=dict(TINY, **FAMILIES[family][1]),
                     total_steps=60, batch_size=16, learning_rate=5e-3, warmup=0.1, report_steps=20,
                     save_checkpoint_steps=1000, output_model_path=str(tmp_path / "m.bin"),
                     trace_path=str(tmp_path / "trace.jsonl"), seed=1, device="cpu")
    Trainer(args).train()
    losses = read_losses(tmp_path / "trace.jsonl")
    first, last = losses[0], sum(losses[-10:]) / 10
    assert last < first * 0.93, (family, first, last)
    again = load_model(str(tmp_path / "m.bin"))
    assert again.config.position_scheme == cfg.position_scheme and again.config.embedding == cfg.embedding
