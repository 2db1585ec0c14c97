"""Configs: every shipped config builds, runs and round-trips; bad keys and values are clear errors."""
import json
import os

import pytest
import torch

import uer_like
from uer_like.config import list_configs, load_config
from uer_like.errors import ConfigError

SHRINK = dict(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=2, layers_num=2, max_seq_length=32)


def shrunk(name):
    return load_config(name, **shrink_overrides(name))


def shrink_overrides(name):
    cfg = load_config(name)
    over = dict(SHRINK)
    if cfg.factorized_embedding_parameterization:
        over["emb_size"] = 16
    if cfg.encoder != "transformer":
        over.pop("heads_num"), over.pop("feedforward_size")
    if "electra" in cfg.target:
        over.update(generator_hidden_size=16, generator_heads_num=1, generator_feedforward_size=32,
                    generator_layers_num=1)
    return over


def make_batch(model, cfg, vocab=200, B=3, S=16):
    g = torch.Generator().manual_seed(0)
    src = torch.randint(1, vocab, (B, S), generator=g)
    seg = torch.ones(B, S, dtype=torch.long)
    seg[:, S // 2:] = 2
    seg[0, -3:] = 0
    batch = {"src": src, "seg": seg}
    if "electra" in cfg.target:
        batch["electra_seed"] = 5
    if "mlm" in cfg.target or "electra" in cfg.target:
        batch["mlm_pos"] = torch.tensor([1, 5, S + 2, 2 * S + 7])
        batch["mlm_labels"] = torch.tensor([3, 4, 5, 6])
    if "pert" in cfg.target:  # permuted positions and the positions (in their rows) their tokens came from
        batch["mlm_pos"] = torch.tensor([1, 5, S + 2, S + 4, 2 * S + 7])
        batch["mlm_labels"] = torch.tensor([5, 1, 4, 2, 7])
    if "sp" in cfg.target:
        batch["tgt_sp"] = torch.tensor([0, 1, 0])
    if "lm" in cfg.target:
        batch["tgt_lm"] = torch.randint(1, vocab, (B, S), generator=g)
    if cfg.decoder is not None:  # an encoder-decoder model trains on its decoder's fields
        batch["tgt_in"] = torch.randint(1, vocab, (B, S // 2), generator=g)
        batch["tgt_out"] = torch.randint(1, vocab, (B, S // 2), generator=g)
        batch["tgt_seg"] = torch.ones(B, S // 2, dtype=torch.long)
        batch["tgt_seg"][1, -2:] = 0
    if "cls" in cfg.target:
        batch["tgt_cls"] = torch.tensor([0, 1, 1])
    if "bilm" in cfg.target:
        batch["tgt_forward"] = torch.randint(1, vocab, (B, S), generator=g)
        batch["tgt_backward"] = torch.randint(1, vocab, (B, S), generator=g)
    return batch


# configs/chinese_roberta holds 24 sizes of one generated shape (tests/test_zoo_configs.py): one stands for all
CONFIGS = [n for n in list_configs() if not n.startswith("chinese_roberta/") or n.endswith("/L-2_H-128_config.json")]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_builds_trains_and_round_trips(name, tmp_path):
    cfg = shrunk(name)
    model = uer_like.build_model(cfg, vocab_size=200)
    batch = make_batch(model, cfg)
    out = model(batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    path = tmp_path / "m.bin"
    uer_like.save_model(model, str(path), format="uer")
    loaded = uer_like.load_model(str(path))
    model.eval(), loaded.eval()
    with torch.no_grad():
        a = model.encode(batch["src"], batch["seg"])
        b = loaded.encode(batch["src"], batch["seg"])
    assert torch.equal(a, b)
    logits = loaded.target_logits(b, batch["seg"])
    assert set(logits) == set(cfg.target)


@pytest.fixture(scope="module")
def default_datasets(tmp_path_factory):
    """pretrain.py's default dataset (the bundled corpus, preprocessed as the config's data_processor says),
    made under a temporary directory instead of the checkout's .cache/; one per processor and options."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("pretrain_script", os.path.join(ROOT, "pretrain.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.HERE = str(tmp_path_factory.mktemp("default_datasets"))
    return script.default_dataset


# configs that cannot pretrain out of the box, each refused in one line (none today)
REFUSED_TO_PRETRAIN = {}


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_pretrains_a_step_on_the_default_dataset(name, default_datasets, tmp_path, one_torch_thread):
    """pretrain.py --config NAME with no --dataset_path: the bundled corpus prepared for the config (its
    data_processor) feeds one optimizer step of the shrunk model; or a one-line refusal naming the config."""
    from uer_like.errors import UerLikeError
    from uer_like.training.trainer import TrainArgs, train

    over = shrink_overrides(name)
    dataset = default_datasets(name, 32, False, over)
    args = TrainArgs(dataset_path=dataset, config=name, total_steps=1, batch_size=2, report_steps=1,
                     output_model_path=str(tmp_path / "m.bin"), config_overrides=over, precision="fp32")
    args.validate()
    if name in REFUSED_TO_PRETRAIN:
        with pytest.raises(UerLikeError) as e:
            train(args)
        assert "\n" not in str(e.value) and name in str(e.value) and REFUSED_TO_PRETRAIN[name] in str(e.value)
        return
    assert train(args) == 1
    loaded = uer_like.load_model(str(tmp_path / "m.bin"))
    assert loaded.config.target == load_config(name).target
    assert loaded.config.tokenizer == "bert"  # the bundled corpus is tokenized so: fine-tuning reads it so


def test_config_name_resolves_inside_configs_and_paths_work(tmp_path):
    a = load_config("bert/base_config.json")
    assert (a.layers_num, a.hidden_size, a.heads_num) == (12, 768, 12)
    p = tmp_path / "c.json"
    p.write_text(json.dumps(a.to_dict()))
    assert load_config(str(p)) == a


def test_unknown_key_names_it_and_the_valid_keys():
    with pytest.raises(ConfigError) as e:
        load_config("bert/tiny_config.json", hiden_size=3)
    msg = str(e.value)
    assert "'hiden_size'" in msg and "did you mean 'hidden_size'" in msg and "valid keys:" in msg


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError, match=r"'layers_num' must be an integer, got '2'"):
        load_config("bert/tiny_config.json", layers_num="2")


@pytest.mark.parametrize("key,value,choices", [
    ("encoder", "transfomer", "transformer"), ("mask", "full", "fully_visible"),
    ("hidden_act", "gelu2", "gelu_fast"), ("layernorm_positioning", "middle", "pre"),
])
def test_bad_choice_lists_valid_choices(key, value, choices):
    # a component's name (encoder, activation) is checked by the registry when the model is built
    with pytest.raises(ConfigError) as e:
        uer_like.build_model("bert/tiny_config.json", vocab_size=100, **{key: value})
    assert key in str(e.value) and repr(value) in str(e.value) or value in str(e.value)
    assert choices in str(e.value)


def test_bad_target_and_embedding_names():
    with pytest.raises(ConfigError, match="unknown target 'nsp'.*valid choices: .*mlm"):
        uer_like.build_model("bert/tiny_config.json", vocab_size=100, target=["mlm", "nsp"])
    with pytest.raises(ConfigError, match="unknown embedding 'position'"):
        uer_like.build_model("bert/tiny_config.json", vocab_size=100, embedding=["word", "position"])


def test_heads_must_divide_hidden():
    with pytest.raises(ConfigError, match="not divisible by heads_num"):  # the transformer encoder's own check
        uer_like.build_model("bert/tiny_config.json", vocab_size=100, heads_num=3)


def test_missing_config_lists_available():
    with pytest.raises(ConfigError, match="available: .*bert/base_config.json"):
        load_config("bert/huge_config.json")


def test_attention_is_masked_at_padding():
    cfg = shrunk("bert/tiny_config.json").replace(dropout=0.0)
    model = uer_like.build_model(cfg, vocab_size=100).eval()
    src = torch.randint(1, 100, (1, 10))
    seg = torch.tensor([[1] * 6 + [0] * 4])
    src2 = src.clone()
    src2[0, 6:] = 7  # change only the padding
    with torch.no_grad():
        a, b = model.encode(src, seg), model.encode(src2, seg)
    assert torch.allclose(a[0, :6], b[0, :6], atol=1e-6)


def test_causal_mask_hides_the_future():
    cfg = shrunk("gpt2/distil_config.json").replace(dropout=0.0)
    model = uer_like.build_model(cfg, vocab_size=100).eval()
    src = torch.randint(1, 100, (1, 10))
    src2 = src.clone()
    src2[0, 7] = (src[0, 7] + 1) % 100
    seg = torch.ones(1, 10, dtype=torch.long)
    with torch.no_grad():
        a, b = model.encode(src, seg), model.encode(src2, seg)
    assert torch.allclose(a[0, :7], b[0, :7], atol=1e-6) and not torch.allclose(a[0, 7], b[0, 7])


def test_tied_weights_share_storage():
    model = uer_like.build_model(shrunk("bert/tiny_config.json"), vocab_size=100)
    assert model.target.mlm.linear_2.weight is model.embedding.word.embedding.weight


def test_an_absurd_size_in_a_config_is_refused_before_building():
    """max_seq_length 10^12 used to be accepted, and building the position table then died of memory."""
    from uer_like.config import load_config
    from uer_like.errors import ConfigError

    for key in ("max_seq_length", "hidden_size", "layers_num"):
        with pytest.raises(ConfigError, match=rf"config key '{key}' is 1000000000000, above \d+: a typo"):
            load_config("bert/tiny_config.json", **{key: 10 ** 12})
