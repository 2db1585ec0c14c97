"""MPNet (io/families/mpnet.py): tiny random transformers MPNet models, saved with save_pretrained, load into
uer_like with the same hidden states and head logits (float32, 1e-5, padded batches of two lengths, the longer
past max_distance 128); exported back, transformers loads them with identical outputs and no missing or
unexpected keys; the shipped config exports too."""
import json

import pytest
import torch

import uer_like
from uer_like.errors import ConfigError

transformers = pytest.importorskip("transformers")

TOL = 1e-5
V = 99
PAD = 1  # transformers' MPNet padding_idx
SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=160, layer_norm_eps=1e-5)


def _cases():
    T = transformers
    return {
        "masked_lm": (lambda: T.MPNetForMaskedLM(T.MPNetConfig(**SMALL)), T.MPNetForMaskedLM, {"mlm": "logits"}),
        "masked_lm_untied": (lambda: T.MPNetForMaskedLM(T.MPNetConfig(tie_word_embeddings=False, **SMALL)),
                             T.MPNetForMaskedLM, {"mlm": "logits"}),
        "sequence_classification": (lambda: T.MPNetForSequenceClassification(T.MPNetConfig(num_labels=3, **SMALL)),
                                    T.MPNetForSequenceClassification, {"cls": "logits"}),
        "model_with_pooler": (lambda: T.MPNetModel(T.MPNetConfig(**SMALL)), T.MPNetModel,
                              {"pooler": "pooler_output"}),
    }


def _perturb(model, std=0.2):
    """Weights away from initialisation (every bias, layer norm and bucket bias non-trivial)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * std
            p.copy_(1.0 + noise) if "LayerNorm.weight" in name or "layer_norm.weight" in name else p.add_(noise)


def _batch(length):
    """ids (2..V-1: no padding_idx among real tokens), attention mask; the second row padded on the right."""
    g = torch.Generator().manual_seed(length)
    ids = torch.randint(2, V, (2, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, length * 2 // 3:] = 0
    ids[mask == 0] = PAD
    return ids, mask


def _out(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, output_hidden_states=True)


def _maxdiff(a, b, mask=None):
    if mask is not None and a.dim() >= 2 and a.shape[:2] == mask.shape:
        a, b = a[mask.bool()], b[mask.bool()]
    return (a - b).abs().max().item()


@pytest.mark.parametrize("case", list(_cases()))
def test_mpnet_parity_and_export(case, tmp_path):
    make, cls, heads = _cases()[case]
    torch.manual_seed(0)
    hf = make().eval()
    _perturb(hf)
    src = tmp_path / "hf"
    hf.save_pretrained(src)
    hf = cls.from_pretrained(src).eval()  # exactly what is on disk

    model = uer_like.load_model(str(src)).eval()
    c = model.config
    assert set(c.target) == set(heads)
    assert (c.position_scheme, c.relative_attention_buckets_num, c.position_offset, c.max_seq_length) == \
        ("relative_position_bucket", 32, 2, 158)
    assert c.tie_weights == (case != "masked_lm_untied")
    diffs = {}
    for length in (9, 150):  # 150: distances past max_distance 128 share the last buckets
        ids, mask = _batch(length)
        out = _out(hf, ids, mask)
        with torch.no_grad():
            hidden = model.encode(ids, mask)
            logits = model.target_logits(hidden, mask)
        diffs[f"hidden_{length}"] = _maxdiff(hidden, out.hidden_states[-1], mask)
        diffs[f"embedding_{length}"] = _maxdiff(model.embed(ids, mask), out.hidden_states[0], mask)
        for name, attr in heads.items():
            diffs[f"{name}_{length}"] = _maxdiff(logits[name], getattr(out, attr), mask)
    for k, v in diffs.items():
        assert v <= TOL, f"{case} {k}: max abs diff {v}"

    out_dir = tmp_path / "export"
    uer_like.save_model(model, str(out_dir), format="hf")
    cfg = json.loads((out_dir / "config.json").read_text())
    assert cfg["architectures"] == [cls.__name__] and cfg["model_type"] == "mpnet"
    again, info = cls.from_pretrained(out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids, mask = _batch(150)
    a, b = _out(hf, ids, mask), _out(again.eval(), ids, mask)
    for attr in heads.values():
        assert torch.equal(getattr(a, attr), getattr(b, attr)), attr
    assert torch.equal(a.hidden_states[-1], b.hidden_states[-1])
    back = uer_like.load_model(str(out_dir))
    for k, v in model.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k


@pytest.mark.parametrize("target", ["mlm", "cls"])
def test_shipped_config_exports_to_transformers(target, tmp_path):
    """configs/mpnet (the standard layer norm, position offset 2, 32 bidirectional buckets): a model built from
    it exports to a directory whose transformers MPNet computes the same logits."""
    torch.manual_seed(0)
    model = uer_like.build_model("mpnet/tiny_config.json", vocab_size=V, target=[target], hidden_size=32,
                                 emb_size=32, feedforward_size=48, heads_num=4, max_seq_length=64).eval()
    _perturb_ours(model)
    uer_like.save_model(model, str(tmp_path), format="hf")
    cls = transformers.MPNetForMaskedLM if target == "mlm" else transformers.MPNetForSequenceClassification
    hf, info = cls.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids, mask = _batch(40)
    with torch.no_grad():
        ours = model.target_logits(model.encode(ids, mask), mask)[target]
        theirs = hf.eval()(input_ids=ids, attention_mask=mask).logits
    assert _maxdiff(ours, theirs, mask) <= TOL


def _perturb_ours(model):
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)


def test_unsupported_settings_are_one_line_errors(tmp_path):
    hf = transformers.MPNetModel(transformers.MPNetConfig(relative_attention_num_buckets=64, **SMALL))
    hf.save_pretrained(tmp_path / "b64")
    with pytest.raises(ConfigError, match="relative_attention_num_buckets 64 is not supported"):
        uer_like.load_model(str(tmp_path / "b64"))
    causal = uer_like.build_model("mpnet/tiny_config.json", vocab_size=V, mask="causal", target=["lm"])
    with pytest.raises(ConfigError, match="exports to transformers' MPNet only with mask fully_visible") as e:
        uer_like.save_model(causal, str(tmp_path / "causal"), format="hf")
    assert "\n" not in str(e.value)
    other = uer_like.build_model("mpnet/tiny_config.json", vocab_size=V, relative_attention_buckets_num=16)
    with pytest.raises(ConfigError, match="relative_attention_buckets_num 32 and relative_attention_max_distance 128"):
        uer_like.save_model(other, str(tmp_path / "b16"), format="hf")


@pytest.mark.parametrize("task", ["classification", "multiple_choice"])
def test_fine_tuned_mpnet_to_transformers_task_classes_and_back(task, tmp_path):
    """A model fine-tuned from configs/mpnet exports to MPNetForSequenceClassification (RoBERTa's head) and
    MPNetForMultipleChoice (pooler + classifier) with the same logits, and imports back as the same files.
    (Token classification and question answering name their heads as every family does: test_hf_tasks.py.)"""
    from test_hf_tasks import AUTO, inputs, make, ours, theirs
    from uer_like.finetune import core
    from uer_like.io import hf_tasks

    cfg = uer_like.load_config("mpnet/tiny_config.json", layers_num=1)
    model, meta = make(task, cfg)
    _perturb_ours(model)
    path = str(tmp_path / "ft.bin")
    core.save_finetuned(model, path, meta)
    out = hf_tasks.export_finetuned(path, str(tmp_path / "hf"))
    hf = getattr(transformers, AUTO[task]).from_pretrained(out).eval()
    assert type(hf).__name__.startswith("MPNetFor")
    src, seg = inputs()
    a, b = ours(task, model, src, seg), theirs(task, hf, src, seg)
    keep = (seg > 0) if task in ("tagging", "mrc") else torch.ones(a.shape[:1], dtype=torch.bool)
    assert (a[keep] - b[keep]).abs().max() <= TOL
    back = hf_tasks.import_finetuned(out, str(tmp_path / "back.bin"))
    ref, got = torch.load(path, weights_only=True), torch.load(back, weights_only=True)
    assert sorted(ref) == sorted(got) and all(torch.equal(ref[k], got[k]) for k in ref)
