"""Hugging Face parity: a model made at random by transformers and saved with save_pretrained loads into
uer_like with the same hidden states and head logits, and exporting it back gives a directory transformers
loads with identical outputs. Float32, tolerance 1e-5."""
import json
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

from uer_like.io import load_model, save_model  # noqa: E402

TOL = 1e-5
V = 99
SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
MAX_DIFFS = {}


def _inputs(pad_id=0, pairs=True, left=False):
    """ids, attention mask, token types; `left`: XLNet's layout (padding on the left, <cls> last in its own
    token type 2)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(9, V, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    tt = torch.zeros_like(ids)
    if left:
        mask[1, :3] = 0
        mask[2, :6] = 0
        tt[0, 7:] = 1
        tt[1, 8:] = 1
        tt[:, -1] = 2
    else:
        mask[1, 9:] = 0
        mask[2, 6:] = 0
        if pairs:
            tt[0, 7:] = 1
            tt[1, 5:9] = 1
    ids[mask == 0] = pad_id
    return ids, mask, tt


def _maxdiff(a, b, mask=None):
    if mask is not None:
        keep = mask.bool()
        a, b = a[keep], b[keep]
    return (a.float() - b.float()).abs().max().item()


def _family_cases():
    T = transformers
    return {
        "bert": (lambda: T.BertForPreTraining(T.BertConfig(**SMALL)), T.BertForPreTraining,
                 {"mlm": "prediction_logits", "sp": "seq_relationship_logits"}),
        "bert_untied_head": (lambda: T.BertForMaskedLM(T.BertConfig(tie_word_embeddings=False, **SMALL)),
                             T.BertForMaskedLM, {"mlm": "logits"}),
        "bert_sequence_classification": (
            lambda: T.BertForSequenceClassification(T.BertConfig(num_labels=3, **SMALL)),
            T.BertForSequenceClassification, {"cls": "logits"}),
        "roberta": (lambda: T.RobertaForMaskedLM(T.RobertaConfig(type_vocab_size=1, **SMALL)), T.RobertaForMaskedLM,
                    {"mlm": "logits"}),
        "roberta_sequence_classification": (
            lambda: T.RobertaForSequenceClassification(T.RobertaConfig(num_labels=4, type_vocab_size=1, **SMALL)),
            T.RobertaForSequenceClassification, {"cls": "logits"}),
        "albert": (lambda: T.AlbertForPreTraining(T.AlbertConfig(embedding_size=16, **SMALL)), T.AlbertForPreTraining,
                   {"mlm": "prediction_logits", "sp": "sop_logits"}),
        "gpt2": (lambda: T.GPT2LMHeadModel(T.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                                        bos_token_id=0, eos_token_id=0)),
                 T.GPT2LMHeadModel, {"lm": "logits"}),
        "electra_discriminator": (lambda: T.ElectraForPreTraining(T.ElectraConfig(embedding_size=16, **SMALL)),
                                  T.ElectraForPreTraining, {"electra_disc": "logits"}),
        "electra_generator": (lambda: T.ElectraForMaskedLM(T.ElectraConfig(embedding_size=16, **SMALL)),
                              T.ElectraForMaskedLM, {"electra_gen": "logits"}),
        "ernie_task_id": (lambda: T.ErnieForPreTraining(T.ErnieConfig(use_task_id=True, **SMALL)),
                          T.ErnieForPreTraining, {"mlm": "prediction_logits", "sp": "seq_relationship_logits"}),
        "roformer": (lambda: T.RoFormerForMaskedLM(T.RoFormerConfig(embedding_size=16, rotary_value=True, **SMALL)),
                     T.RoFormerForMaskedLM, {"mlm": "logits"}),
        "xlnet": (lambda: T.XLNetLMHeadModel(T.XLNetConfig(**XLNET_SMALL)), T.XLNetLMHeadModel, {"lm": "logits"}),
        "xlnet_sequence_classification": (
            lambda: T.XLNetForSequenceClassification(T.XLNetConfig(num_labels=3, **XLNET_SMALL)),
            T.XLNetForSequenceClassification, {"cls": "logits"}),
    }


XLNET_SMALL = dict(vocab_size=V, d_model=32, n_layer=2, n_head=4, d_inner=37, ff_activation="gelu")


def _perturb(model, std=0.1):
    """Weights further from initialisation than transformers' std 0.02 (closer to trained models' scale, and
    every bias and layer norm away from 0/1), so that parity is not won by tiny numbers."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:  # RoFormer's rotary table: a function of the config
                continue
            noise = torch.randn(p.shape, generator=g) * std
            if "LayerNorm.weight" in name or "layer_norm.weight" in name or ".ln_" in name and name.endswith("weight"):
                p.copy_(1.0 + noise)
            else:
                p.add_(noise)


def _hf_forward(model, family, ids, mask, tt, **kw):
    with torch.no_grad():
        if family == "gpt2":
            return model(input_ids=ids, output_hidden_states=True)
        return model(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True, **kw)


@pytest.mark.parametrize("family", list(_family_cases()))
def test_family_parity_and_export(family, tmp_path):
    make, cls, heads = _family_cases()[family]
    torch.manual_seed(0)
    hf_model = make().eval()
    _perturb(hf_model)
    src = tmp_path / "hf"
    hf_model.save_pretrained(src)
    hf_model = cls.from_pretrained(src).eval()  # exactly what is on disk

    model = load_model(str(src)).eval()
    assert set(model.config.target) == set(heads)
    pad = {"roberta": 1, "xlnet": 5}.get(family.split("_")[0], 0)
    causal = family == "gpt2"
    ids, mask, tt = _inputs(pad_id=pad, pairs=not family.startswith(("roberta", "gpt2")), left=family.startswith("xlnet"))
    if family == "bert_untied_head":
        assert not model.config.tie_weights
        assert model.target.mlm.linear_2.weight is not model.embedding.word.embedding.weight
    if causal:
        mask = torch.ones_like(ids)  # GPT-2: unpadded input
    seg = (tt + 1) * mask
    out = _hf_forward(hf_model, family, ids, mask, tt)
    with torch.no_grad():
        emb = model.embed(ids, seg)
        hidden = model.encode(ids, seg)
        logits = model.target_logits(hidden, seg)
    diffs = {"hidden": _maxdiff(hidden, out.hidden_states[-1], mask)}
    if family.startswith(("bert", "roberta", "ernie")):  # ALBERT/ELECTRA hidden_states[0] is after the projection
        diffs["embedding"] = _maxdiff(emb, out.hidden_states[0], mask)
    for name, attr in heads.items():
        ours, theirs = logits[name], getattr(out, attr)
        diffs[name] = _maxdiff(ours, theirs, mask if ours.dim() >= 2 and ours.shape[:2] == mask.shape else None)
    for k, v in diffs.items():
        assert v <= TOL, f"{family} {k}: max abs diff {v}"

    # export and load back with transformers: AutoModel and the task class
    out_dir = tmp_path / "export"
    save_model(model, str(out_dir), format="hf")
    cfg = json.loads((out_dir / "config.json").read_text())
    assert cfg["architectures"] == [cls.__name__]
    re_task, info = cls.from_pretrained(out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    out2 = _hf_forward(re_task.eval(), family, ids, mask, tt)
    for name, attr in heads.items():
        d = _maxdiff(getattr(out2, attr), getattr(out, attr))
        diffs[f"export_{name}"] = d
        assert d == 0.0, f"{family} exported {name} differs by {d}"
    auto_a = transformers.AutoModel.from_pretrained(src).eval()
    auto_b = transformers.AutoModel.from_pretrained(out_dir).eval()
    with torch.no_grad():
        kw = {} if causal else {"attention_mask": mask, "token_type_ids": tt}
        a, b = auto_a(input_ids=ids, **kw), auto_b(input_ids=ids, **kw)
    diffs["export_automodel"] = _maxdiff(a.last_hidden_state, b.last_hidden_state)
    assert diffs["export_automodel"] == 0.0
    # and the exported directory loads into uer_like again, identically
    again = load_model(str(out_dir))
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    if family == "ernie_task_id":  # another task type (config task_id, kept in config.json by the export)
        cfg.setdefault("uer_like", {})["task_id"] = 2
        (out_dir / "config.json").write_text(json.dumps(cfg))
        task2 = load_model(str(out_dir)).eval()
        assert task2.config.task_id == 2
        ref = _hf_forward(hf_model, family, ids, mask, tt, task_type_ids=torch.full_like(ids, 2))
        with torch.no_grad():
            hidden2 = task2.encode(ids, seg)
        diffs["task_id_2"] = _maxdiff(hidden2, ref.hidden_states[-1], mask)
        assert diffs["task_id_2"] <= TOL and _maxdiff(hidden2, hidden, mask) > 1e-3
    MAX_DIFFS[family] = diffs
    report = os.environ.get("UER_LIKE_PARITY_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps({family: diffs}) + "\n")


UER_CASES = {
    # uer_like config name -> (HF class expected, overrides)
    "bert/tiny": ("BertForPreTraining", {}),
    "roberta/base": ("BertForMaskedLM", {}),  # UER's Chinese RoBERTa: BERT architecture
    "albert/base": ("AlbertForPreTraining", {"emb_size": 16}),
    "gpt2/base": ("GPT2LMHeadModel", {}),
    "ernie/3.0_base": ("ErnieForMaskedLM", {"task_id": 2}),
    "xlnet/base": ("XLNetLMHeadModel", {}),
}


@pytest.mark.parametrize("name", list(UER_CASES))
def test_uer_model_exports_with_identical_outputs(name, tmp_path):
    """uer_like -> HF: a model built from the project's configs (with the standard layer norm) exports to a
    directory whose transformers model computes the same hidden states and logits."""
    from uer_like.model import build_model

    arch, extra = UER_CASES[name]
    overrides = dict(vocab_size=V, hidden_size=32, emb_size=32, feedforward_size=37, heads_num=4, layers_num=2,
                     max_seq_length=64, layernorm="torch", layernorm_eps=1e-12)
    overrides.update(extra)
    torch.manual_seed(0)
    model = build_model(name, **overrides).eval()
    _perturb_uer(model)
    save_model(model, str(tmp_path / "hf"), format="hf")
    cls = getattr(transformers, arch)
    hf, info = cls.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    hf.eval()
    causal = model.config.mask == "causal"
    ids, mask, tt = _inputs(pairs=not causal)
    if causal:
        mask = torch.ones_like(ids)
    seg = (tt + 1) * mask
    with torch.no_grad():
        ours = model.encode(ids, seg)
        logits = model.target_logits(ours, seg)
        kw = {"task_type_ids": torch.full_like(ids, extra["task_id"])} if "task_id" in extra else {}
        out = hf(input_ids=ids, output_hidden_states=True) if causal else \
            hf(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True, **kw)
    assert _maxdiff(ours, out.hidden_states[-1], mask) <= TOL
    first = {"BertForPreTraining": "prediction_logits", "AlbertForPreTraining": "prediction_logits"}.get(arch, "logits")
    head = "lm" if "lm" in logits else "mlm"
    assert _maxdiff(logits[head], getattr(out, first), mask) <= TOL
    if "sp" in logits:
        second = "sop_logits" if arch.startswith("Albert") else "seq_relationship_logits"
        assert _maxdiff(logits["sp"], getattr(out, second)) <= TOL


def _perturb_uer(model, std=0.1):
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


@pytest.mark.parametrize("cls_name", ["BertForTokenClassification", "BertForQuestionAnswering",
                                      "BertForMultipleChoice"])
def test_per_token_task_directory_loads_as_its_base_model(cls_name, tmp_path, caplog):
    """A token-classification, QA or multiple-choice directory: its head is not a pooled sentence classifier,
    so it is dropped with a warning (loading it as the cls target built another model); the base model's hidden
    states equal transformers' BertModel on the same directory."""
    cfg = transformers.BertConfig(**SMALL, num_labels=5)
    torch.manual_seed(0)
    getattr(transformers, cls_name)(cfg).save_pretrained(tmp_path)
    with caplog.at_level("WARNING", logger="uer_like"):
        model = load_model(str(tmp_path)).eval()
    assert "cls" not in model.config.target
    assert f"a {cls_name}: its head" in caplog.text and "convert.py" in caplog.text
    ref = transformers.BertModel.from_pretrained(tmp_path, add_pooling_layer=False).eval()
    ids, mask, tt = _inputs()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, token_type_ids=tt).last_hidden_state
        got = model.encode(ids, (tt + 1) * mask)
    real = mask.bool()
    assert (got[real] - want[real]).abs().max() < TOL
