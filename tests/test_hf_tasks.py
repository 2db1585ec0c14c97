"""Fine-tuned models out to Hugging Face and back (io/hf_tasks.py, scripts/convert.py): classifier, tagger,
span extractor and multiple choice heads load in transformers' task classes with the same logits, and come back
as the same files."""
import json
import os

import pytest
import torch

from uer_like.config import load_config
from uer_like.finetune import core
from uer_like.finetune.classification import Classifier
from uer_like.finetune.mrc import SpanExtractor
from uer_like.finetune.multiple_choice import MultipleChoice
from uer_like.finetune.tagging import Tagger
from uer_like.io import hf_tasks
from conftest import ROOT

transformers = pytest.importorskip("transformers")
V = 21128
TAGS = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}


def config(layernorm="torch"):
    over = dict(layers_num=1)
    if layernorm == "torch":
        over.update(layernorm="torch", layernorm_eps=1e-12)
    return load_config("bert/tiny_config.json", **over)


def make(task, cfg):
    torch.manual_seed(3)
    if task == "classification":
        model, meta = Classifier(cfg, V, 3), {"task": task, "seq_length": 64, "labels_num": 3}
    elif task == "tagging":
        model, meta = Tagger(cfg, V, len(TAGS)), {"task": task, "seq_length": 64, "label2id": TAGS, "crf": False}
    elif task == "mrc":
        model, meta = SpanExtractor(cfg, V), {"task": task, "seq_length": 64, "doc_stride": 16,
                                              "max_query_length": 8, "max_answer_length": 10}
    else:
        model, meta = MultipleChoice(cfg, V), {"task": task, "seq_length": 64, "max_choices_num": 4}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("output_layer"):
                p.normal_(0, 0.5)
    return model.eval(), meta


def inputs():
    g = torch.Generator().manual_seed(0)
    src = torch.randint(100, 8000, (3, 12), generator=g)
    seg = torch.ones_like(src)
    seg[0, 7:] = 2
    seg[2, 9:] = 0
    src[2, 9:] = 0
    return src, seg


def ours(task, model, src, seg):
    with torch.no_grad():
        if task == "classification":
            return model(src, seg)
        if task == "tagging":
            return model(src, seg)
        if task == "mrc":
            return torch.stack(model(src, seg), -1)
        return model.scores(src, seg).view(1, -1)


def theirs(task, hf, src, seg):
    kw = dict(input_ids=src, token_type_ids=(seg - 1).clamp(min=0), attention_mask=(seg > 0).long())
    with torch.no_grad():
        if task == "multiple_choice":
            return hf(**{k: v.unsqueeze(0) for k, v in kw.items()}).logits
        out = hf(**kw)
        return torch.stack([out.start_logits, out.end_logits], -1) if task == "mrc" else out.logits


AUTO = {"classification": "AutoModelForSequenceClassification", "tagging": "AutoModelForTokenClassification",
        "mrc": "AutoModelForQuestionAnswering", "multiple_choice": "AutoModelForMultipleChoice"}


@pytest.mark.parametrize("task", sorted(AUTO))
def test_fine_tuned_model_to_transformers_and_back(task, tmp_path):
    model, meta = make(task, config())
    path = str(tmp_path / "ft.bin")
    core.save_finetuned(model, path, meta)
    out = hf_tasks.export_finetuned(path, str(tmp_path / "hf"))
    hf = getattr(transformers, AUTO[task]).from_pretrained(out).eval()
    src, seg = inputs()
    a, b = ours(task, model, src, seg), theirs(task, hf, src, seg)
    keep = (seg > 0) if task in ("tagging", "mrc") else torch.ones(a.shape[:1], dtype=torch.bool)
    torch.testing.assert_close(b[keep], a[keep], atol=1e-5, rtol=0)
    cfg = json.load(open(os.path.join(out, "config.json")))
    if task == "tagging":
        assert cfg["id2label"] == {str(i): t for t, i in TAGS.items()} and cfg["label2id"] == TAGS
    if task == "classification":
        assert cfg["num_labels"] == 3 and cfg["problem_type"] == "single_label_classification"
    # and back: the same three files
    back = hf_tasks.import_finetuned(out, str(tmp_path / "back.bin"))
    ref, got = torch.load(path, weights_only=True), torch.load(back, weights_only=True)
    assert sorted(ref) == sorted(got) and all(torch.equal(ref[k], got[k]) for k in ref)
    for suffix in ("_config.json", "_finetune.json"):
        assert json.load(open(str(tmp_path / "ft") + suffix)) == json.load(open(str(tmp_path / "back") + suffix))


def convert(*argv):
    """scripts/convert.py's main, in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_script", os.path.join(ROOT, "scripts", "convert.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(list(argv))


def test_uer_layer_norm_classifier_through_the_command_line(tmp_path):
    """A classifier with UER's layer norm (as fine-tuned from the UER zoo): scripts/convert.py both ways;
    transformers' logits differ only by where the layer norms' eps goes; the way back is exact."""
    model, meta = make("classification", config("normal"))
    path = str(tmp_path / "ft.bin")
    core.save_finetuned(model, path, meta)
    assert convert("--input", path, "--output", str(tmp_path / "hf"), "--to", "hf") == 0
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "hf")).eval()
    src, seg = inputs()
    torch.testing.assert_close(theirs("classification", hf, src, seg), ours("classification", model, src, seg),
                               atol=1e-4, rtol=0)
    assert convert("--input", str(tmp_path / "hf"), "--output", str(tmp_path / "back.bin"), "--to", "uer") == 0
    ref, got = torch.load(path, weights_only=True), torch.load(tmp_path / "back.bin", weights_only=True)
    assert all(torch.equal(ref[k], got[k]) for k in ref) and sorted(ref) == sorted(got)


def test_a_crf_tagger_is_refused_in_one_line(tmp_path):
    from uer_like.errors import ConfigError

    cfg = config()
    model = Tagger(cfg, V, len(TAGS), use_crf=True)
    path = str(tmp_path / "ft.bin")
    core.save_finetuned(model, path, {"task": "tagging", "seq_length": 64, "label2id": TAGS, "crf": True})
    with pytest.raises(ConfigError, match="CRF"):
        hf_tasks.export_finetuned(path, str(tmp_path / "hf"))


def test_fine_tuned_model_converts_between_the_uer_formats_with_its_head(tmp_path, capsys):
    model, meta = make("tagging", config())
    path, st, back = str(tmp_path / "ft.bin"), str(tmp_path / "ft.safetensors"), str(tmp_path / "back.bin")
    core.save_finetuned(model, path, meta)
    assert convert("--input", path, "--output", st, "--to", "safetensors") == 0
    assert convert("--input", st, "--output", back, "--to", "uer") == 0
    ref, got = torch.load(path, weights_only=True), torch.load(back, weights_only=True)
    assert sorted(ref) == sorted(got) and all(torch.equal(ref[k], got[k]) for k in ref)
    for out in (st, back):
        for suffix in ("_config.json", "_finetune.json"):
            assert json.load(open(str(tmp_path / "ft") + suffix)) == json.load(open(out.rsplit(".", 1)[0] + suffix))
    again = core.load_finetuned(Tagger(config(), V, len(TAGS)).eval(), st)  # what finetune --load_model_path does
    src, seg = inputs()
    assert torch.equal(ours("tagging", again, src, seg), ours("tagging", model, src, seg))
    capsys.readouterr()
    assert convert("--input", path, "--output", str(tmp_path / "old.bin"), "--to", "uer", "--layout", "uer_2023") == 2
    assert "is a fine-tuned model, written in the 'uer' layout only" in capsys.readouterr().err
    os.remove(str(tmp_path / "ft_finetune.json"))  # as UER-py's fine-tuning scripts leave it
    assert convert("--input", path, "--output", str(tmp_path / "x.bin"), "--to", "uer") == 2
    assert "(a task head: a model fine-tuned by finetune/run_*.py" in capsys.readouterr().err


XLNET_TINY = dict(emb_size=32, hidden_size=32, feedforward_size=37, heads_num=4, layers_num=2, max_seq_length=64,
                  mask="fully_visible", hidden_act="gelu")


@pytest.mark.parametrize("task", ["classification", "tagging", "mrc"])
def test_fine_tuned_xlnet_to_transformers_and_back(task, tmp_path):
    """A model fine-tuned from an XLNet config (finetune/run_classifier.py: dense + tanh on the last token) exports
    as XLNetForSequenceClassification (the sequence summary and logits_proj) with the same logits, a tagger as
    XLNetForTokenClassification, a span extractor as XLNetForQuestionAnsweringSimple; and comes back as the same
    files. XLNet's layout: padding on the left, <cls> last in a token type of its own."""
    cfg = load_config("xlnet/base_config.json", **XLNET_TINY)
    assert cfg.pooling == "last"
    torch.manual_seed(3)
    if task == "classification":
        model, meta = Classifier(cfg, V, 3), {"task": task, "seq_length": 64, "labels_num": 3}
    elif task == "tagging":
        model, meta = Tagger(cfg, V, len(TAGS)), {"task": task, "seq_length": 64, "label2id": TAGS, "crf": False}
    else:
        model, meta = SpanExtractor(cfg, V), {"task": task, "seq_length": 64, "doc_stride": 16,
                                              "max_query_length": 8, "max_answer_length": 10}
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape) * (0.5 if name.startswith("output_layer") else 0.05))
    model.eval()
    path = str(tmp_path / "ft.bin")
    core.save_finetuned(model, path, meta)
    out = hf_tasks.export_finetuned(path, str(tmp_path / "hf"))
    arch = {"classification": "XLNetForSequenceClassification", "tagging": "XLNetForTokenClassification",
            "mrc": "XLNetForQuestionAnsweringSimple"}[task]
    assert json.load(open(os.path.join(out, "config.json")))["architectures"] == [arch]
    hf, info = getattr(transformers, arch).from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    g = torch.Generator().manual_seed(0)
    src = torch.randint(100, 8000, (3, 12), generator=g)
    seg = torch.ones_like(src)
    seg[0, 6:] = 2
    seg[1, :4] = 0  # left padding
    seg[1, 8:] = 2
    seg[:, -1] = 3  # <cls>
    src[seg == 0] = 5
    a = ours(task, model, src, seg)
    kw = dict(input_ids=src, token_type_ids=(seg - 1).clamp(min=0), attention_mask=(seg > 0).long())
    with torch.no_grad():
        o = hf.eval()(**kw)
        b = torch.stack([o.start_logits, o.end_logits], -1) if task == "mrc" else o.logits
    keep = (seg > 0) if task in ("tagging", "mrc") else torch.ones(a.shape[:1], dtype=torch.bool)
    torch.testing.assert_close(b[keep], a[keep], atol=1e-5, rtol=0)
    assert a[keep].abs().max() > 0.1  # logits of a head that is not near zero
    report = os.environ.get("UER_LIKE_PARITY_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps({f"xlnet_{task}": float((a[keep] - b[keep]).abs().max())}) + "\n")
    back = hf_tasks.import_finetuned(out, str(tmp_path / "back.bin"))
    ref, got = torch.load(path, weights_only=True), torch.load(back, weights_only=True)
    assert sorted(ref) == sorted(got) and all(torch.equal(ref[k], got[k]) for k in ref)
    for suffix in ("_config.json", "_finetune.json"):
        assert json.load(open(str(tmp_path / "ft") + suffix)) == json.load(open(str(tmp_path / "back") + suffix))


SHAPES = {  # a fine-tuned model's config -> the family it exports as
    "megatron-bert": (dict(layernorm_positioning="pre", remove_embedding_layernorm=True), "MegatronBert"),
    "roberta": (dict(position_offset=2), "Roberta"),
    "albert": (dict(parameter_sharing=True), "Albert"),
}
TAGGER_SHAPES = {  # token heads: BERT's classifier in every BERT-shaped family
    "electra": (dict(factorized_embedding_parameterization=True, emb_size=64), "Electra"),
    "roformer": (dict(embedding=["word", "seg"], position_scheme="rotary"), "RoFormer"),
    "ernie": (dict(embedding=["word", "pos", "seg", "task"]), "Ernie"),
}


@pytest.mark.parametrize("family", sorted(TAGGER_SHAPES))
def test_fine_tuned_taggers_of_other_families_to_transformers(family, tmp_path):
    over, prefix = TAGGER_SHAPES[family]
    model, meta = make("tagging", config().replace(**over))
    path = str(tmp_path / "ft.bin")
    core.save_finetuned(model, path, meta)
    out = hf_tasks.export_finetuned(path, str(tmp_path / "hf"))
    assert json.load(open(os.path.join(out, "config.json")))["model_type"] == family
    hf = transformers.AutoModelForTokenClassification.from_pretrained(out).eval()
    assert type(hf).__name__ == prefix + "ForTokenClassification"
    src, seg = inputs()
    a, b = ours("tagging", model, src, seg), theirs("tagging", hf, src, seg)
    torch.testing.assert_close(b[seg > 0], a[seg > 0], atol=1e-5, rtol=0)
    back = hf_tasks.import_finetuned(out, str(tmp_path / "back.bin"))
    ref, got = torch.load(path, weights_only=True), torch.load(back, weights_only=True)
    assert sorted(ref) == sorted(got) and all(torch.equal(ref[k], got[k]) for k in ref)


@pytest.mark.parametrize("family", sorted(SHAPES))
@pytest.mark.parametrize("task", ["classification", "multiple_choice"])
def test_fine_tuned_models_of_other_families_to_transformers(family, task, tmp_path):
    """A model fine-tuned from a pre-LN encoder without embedding layer norm (Megatron-BERT's shape) exports as
    MegatronBertFor* (BERT's pooler and classifier), one with RoBERTa's position offset as RobertaFor* (its
    classification head: classifier.dense + out_proj), with the same logits, and comes back as the same files."""
    over, prefix = SHAPES[family]
    model, meta = make(task, config().replace(**over))
    path = str(tmp_path / "ft.bin")
    core.save_finetuned(model, path, meta)
    out = hf_tasks.export_finetuned(path, str(tmp_path / "hf"))
    assert json.load(open(os.path.join(out, "config.json")))["model_type"] == family
    hf = getattr(transformers, AUTO[task]).from_pretrained(out).eval()
    assert type(hf).__name__.startswith(prefix)
    src, seg = inputs()
    a, b = ours(task, model, src, seg), theirs(task, hf, src, seg)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    back = hf_tasks.import_finetuned(out, str(tmp_path / "back.bin"))
    ref, got = torch.load(path, weights_only=True), torch.load(back, weights_only=True)
    assert sorted(ref) == sorted(got) and all(torch.equal(ref[k], got[k]) for k in ref)
