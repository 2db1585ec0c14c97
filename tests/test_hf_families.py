"""Hugging Face families added as one module each (io/families/): OpenAI GPT (CDial-GPT), DistilBERT,
Megatron-BERT and XLM-RoBERTa (CINO). A tiny random model made by transformers and saved with save_pretrained
loads with the same hidden states and head logits (float32, within 1e-5), exports back under its own model_type
to a directory the same transformers class loads with identical outputs, and loads into uer_like again
bit for bit; a uer_like model of each new shape exports with the same outputs."""
import json
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

from uer_like.errors import CheckpointError, ConfigError  # noqa: E402
from uer_like.io import load_model, save_model  # noqa: E402

TOL = 1e-5
V = 99
BERT_SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=64)
DISTIL_SMALL = dict(vocab_size=V, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64)
GPT_SMALL = dict(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run on one thread (a second one only waits on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cases():
    T = transformers
    return {
        # model_type, transformers class, config, heads (uer_like target -> output attribute), kind of input
        "openai_gpt": (T.OpenAIGPTLMHeadModel, T.OpenAIGPTConfig(afn="gelu", **GPT_SMALL), {"lm": "logits"}, "causal"),
        "openai_gpt_relu_untied": (T.OpenAIGPTLMHeadModel,
                                   T.OpenAIGPTConfig(afn="relu", tie_word_embeddings=False, **GPT_SMALL),
                                   {"lm": "logits"}, "causal"),
        "distilbert_mlm": (T.DistilBertForMaskedLM, T.DistilBertConfig(**DISTIL_SMALL), {"mlm": "logits"}, "single"),
        "distilbert_sinusoidal_classification": (
            T.DistilBertForSequenceClassification,
            T.DistilBertConfig(sinusoidal_pos_embds=True, num_labels=3, **DISTIL_SMALL), {"cls": "logits"}, "single"),
        "distilbert_model": (T.DistilBertModel, T.DistilBertConfig(activation="relu", **DISTIL_SMALL), {}, "single"),
        "megatron_bert_pretraining": (T.MegatronBertForPreTraining, T.MegatronBertConfig(**BERT_SMALL),
                                      {"mlm": "prediction_logits", "sp": "seq_relationship_logits"}, "pairs"),
        "megatron_bert_mlm": (T.MegatronBertForMaskedLM, T.MegatronBertConfig(**BERT_SMALL), {"mlm": "logits"},
                              "pairs"),
        "xlm_roberta_mlm": (T.XLMRobertaForMaskedLM, T.XLMRobertaConfig(type_vocab_size=1, **BERT_SMALL),
                            {"mlm": "logits"}, "roberta"),
        "xlm_roberta_classification": (
            T.XLMRobertaForSequenceClassification,
            T.XLMRobertaConfig(type_vocab_size=1, num_labels=4, **BERT_SMALL), {"cls": "logits"}, "roberta"),
    }


def _inputs(kind):
    """ids, attention mask, token types (all zero but for sentence pairs)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, V, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    tt = torch.zeros_like(ids)
    if kind != "causal":  # padded rows (GPT: unpadded input)
        mask[1, 9:] = 0
        mask[2, 6:] = 0
        ids[mask == 0] = 1 if kind == "roberta" else 0
    if kind == "pairs":
        tt[0, 7:] = 1
        tt[1, 5:9] = 1
    return ids, mask, tt


def _perturb(model, std=0.1):
    """Weights away from initialisation (every bias and layer norm away from 0/1); DistilBERT's sinusoidal
    table stays the function transformers made."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "position_embeddings" in name and getattr(model.config, "sinusoidal_pos_embds", False):
                continue
            noise = torch.randn(p.shape, generator=g) * std
            if name.endswith("weight") and ("LayerNorm" in name or "layer_norm" in name or ".ln" in name):
                p.copy_(1.0 + noise)
            else:
                p.add_(noise)


def _hf_run(model, kind, ids, mask, tt):
    kw = {"input_ids": ids}
    if kind != "causal":
        kw["attention_mask"] = mask
    if kind in ("pairs", "roberta"):
        kw["token_type_ids"] = tt
    with torch.no_grad():
        return model.base_model(**kw).last_hidden_state, model(**kw)


def _maxdiff(a, b, mask=None):
    if mask is not None:
        a, b = a[mask.bool()], b[mask.bool()]
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("case", list(_cases()))
def test_new_family_parity_and_export(case, tmp_path):
    cls, hf_config, heads, kind = _cases()[case]
    torch.manual_seed(0)
    hf_model = cls(hf_config).eval()
    _perturb(hf_model)
    src = tmp_path / "hf"
    hf_model.save_pretrained(src)
    hf_model = cls.from_pretrained(src).eval()  # exactly what is on disk
    model_type = hf_config.model_type

    model = load_model(str(src)).eval()
    assert model.load_info.family == model_type
    assert set(model.config.target) == set(heads)
    ids, mask, tt = _inputs(kind)
    seg = (tt + 1) * mask
    hidden_ref, out = _hf_run(hf_model, kind, ids, mask, tt)
    with torch.no_grad():
        hidden = model.encode(ids, seg)
        logits = model.target_logits(hidden, seg)
    diffs = {"hidden": _maxdiff(hidden, hidden_ref, mask)}
    for name, attr in heads.items():
        ours, theirs = logits[name], getattr(out, attr)
        diffs[name] = _maxdiff(ours, theirs, mask if ours.dim() >= 2 and ours.shape[:2] == mask.shape else None)
    for k, v in diffs.items():
        assert v <= TOL, f"{case} {k}: max abs diff {v}"
    report = os.environ.get("UER_LIKE_PARITY_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps({case: diffs}) + "\n")

    out_dir = tmp_path / "export"
    save_model(model, str(out_dir), format="hf")
    cfg = json.loads((out_dir / "config.json").read_text())
    assert cfg["model_type"] == model_type and cfg["architectures"] == [cls.__name__]
    if model_type == "distilbert":  # the release's flag is kept
        assert cfg["sinusoidal_pos_embds"] == hf_config.sinusoidal_pos_embds
    again_hf, info = cls.from_pretrained(out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    hidden2, out2 = _hf_run(again_hf.eval(), kind, ids, mask, tt)
    assert _maxdiff(hidden2, hidden_ref) == 0.0
    for name, attr in heads.items():
        assert _maxdiff(getattr(out2, attr), getattr(out, attr)) == 0.0, name
    again = load_model(str(out_dir))
    assert again.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


UER_SHAPES = {
    # uer_like config overrides -> the transformers class its export is
    "openai-gpt": (dict(embedding=["word", "pos"], remove_embedding_layernorm=True, mask="causal",
                        layernorm_positioning="post", hidden_act="gelu_fast", target=["lm"], tie_weights=True,
                        data_processor="lm"), "OpenAIGPTLMHeadModel", "causal"),
    "megatron-bert": (dict(layernorm_positioning="pre", remove_embedding_layernorm=True, target=["mlm", "sp"],
                           tie_weights=True), "MegatronBertForPreTraining", "pairs"),
}


@pytest.mark.parametrize("family", list(UER_SHAPES))
def test_uer_model_of_the_new_shapes_exports_with_identical_outputs(family, tmp_path):
    """A uer_like model built from a config (not loaded from a release) is exported as the family its shape
    has: a causal post-LN model as OpenAI GPT, a pre-LN encoder as Megatron-BERT."""
    from uer_like.model import build_model

    over, arch, kind = UER_SHAPES[family]
    torch.manual_seed(0)
    model = build_model("bert/base_config.json", vocab_size=V, emb_size=32, hidden_size=32, feedforward_size=128,
                        heads_num=4, layers_num=2, max_seq_length=64, layernorm="torch", layernorm_eps=1e-5,
                        **over).eval()
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    save_model(model, str(tmp_path / "hf"), format="hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["model_type"] == family and cfg["architectures"] == [arch]
    hf, info = getattr(transformers, arch).from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids, mask, tt = _inputs(kind)
    seg = (tt + 1) * mask
    hidden_ref, out = _hf_run(hf.eval(), kind, ids, mask, tt)
    with torch.no_grad():
        hidden = model.encode(ids, seg)
        logits = model.target_logits(hidden, seg)
    assert _maxdiff(hidden, hidden_ref, mask) <= TOL
    head = "lm" if "lm" in logits else "mlm"
    first = "logits" if head == "lm" else "prediction_logits"
    assert _maxdiff(logits[head], getattr(out, first), mask) <= TOL
    if "sp" in logits:
        assert _maxdiff(logits["sp"], out.seq_relationship_logits) <= TOL


def test_unexportable_new_shapes_are_one_line_errors():
    from uer_like.io.hf import hf_family_for
    from uer_like.model import build_model

    base = dict(vocab_size=V, emb_size=32, hidden_size=32, feedforward_size=37, heads_num=4, layers_num=1,
                max_seq_length=64)
    gpt = dict(embedding=["word", "pos"], remove_embedding_layernorm=True, mask="causal", layernorm_positioning="post",
               hidden_act="gelu_fast", target=["lm"], data_processor="lm")
    with pytest.raises(ConfigError, match=r"OpenAI GPT's feed-forward is 4 x hidden_size \(128\)"):
        hf_family_for(build_model("bert/base_config.json", **base, **gpt).config)
    with pytest.raises(ConfigError, match="hidden_act 'gelu' has no OpenAI GPT afn"):
        hf_family_for(build_model("bert/base_config.json", **dict(base, feedforward_size=128),
                                  **dict(gpt, hidden_act="gelu")).config)
    with pytest.raises(ConfigError, match="no Hugging Face class to export to for a fully_visible model with post"):
        hf_family_for(build_model("bert/base_config.json", **base, remove_embedding_layernorm=True).config)


def _tiny_spm(path, pieces):
    """A sentencepiece model of `pieces` pieces (<unk> <s> </s> and single characters), written directly."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 0, 1, 2, -1
    m.normalizer_spec.name = "identity"
    kind = pb.ModelProto.SentencePiece
    for piece, t in (("<unk>", kind.UNKNOWN), ("<s>", kind.CONTROL), ("</s>", kind.CONTROL)):
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, 0, t
    for i in range(pieces - 3):
        p = m.pieces.add()
        p.piece, p.score, p.type = chr(0x4E00 + i), -5.0, kind.NORMAL
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return path


def test_xlm_roberta_directory_records_and_exports_its_sentencepiece_model(tmp_path):
    """sentencepiece.bpe.model in an XLM-R directory is the model's recorded vocabulary; the export carries it
    (its pieces + 2 = the embedding's rows, fairseq's dictionary; a padded embedding may have more); a
    sentencepiece model with more pieces than the embedding covers is a one-line error on export."""
    torch.manual_seed(0)
    hf_model = transformers.XLMRobertaForMaskedLM(transformers.XLMRobertaConfig(type_vocab_size=1, **BERT_SMALL))
    src = tmp_path / "xlmr"
    hf_model.save_pretrained(src)
    spm = _tiny_spm(str(src / "sentencepiece.bpe.model"), V - 2)
    model = load_model(str(src))
    assert model.load_info.vocab_path == spm
    from uer_like.io.tokenizer import model_tokenizer

    assert len(model_tokenizer(model).vocab) == V  # the directory's XLM-R tokenizer fits the embedding
    out = tmp_path / "export"
    save_model(model, str(out), format="hf")
    assert (out / "sentencepiece.bpe.model").read_bytes() == open(spm, "rb").read()
    _tiny_spm(spm, V - 5)  # an embedding padded beyond the pieces + 2 it needs
    save_model(load_model(str(src)), str(tmp_path / "padded"), format="hf")
    _tiny_spm(spm, V)
    with pytest.raises(CheckpointError, match=r"has 99 pieces: a xlm-roberta model over it has at least 101 "
                                              r"word-embedding rows, but this model has 99$"):
        save_model(load_model(str(src)), str(tmp_path / "bad"), format="hf")


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_cdial_gpt_release_without_model_type_loads_as_openai_gpt(weights, tmp_path):
    """CDial-GPT's LCCC directories predate config.json's model_type (they are loaded with OpenAIGPTLMHeadModel
    by name): OpenAI GPT's keys are enough (a pytorch_model.bin beside them: the PyTorch-release reader tells
    OpenAI GPT's names from GPT-2's); the vocab.txt beside them is the model's vocabulary, and the export says
    model_type 'openai-gpt'."""
    torch.manual_seed(0)
    hf_model = transformers.OpenAIGPTLMHeadModel(transformers.OpenAIGPTConfig(afn="gelu", **GPT_SMALL)).eval()
    _perturb(hf_model)
    src = tmp_path / "CDial-GPT_LCCC-tiny"
    hf_model.save_pretrained(src)
    if weights == "pytorch_model.bin":  # as the release ships it: every parameter, the tied head too
        os.remove(src / "model.safetensors")
        torch.save(hf_model.state_dict(), src / weights)
    cfg = json.loads((src / "config.json").read_text())
    for k in ("model_type", "architectures", "transformers_version"):
        cfg.pop(k, None)
    cfg.update(n_ctx=64, n_special=0)
    (src / "config.json").write_text(json.dumps(cfg))
    (src / "vocab.txt").write_text("".join(f"[unused{i}]\n" for i in range(V)), encoding="utf-8")
    model = load_model(str(src)).eval()
    assert model.load_info.family == "openai-gpt" and model.load_info.vocab_path == str(src / "vocab.txt")
    assert model.load_info.format == ("pt-zip" if weights == "pytorch_model.bin" else "hf")
    ids, mask, tt = _inputs("causal")
    _, out = _hf_run(hf_model, "causal", ids, mask, tt)
    with torch.no_grad():
        logits = model.target_logits(model.encode(ids, mask), mask)["lm"]
    assert _maxdiff(logits, out.logits) <= TOL
    save_model(model, str(tmp_path / "export"), format="hf")
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["model_type"] == "openai-gpt" and os.path.isfile(tmp_path / "export" / "vocab.txt")
