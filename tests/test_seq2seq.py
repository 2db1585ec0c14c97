"""Encoder-decoder models (decoder: transformer): Hugging Face BART, PEGASUS, T5, T5 v1.1 and mT5 directories
made by transformers, and UER-py's own T5 and BART checkpoints, load with their numbers; generation (greedy and
beam search, KV-cached) gives transformers' ids; exports load in transformers with the same logits; the code
paths that cannot run such a model refuse it in one line. Fixtures: ../shared/fixtures/seq2seq{,_uer}/README.md."""
import json
import os

import numpy as np
import pytest
import torch

import uer_like
from uer_like.config import load_config
from uer_like.errors import ConfigError, DataError
from uer_like.io.checkpoint import load_state_dict_file

HERE = os.path.dirname(os.path.abspath(__file__))
HF = os.path.join(HERE, "..", "..", "shared", "fixtures", "seq2seq")
UER = os.path.join(HERE, "..", "..", "shared", "fixtures", "seq2seq_uer")
NAMES = ["bart", "pegasus", "t5", "t5_v1_1", "mt5"]
# float32 noise: transformers' own float32 and float64 logits differ by up to 4.5e-5 for mt5 (its MADE_BY.md);
# measured here: 0 for bart, pegasus and t5, 7e-6 for t5_v1_1, 2.5e-5 for mt5
TOL = {"mt5": 5e-5, "t5_v1_1": 2e-5}  # float32 rounding through gated-gelu layers (the fixtures' bar: 2e-4)


@pytest.fixture(autouse=True)
def _fixtures_here():
    from conftest import need

    need(HF)
    need(UER)


@pytest.fixture(scope="module")
def models():
    return {}


def hf_model(models, name):
    if name not in models:
        models[name] = uer_like.load_model(os.path.join(HF, name)).eval()
    return models[name]


def reference(name):
    z = np.load(os.path.join(HF, name, "reference.npz"))
    with open(os.path.join(HF, name, "reference.json")) as f:
        return {k: torch.from_numpy(z[k]) for k in z}, json.load(f)


def forward(model, src, seg, tgt, tgt_seg):
    with torch.no_grad():
        enc = model.encode(src, seg)
        dec = model.decode(tgt, tgt_seg, model.memory(enc, seg))
        return enc, dec, model.target_logits(dec)["lm"]


@pytest.mark.parametrize("name", NAMES)
def test_hf_directory_gives_transformers_hidden_states_and_logits(models, name):
    m = hf_model(models, name)
    z, _ = reference(name)
    tgt = z["decoder_input_ids"]
    enc, dec, logits = forward(m, z["input_ids"], z["attention_mask"], tgt, torch.ones_like(tgt))
    tol = TOL.get(name, 1e-5)
    assert (enc - z["encoder_last_hidden_state"]).abs().max() <= tol
    assert (dec - z["decoder_last_hidden_state"]).abs().max() <= tol
    assert (logits[:, z["logit_positions"]] - z["logits"]).abs().max() <= tol


@pytest.mark.parametrize("name", NAMES)
def test_greedy_and_beam_search_give_transformers_ids(models, name):
    m = hf_model(models, name)
    _, ref = reference(name)
    sources = ref["sources"]  # four at once: right-padded together
    assert uer_like.generate(m, sources, 12, do_sample=False, eos_token_id=102) == ref["greedy"]["outputs"]
    assert uer_like.generate(m, sources, 12, num_beams=4, length_penalty=1.0, eos_token_id=102) == \
        ref["beam"]["outputs"]


@pytest.mark.parametrize("name", ["bart", "t5"])
def test_a_source_alone_gives_its_transformers_ids(models, name):
    # a batch of one source holds no padding: its decoding runs cross-attention without a mask; the ids are
    # transformers' for that source (made in a padded batch, where its padding keys had no weight)
    m = hf_model(models, name)
    _, ref = reference(name)
    for i, source in enumerate(ref["sources"][:3]):
        assert uer_like.generate(m, [source], 12, eos_token_id=102) == [ref["greedy"]["outputs"][i]]
        assert uer_like.generate(m, [source], 12, num_beams=4, eos_token_id=102) == [ref["beam"]["outputs"][i]]


@pytest.mark.parametrize("name", ["bart", "t5"])
def test_cached_decoding_equals_uncached(models, name):
    m = hf_model(models, name)
    _, ref = reference(name)
    sources = ref["sources"]
    cached, steps = uer_like.generate(m, sources, 12, return_logits=True)  # decoder start and eos: config.json's
    uncached, steps_u = uer_like.generate(m, sources, 12, return_logits=True, use_cache=False)
    assert cached == uncached == ref["greedy"]["outputs"]
    assert (steps - steps_u).abs().max() < 1e-4
    assert uer_like.generate(m, sources[:2], 12, num_beams=3, use_cache=False) == \
        uer_like.generate(m, sources[:2], 12, num_beams=3)


@pytest.mark.parametrize("name", ["bart", "pegasus", "t5", "mt5"])
def test_export_loads_in_transformers_with_the_same_logits(models, name, tmp_path):
    transformers = pytest.importorskip("transformers")
    m = hf_model(models, name)
    uer_like.save_model(m, str(tmp_path), format="hf")
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(tmp_path)).eval()
    z, _ = reference(name)
    with torch.no_grad():
        out = hf(input_ids=z["input_ids"], attention_mask=z["attention_mask"],
                 decoder_input_ids=z["decoder_input_ids"]).logits
    assert (out[:, z["logit_positions"]] - z["logits"]).abs().max() <= TOL.get(name, 1e-5)
    back = uer_like.load_model(str(tmp_path))
    assert back.config == m.config
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), m.state_dict().values()))
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["decoder_start_token_id"] == 101


@pytest.mark.parametrize("name", ["t5", "t5_v1_1"])
def test_t5_saved_by_transformers_5_loads(models, name, tmp_path):
    """transformers 5 writes every T5 config with tie_word_embeddings true and says with scale_decoder_outputs
    whether the head is tied (and scaled): v1.1 keeps its own lm_head.weight."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(os.path.join(HF, name))
    hf.save_pretrained(str(tmp_path))
    with open(tmp_path / "config.json") as f:
        cfg = json.load(f)
    m = uer_like.load_model(str(tmp_path)).eval()
    assert m.config.tie_weights == m.config.scale_decoder_output == cfg.get("scale_decoder_outputs", name == "t5")
    z, _ = reference(name)
    tgt = z["decoder_input_ids"]
    logits = forward(m, z["input_ids"], z["attention_mask"], tgt, torch.ones_like(tgt))[2]
    assert (logits[:, z["logit_positions"]] - z["logits"]).abs().max() <= 1e-5


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_uer_py_checkpoint_gives_uer_py_numbers(name, tmp_path):
    d = os.path.join(UER, name)
    m = uer_like.load_model(os.path.join(d, f"{name}.bin"), config=os.path.join(d, f"{name}_config.json")).eval()
    # UER-py ties the head to the decoder's embedding before sharing that with the encoder's: a head of its own
    assert m.target.lm.output_layer.weight is not m.embedding.word.embedding.weight
    assert m.tgt_embedding.word.embedding.weight is m.embedding.word.embedding.weight
    z = {k: torch.from_numpy(v) for k, v in np.load(os.path.join(d, "reference.npz")).items()}
    real, tgt_real = (z["seg"] > 0)[..., None], (z["tgt_seg"] > 0)[..., None]
    enc, dec, logits = forward(m, z["src"], z["seg"], z["tgt_in"], z["tgt_seg"])
    pos = z["logit_positions"]
    assert ((enc - z["encoder_output"]).abs() * real).max() <= 1e-5
    assert ((dec - z["decoder_output"]).abs() * tgt_real).max() <= 1e-5
    assert ((logits[:, pos] - z["logits"]).abs() * tgt_real[:, pos]).max() <= 1e-5
    with torch.no_grad():
        loss = m({k: z[k] for k in ("src", "seg", "tgt_in", "tgt_seg", "tgt_out")})["loss"]
    assert abs(loss.item() - z["lm_loss"].item()) <= 1e-5
    with pytest.raises(DataError, match="decoder 'transformer' needs batch field.s. tgt_out"):
        m({k: z[k] for k in ("src", "seg", "tgt_in", "tgt_seg")})  # a declared field missing: refused, not skipped
    # UER format back: the same key names as UER-py's file, the same model on reload
    out = uer_like.save_model(m, str(tmp_path / f"{name}.bin"))
    assert set(load_state_dict_file(out)) == set(load_state_dict_file(os.path.join(d, f"{name}.bin")))
    back = uer_like.load_model(out).eval()
    assert torch.equal(forward(back, z["src"], z["seg"], z["tgt_in"], z["tgt_seg"])[2], logits)
    # and generation from it: the decoder start is given (a UER config names none)
    with pytest.raises(ConfigError, match="decoder_start_token_id"):
        uer_like.generate(m, [[101, 2769, 102]], 3)
    assert len(uer_like.generate(m, [[101, 2769, 102]], 3, decoder_start_token_id=101)[0]) == 3


def test_code_paths_without_a_decoder_refuse_in_one_line(models, tmp_path):
    m = hf_model(models, "bart")
    with pytest.raises(ConfigError, match="does not handle encoder-decoder") as e:
        uer_like.score(m, [[101, 102]])
    assert "\n" not in str(e.value)
    from uer_like.finetune import core

    with pytest.raises(ConfigError, match="fine-tuning does not handle encoder-decoder"):
        core.load_backbone(os.path.join(HF, "bart"), None, 21128)
    with pytest.raises(ConfigError, match="fine-tuning does not handle encoder-decoder"):
        core.load_backbone(None, os.path.join(UER, "t5", "t5_config.json"), 21128)
    with pytest.raises(ConfigError, match="no decoder"):
        uer_like.generate(uer_like.build_model("gpt2/tiny_config.json", 100), [[1, 2]], 2, decoder_start_token_id=1)


def test_pretraining_an_encoder_decoder_config_on_an_encoder_dataset_is_refused(tmp_path):
    """UER-py's T5 config pretrains on a t5 dataset (tests/test_seq2seq_pretrain.py); an mlm dataset has no
    targets for its decoder: one line naming the field and the fix."""
    from helpers import preprocess
    from conftest import SAMPLE_CORPUS
    from uer_like.training.trainer import TrainArgs, Trainer

    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:20000]
    path, _ = preprocess(str(tmp_path), text[: text.rfind("\n\n") + 2], data_processor="mlm", seq_length=32,
                         corpus_format="line", dynamic_masking=True)
    args = TrainArgs(dataset_path=path, config=os.path.join(UER, "t5", "t5_config.json"), total_steps=1,
                     output_model_path=str(tmp_path / "m.bin"))
    with pytest.raises(DataError, match="decoder 'transformer' needs batch field 'tgt_in'.*--data_processor") as e:
        Trainer(args)
    assert "\n" not in str(e.value)


def test_config_checks():
    base = {"emb_size": 32, "hidden_size": 32, "heads_num": 2, "feedforward_size": 64, "layers_num": 1,
            "embedding": ["word", "pos"], "target": ["lm"]}
    with pytest.raises(ConfigError, match="tgt_embedding"):
        load_config({**base, "decoder": "transformer"})
    with pytest.raises(ConfigError, match="needs a decoder"):
        load_config({**base, "tgt_embedding": ["word", "pos"]})
    # the component names are checked when a model is built (uer_like.modules.check_config)
    with pytest.raises(ConfigError, match="unknown decoder 'lstm'.*valid choices: .*transformer"):
        uer_like.build_model({**base, "decoder": "lstm", "tgt_embedding": ["word"]}, 50)
    with pytest.raises(ConfigError, match="'tgt_embedding': unknown embedding 'position'; valid choices: pos"):
        uer_like.build_model({**base, "decoder": "transformer", "tgt_embedding": ["word", "position"]}, 50)
    c = load_config({**base, "decoder": "transformer", "tgt_embedding": "word_pos", "decoder_layers_num": 3,
                     "attention_head_size": 8})
    m = uer_like.build_model(c, 50)
    assert c.tgt_embedding == ["word", "pos"] and len(m.decoder.transformer_decoder) == 3
    assert m.decoder.transformer_decoder[0].context_attn.qkv.weight.shape == (3 * 2 * 8, 32)


def test_pegasus_with_uer_py_interleaved_position_table(tmp_path):
    """UER-py's converter writes its interleaved sin/cos table as embed_positions.weight, and transformers
    computes with the stored table: the loader takes the layout the file holds, and refuses any other."""
    import shutil

    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file, save_file

    from uer_like.errors import CheckpointError
    from uer_like.io.uer import sinusoidal_table

    for f in ("config.json", "vocab.txt"):
        shutil.copyfile(os.path.join(HF, "pegasus", f), tmp_path / f)
    state = load_file(os.path.join(HF, "pegasus", "model.safetensors"))
    cfg = load_config({"emb_size": 64, "hidden_size": 64, "heads_num": 4, "max_seq_length": 64,
                       "embedding": ["word", "sinusoidalpos_2019"]})
    for side in ("encoder", "decoder"):
        state[f"model.{side}.embed_positions.weight"] = sinusoidal_table(cfg)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    m = uer_like.load_model(str(tmp_path)).eval()
    assert m.config.embedding == m.config.tgt_embedding == ["word", "sinusoidalpos_2019"]
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(tmp_path)).eval()
    z, _ = reference("pegasus")
    with torch.no_grad():
        want = hf(input_ids=z["input_ids"], attention_mask=z["attention_mask"],
                  decoder_input_ids=z["decoder_input_ids"]).logits
    tgt = z["decoder_input_ids"]
    got = forward(m, z["input_ids"], z["attention_mask"], tgt, torch.ones_like(tgt))[2]
    assert (got - want).abs().max() <= 1e-5
    assert (want[:, z["logit_positions"]] - z["logits"]).abs().max() > 1e-2  # the table matters
    state["model.encoder.embed_positions.weight"] = state["model.encoder.embed_positions.weight"] * 2
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="neither transformers' sinusoidal table"):
        uer_like.load_model(str(tmp_path))


@pytest.mark.parametrize("name,tol", [("t5", 1e-5), ("bart", 2e-3)])
def test_uer_py_checkpoint_exports_to_transformers(name, tol, tmp_path):
    """UER-py's T5 exports exactly; its BART as UER-py's converter writes it (two zero position rows, an untied
    head with the embed_tokens copies transformers 5 then needs), its UER layer norms with scaled gammas: equal up
    to where the layer-norm eps goes (measured 5.7e-4 on logits of magnitude 0.8); reloaded, exact."""
    transformers = pytest.importorskip("transformers")
    d = os.path.join(UER, name)
    m = uer_like.load_model(os.path.join(d, f"{name}.bin"), config=os.path.join(d, f"{name}_config.json")).eval()
    uer_like.save_model(m, str(tmp_path), format="hf", vocab=os.path.join(d, "vocab.txt"))
    hf, info = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    z = {k: torch.from_numpy(v) for k, v in np.load(os.path.join(d, "reference.npz")).items()}
    pos = z["logit_positions"]
    real = (z["tgt_seg"] > 0)[:, pos][..., None]
    with torch.no_grad():
        got = hf.eval()(input_ids=z["src"], attention_mask=(z["seg"] > 0).long(),
                        decoder_input_ids=z["tgt_in"]).logits[:, pos]
    assert ((got - z["logits"]).abs() * real).max() <= tol
    back = uer_like.load_model(str(tmp_path)).eval()
    assert ((forward(back, z["src"], z["seg"], z["tgt_in"], z["tgt_seg"])[2][:, pos] - z["logits"]).abs()
            * real).max() <= 1e-5


@pytest.mark.parametrize("name", ["bart", "t5"])
def test_the_training_loss_counts_targets_of_id_0_as_transformers_does(models, name):
    # a target token of id 0 (BART's <s> in the English vocabulary, which its labels begin with) is a token to
    # predict: the loss is transformers' with labels -100 only where tgt_seg marks padding (before: every id 0
    # was taken for padding and dropped from the loss)
    import transformers

    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(os.path.join(HF, name)).eval()
    model = hf_model(models, name)
    g = torch.Generator().manual_seed(3)
    src = torch.randint(100, 1000, (2, 7), generator=g)
    tgt_in = torch.randint(100, 1000, (2, 6), generator=g)
    labels = torch.randint(100, 1000, (2, 6), generator=g)
    labels[:, 0] = 0  # id 0 as the first target of both rows
    labels[0, 3] = 0
    tgt_seg = torch.ones(2, 6, dtype=torch.long)
    tgt_seg[1, 4:] = 0  # the second target is shorter: two padded positions
    tgt_in[1, 4:] = hf.config.pad_token_id
    with torch.no_grad():
        want = hf(input_ids=src, attention_mask=torch.ones_like(src), decoder_input_ids=tgt_in,
                  decoder_attention_mask=tgt_seg, labels=labels.masked_fill(tgt_seg == 0, -100)).loss
        out = model({"src": src, "seg": torch.ones_like(src), "tgt_in": tgt_in, "tgt_seg": tgt_seg,
                     "tgt_out": labels.masked_fill(tgt_seg == 0, 0)})
    assert int(out["lm"]["count"]) == 10
    assert abs(out["loss"].item() - want.item()) < 1e-5, (out["loss"].item(), want.item())
