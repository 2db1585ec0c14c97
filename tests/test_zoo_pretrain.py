"""pretrain.py with the model zoo: --output_format (UER, safetensors, a transformers directory) for the final
weights, and a pre-2021 flat config whose components are read off --pretrained_model_path."""
import json
import os

import pytest
import torch

import uer_like
from uer_like.training.trainer import TrainArgs, Trainer
from conftest import FIXTURES, SAMPLE_CORPUS, need
from helpers import preprocess

TEXT = open(SAMPLE_CORPUS, encoding="utf-8").read()[:60000]


@pytest.fixture(scope="module")
def mlm_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlm")
    return preprocess(str(d), TEXT, data_processor="mlm", seq_length=32, corpus_format="line",
                      dynamic_masking=True)[0]


def test_output_format_hf_is_a_directory_transformers_loads(mlm_dataset, tmp_path):
    transformers = pytest.importorskip("transformers")
    args = TrainArgs(dataset_path=mlm_dataset, config="roberta/tiny_config.json", total_steps=2, batch_size=4,
                     output_model_path=str(tmp_path / "m.bin"), output_format="hf", config_overrides={"layers_num": 1})
    t = Trainer(args)
    t.save_weights()  # what train() ends with
    out = tmp_path / "m"
    assert {"config.json", "model.safetensors", "vocab.txt"} <= set(os.listdir(out))
    hf = transformers.AutoModelForMaskedLM.from_pretrained(str(out)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    enc = tok(["今天天气很好，我们去公园散步。"], return_tensors="pt")
    model = t.model.eval()
    src = enc["input_ids"]
    with torch.no_grad():
        ours = model.target_logits(model.encode(src, torch.ones_like(src)))["mlm"]
        theirs = hf(**enc).logits
    # UER's layer norm exports with scaled gammas: transformers' standard layer norm then differs only by where
    # eps goes (relative eps / std); the exact gammas beside the weights bring the model back bit for bit
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)
    back = uer_like.load_model(str(out))
    assert back.config.layernorm == "normal"
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))


def test_output_format_safetensors(mlm_dataset, tmp_path):
    args = TrainArgs(dataset_path=mlm_dataset, config="roberta/tiny_config.json", total_steps=1, batch_size=4,
                     output_model_path=str(tmp_path / "m.bin"), output_format="safetensors",
                     config_overrides={"layers_num": 1})
    t = Trainer(args)
    t.save_weights()  # what train() ends with
    assert not (tmp_path / "m.bin").exists()
    back = uer_like.load_model(str(tmp_path / "m.safetensors"))
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), t.model.state_dict().values()))


def test_output_format_hf_refuses_a_model_without_a_family_at_start(mlm_dataset, tmp_path):
    from uer_like.errors import ConfigError

    args = TrainArgs(dataset_path=mlm_dataset, config="rnn/lstm_config.json", total_steps=1,
                     output_model_path=str(tmp_path / "m.bin"), output_format="hf")
    with pytest.raises(ConfigError, match="--output_format hf: encoder 'lstm'"):
        Trainer(args)


def test_flat_config_takes_its_components_from_the_pretrained_model(tmp_path):
    """A UER-py 2019-2020 style config (sizes only) with --pretrained_model_path: the model trained is the
    checkpoint's (GPT-2 here: causal, pre-LN, lm), read off its tensor names."""
    d = need(os.path.join(FIXTURES, "uer_2023"))
    ds, _ = preprocess(str(tmp_path), TEXT[:20000], data_processor="lm", seq_length=32, corpus_format="line")
    flat = {k: v for k, v in json.load(open(os.path.join(d, "gpt2_tiny_2023_config.json"))).items()
            if k in ("emb_size", "feedforward_size", "hidden_size", "hidden_act", "heads_num", "layers_num",
                     "max_seq_length", "dropout")}
    (tmp_path / "flat.json").write_text(json.dumps(flat))
    args = TrainArgs(dataset_path=ds, config=str(tmp_path / "flat.json"), total_steps=1, batch_size=2,
                     pretrained_model_path=os.path.join(d, "gpt2_tiny_2023.bin"),
                     output_model_path=str(tmp_path / "m.bin"))
    t = Trainer(args)
    c = t.config
    assert (c.embedding, c.mask, c.layernorm_positioning, c.target, c.tie_weights) == \
        (["word", "pos"], "causal", "pre", ["lm"], True)
    ref = uer_like.load_model(os.path.join(d, "gpt2_tiny_2023.bin"), os.path.join(d, "gpt2_tiny_2023_config.json"))
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), t.model.state_dict().values()))


def test_bilstm_bilm_config_pretrains_on_an_lm_dataset(tmp_path):
    """configs/rnn/bilstm_config.json is UER-py's (bilstm + bilm, data_processor bilm): an lm dataset feeds it,
    the collator deriving the next-token and previous-token targets."""
    from uer_like.training.batches import Collator
    from uer_like.data.dataset import Dataset

    ds, _ = preprocess(str(tmp_path), TEXT[:20000], data_processor="lm", seq_length=16, corpus_format="line")
    batch = Collator(Dataset(ds), ["bilm"], seed=1)([0, 1], 0)
    src, fwd, bwd = batch["src"][0], batch["tgt_forward"][0], batch["tgt_backward"][0]
    n = int((batch["seg"][0] > 0).sum())
    assert torch.equal(fwd[: n - 1], src[1:n]) and torch.equal(bwd[1:n], src[: n - 1]) and bwd[0] == 0
    args = TrainArgs(dataset_path=ds, config="rnn/bilstm_config.json", total_steps=2, batch_size=2,
                     output_model_path=str(tmp_path / "m.bin"), report_steps=1,
                     config_overrides={"emb_size": 16, "hidden_size": 32})
    t = Trainer(args)
    t.train()
    back = uer_like.load_model(str(tmp_path / "m.bin"))
    assert back.config.encoder == "bilstm" and back.config.target == ["bilm"]
    assert "encoder.rnn_backward.weight_hh_l1" in torch.load(tmp_path / "m.bin", weights_only=True)
