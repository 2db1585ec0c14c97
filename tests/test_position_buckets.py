"""position_scheme 'relative_position_bucket' (layers/positions/bucket.py): T5's bucketing, bit for bit against
transformers' T5; a transformer with it computes what transformers' T5 encoder (bidirectional buckets) and
T5 decoder stack (causal buckets) compute; one table for all layers, its bias computed once per forward; UER-py's
config spelling; pretraining a few steps; generation with a key/value cache equals without (more cached decoding:
tests/test_decoding_cache.py)."""
import json

import pytest
import torch

import uer_like
from uer_like.errors import ConfigError
from uer_like.layers.positions.bucket import RelativePositionBias, relative_position_bucket

transformers = pytest.importorskip("transformers")

TOL = 1e-5
V = 99


@pytest.mark.parametrize("bidirectional", [True, False])
def test_bucket_function_equals_t5(bidirectional):
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = torch.arange(-600, 601)[None, :] + torch.tensor([[0], [3]])  # two rows, distances -600..603
    settings = [(32, 128), (32, 20), (8, 12), (9, 40), (64, 256), (16, 500)]
    settings += [(4, 2), (6, 3), (7, 2)] if bidirectional else [(2, 2), (5, 7), (6, 4)]
    for buckets, distance in settings:  # every setting the config check allows: max_distance > exact buckets
        assert distance > buckets // (4 if bidirectional else 2)
        ours = relative_position_bucket(rel, bidirectional, buckets, distance)
        theirs = T5Attention._relative_position_bucket(rel, bidirectional=bidirectional, num_buckets=buckets,
                                                       max_distance=distance)
        assert torch.equal(ours, theirs), (buckets, distance)
        assert 0 <= int(ours.min()) and int(ours.max()) < buckets
    # MPNet's own copy (bidirectional, 32 buckets, 128) is the same function
    if bidirectional:
        from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

        assert torch.equal(relative_position_bucket(rel), MPNetEncoder.relative_position_bucket(rel))


def _t5_config(**kw):
    return transformers.T5Config(vocab_size=V, d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=3,
                                 relative_attention_num_buckets=kw.pop("buckets", 16),
                                 relative_attention_max_distance=kw.pop("distance", 20), dropout_rate=0.0,
                                 feed_forward_proj="relu", layer_norm_epsilon=1e-6, **kw)


def _uer_like_t5(stack, hf, causal):
    """A uer_like model that is transformers' T5 stack `stack` (T5's layers: pre-LN RMS norms, no biases, no
    scaling, relu), its weights copied over by name."""
    model = uer_like.build_model(
        "bert/tiny_config.json", vocab_size=V, emb_size=32, hidden_size=32, heads_num=4, feedforward_size=48,
        layers_num=3, dropout=0.0, embedding=["word"], remove_embedding_layernorm=True, layernorm_positioning="pre",
        layernorm="t5", layernorm_eps=1e-6, remove_attention_scale=True, remove_transformer_bias=True,
        hidden_act="relu", mask="causal" if causal else "fully_visible", target=["lm"],
        position_scheme="relative_position_bucket", relative_attention_buckets_num=hf.relative_attention_num_buckets,
        relative_attention_max_distance=hf.relative_attention_max_distance).eval()
    s = stack.state_dict()
    new = {"embedding.word.embedding.weight": s["embed_tokens.weight"], "encoder.layer_norm.weight":
           s["final_layer_norm.weight"], "encoder.relative_pos_emb.relative_attention_bias.weight":
           s["block.0.layer.0.SelfAttention.relative_attention_bias.weight"]}
    for i in range(3):
        b, e = f"block.{i}.layer", f"encoder.transformer.{i}"
        a = f"{b}.0.SelfAttention"
        ff = f"{b}.{2 if causal else 1}"  # a decoder block has cross-attention at 1 (unused without encoder states)
        new[f"{e}.self_attn.qkv.weight"] = torch.cat([s[f"{a}.{n}.weight"] for n in "qkv"])
        new[f"{e}.self_attn.final_linear.weight"] = s[f"{a}.o.weight"]
        new[f"{e}.layer_norm_1.weight"] = s[f"{b}.0.layer_norm.weight"]
        new[f"{e}.feed_forward.linear_1.weight"] = s[f"{ff}.DenseReluDense.wi.weight"]
        new[f"{e}.feed_forward.linear_2.weight"] = s[f"{ff}.DenseReluDense.wo.weight"]
        new[f"{e}.layer_norm_2.weight"] = s[f"{ff}.layer_norm.weight"]
    missing = set(model.state_dict()) - set(new) - {"target.lm.output_layer.weight"}
    assert not missing, missing
    model.load_state_dict(new, strict=False)
    return model


def _perturb(model):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("causal", [False, True], ids=["t5_encoder_bidirectional", "t5_decoder_causal"])
def test_transformer_with_buckets_equals_transformers_t5(causal):
    """T5's encoder (bidirectional buckets) and its decoder stack without encoder states (causal buckets, causal
    mask): equal hidden states; the bias table is block 0's, used by every block, as here. Two lengths, the
    longer one reaching the logarithmic and the clamped buckets (16 buckets, max_distance 20)."""
    from transformers.models.t5.modeling_t5 import T5Stack

    torch.manual_seed(0)
    hf = _t5_config(is_decoder=causal, use_cache=False)
    stack = T5Stack(hf).eval()
    _perturb(stack)
    model = _uer_like_t5(stack, hf, causal)
    g = torch.Generator().manual_seed(1)
    for length in (7, 41):
        ids = torch.randint(1, V, (2, length), generator=g)
        mask = torch.ones_like(ids)
        if not causal:
            mask[1, length - 3:] = 0  # padding on the right
        with torch.no_grad():
            theirs = stack(input_ids=ids, attention_mask=mask).last_hidden_state
            ours = model.encode(ids, mask)
        real = mask.bool()
        diff = (ours - theirs)[real].abs().max().item()
        assert diff <= TOL * theirs[real].abs().max().item(), (length, diff)


def test_one_table_for_all_layers_and_one_bias_per_forward():
    model = uer_like.build_model("roberta/tiny_config.json", vocab_size=V, layers_num=3,
                                 position_scheme="relative_position_bucket").eval()
    keys = [k for k in model.state_dict() if "relative" in k]
    assert keys == ["encoder.relative_pos_emb.relative_attention_bias.weight"]
    assert tuple(model.state_dict()[keys[0]].shape) == (32, model.config.heads_num)
    assert all(not list(layer.self_attn.scheme.parameters()) for layer in model.encoder.transformer)
    calls = []
    model.encoder.relative_pos_emb.register_forward_hook(lambda *a: calls.append(1))
    src = torch.randint(1, V, (2, 9))
    with torch.no_grad():
        base = model.encode(src, torch.ones_like(src))
        with torch.no_grad():  # the table is used: changing one bucket's bias changes the output
            model.encoder.relative_pos_emb.relative_attention_bias.weight[0].add_(1.0)
        changed = model.encode(src, torch.ones_like(src))
    assert len(calls) == 2
    assert (base - changed).abs().max() > 1e-3


def test_bias_uses_the_context_positions_not_columns():
    """The bias is a function of key position - query position: shifting every position by the same amount
    changes nothing (no absolute position embedding here), and explicit positions are what it sees."""
    model = uer_like.build_model("bert/tiny_config.json", vocab_size=V, embedding=["word", "seg"],
                                 position_scheme="relative_position_bucket", mask="causal", target=["lm"]).eval()
    src = torch.randint(1, V, (2, 8))
    seg = torch.ones_like(src)
    pos = torch.arange(8)[None]
    with torch.no_grad():
        a = model.encode(src, seg)
        b = model.encode(src, seg, positions=pos + 50)
        c = model.encode(src, seg, positions=pos * 3)  # other distances
    assert (a - b).abs().max() < 1e-5
    assert (a - c).abs().max() > 1e-3


def test_bidirectional_follows_the_mask_unless_given():
    bias = RelativePositionBias
    cfg = uer_like.load_config("bert/tiny_config.json", position_scheme="relative_position_bucket")
    assert bias(cfg).bidirectional
    assert not bias(cfg.replace(mask="causal", target=["lm"])).bidirectional
    assert bias(cfg.replace(mask="causal", target=["lm"], relative_attention_bidirectional=True)).bidirectional


def test_bad_bucket_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="relative_attention_buckets_num' must be at least 4"):
        uer_like.build_model(vocab_size=100, config="bert/tiny_config.json", position_scheme="relative_position_bucket",
                             relative_attention_buckets_num=3)
    with pytest.raises(ConfigError, match="relative_attention_max_distance' \\(8\\) must exceed the 8"):
        uer_like.build_model(vocab_size=100, config="bert/tiny_config.json", position_scheme="relative_position_bucket",
                             relative_attention_buckets_num=32, relative_attention_max_distance=8)
    with pytest.raises(ConfigError, match="needs encoder 'transformer'"):
        uer_like.build_model(vocab_size=100, config="rnn/lstm_config.json", position_scheme="relative_position_bucket")


def test_uer_py_spelling(tmp_path):
    """UER-py's `relative_position_embedding: true` + `relative_attention_buckets_num` (its T5 configs' keys):
    the bucket scheme with UER-py's bidirectional encoder buckets; with scaled scores (UER-py scales the bias
    too) a one-line refusal."""
    d = {"emb_size": 32, "hidden_size": 32, "feedforward_size": 64, "heads_num": 4, "layers_num": 2,
         "embedding": ["word"], "remove_embedding_layernorm": True, "encoder": "transformer", "mask": "causal",
         "target": ["lm"], "relative_position_embedding": True, "relative_attention_buckets_num": 16,
         "remove_attention_scale": True, "layernorm": "t5", "layernorm_positioning": "pre"}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    cfg = uer_like.load_config(str(p))
    assert (cfg.position_scheme, cfg.relative_attention_buckets_num, cfg.relative_attention_bidirectional) == \
        ("relative_position_bucket", 16, True)
    assert uer_like.load_config(str(p), relative_position_embedding=False).position_scheme == "absolute"
    p.write_text(json.dumps(dict(d, remove_attention_scale=False)))
    with pytest.raises(ConfigError, match="relative_position_embedding true with scaled attention") as e:
        uer_like.load_config(str(p))
    assert "\n" not in str(e.value)
    p.write_text(json.dumps(dict(d, position_scheme="rotary")))
    with pytest.raises(ConfigError, match="contradicts position_scheme 'rotary'"):
        uer_like.load_config(str(p))


@pytest.mark.parametrize("mask", ["fully_visible", "causal"])
def test_pretrains_a_few_steps_and_saves(mask, tmp_path, one_torch_thread):
    """pretrain on the bundled corpus: the shipped MPNet config (masked LM) and a causal LM with causal buckets;
    the loss is finite, the shared table is trained, and the saved model loads back equal."""
    from conftest import SAMPLE_CORPUS
    from helpers import preprocess
    from uer_like.training.trainer import TrainArgs, Trainer

    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:20000]
    proc = "mlm" if mask == "fully_visible" else "lm"
    ds = preprocess(str(tmp_path), text, data_processor=proc, seq_length=32, corpus_format="line",
                    **({"dynamic_masking": True} if proc == "mlm" else {}))[0]
    over = dict(layers_num=2, hidden_size=32, emb_size=32, heads_num=4, feedforward_size=64)
    if mask == "causal":
        over.update(mask="causal", target=["lm"], data_processor="lm", relative_attention_buckets_num=8,
                    relative_attention_max_distance=16)
    out = tmp_path / "m.bin"
    args = TrainArgs(dataset_path=ds, config="mpnet/tiny_config.json", total_steps=3, batch_size=4,
                     report_steps=1, output_model_path=str(out), config_overrides=over, precision="fp32",
                     learning_rate=1e-3, warmup=0.0)
    t = Trainer(args)
    table = t.model.encoder.relative_pos_emb.relative_attention_bias.weight.detach().clone()
    assert t.train() == 3
    trained = t.model.encoder.relative_pos_emb.relative_attention_bias.weight
    assert (trained - table).abs().max() > 1e-5  # the shared table is trained
    model = uer_like.load_model(str(out))
    assert (model.config.position_scheme, model.config.mask) == ("relative_position_bucket", mask)
    for k, v in t.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


def test_generation_with_a_cache_equals_without():
    """uer_like.generate on a causal LM with causal buckets: left-padded prompts of different lengths, greedy
    and beam search, with and without the key/value cache: the same tokens and (greedy) the same logits."""
    torch.manual_seed(0)
    model = uer_like.build_model("gpt2/mini_config.json", vocab_size=V, layers_num=2, hidden_size=32, emb_size=32,
                                 heads_num=4, feedforward_size=64, embedding=["word"],
                                 position_scheme="relative_position_bucket", relative_attention_buckets_num=8,
                                 relative_attention_max_distance=10).eval()
    _perturb(model)
    prompts = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [20, 21, 22, 23]]
    cached, logits_a = uer_like.generate(model, prompts, 12, return_logits=True)
    plain, logits_b = uer_like.generate(model, prompts, 12, use_cache=False, return_logits=True)
    assert cached == plain
    assert (logits_a - logits_b).abs().max() < 1e-4
    assert uer_like.generate(model, prompts, 8, num_beams=3) == uer_like.generate(model, prompts, 8, num_beams=3,
                                                                                     use_cache=False)
