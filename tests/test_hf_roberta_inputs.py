"""A RoBERTa-layout directory (byte-level BPE with <s>=0 <pad>=1 </s>=2, learned positions from padding_idx + 1)
through finetune/run_classifier.py's prediction: on padded batches of single sentences and of sentence pairs,
the logits equal transformers' RobertaForSequenceClassification on what its own tokenizer builds
(`tokenizer(a, b, padding=True)`: pairs as `<s> a </s></s> b </s>`)."""
import shutil

import pytest
import torch

from uer_like.finetune import cli
from uer_like.finetune import data as D
from uer_like.io import hf_tasks

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEXTS = ["The quick brown fox jumps over the lazy dog.", "It's a test of the byte-level tokenizer, isn't it?",
         "Hello world! Numbers 12345 and symbols here.", "A short one.", "Padding matters when rows differ in length.",
         "Sentence pairs are laid out as the tokenizer's own template says."]
PAIRS = list(zip(TEXTS, TEXTS[2:] + TEXTS[:2]))


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    """(hf directory, fine-tuned file with the tokenizer files beside it, transformers tokenizer, model)."""
    root = tmp_path_factory.mktemp("roberta")
    hf_dir, ft_dir = root / "hf", root / "ft"
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS * 20, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    hf_dir.mkdir()
    bpe.save_model(str(hf_dir))  # vocab.json + merges.txt
    tok = transformers.RobertaTokenizerFast.from_pretrained(str(hf_dir))
    tok.save_pretrained(str(hf_dir))  # tokenizer.json (RobertaProcessing: its pair template) + tokenizer_config.json
    assert (tok.cls_token_id, tok.pad_token_id, tok.sep_token_id) == (0, 1, 2)
    cfg = transformers.RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
                                     pad_token_id=1, bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0, num_labels=3, initializer_range=0.3)
    torch.manual_seed(0)
    model = transformers.RobertaForSequenceClassification(cfg).eval()
    model.save_pretrained(str(hf_dir))
    ft_dir.mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copy(hf_dir / f, ft_dir / f)
    ft = hf_tasks.import_finetuned(str(hf_dir), str(ft_dir / "ft.bin"))
    return hf_dir, ft, tok, model


def predict(tmp_path, ft, rows):
    """Logits from finetune/run_classifier.py --output_logits (fp32, all rows in one padded batch)."""
    test, pred = tmp_path / "test.tsv", tmp_path / "pred.tsv"
    pair = len(rows[0]) == 2
    with open(test, "w", encoding="utf-8") as f:
        f.write("label\ttext_a" + ("\ttext_b" if pair else "") + "\n")
        f.writelines("0\t" + "\t".join(r) + "\n" for r in rows)
    cli.main("classification", ["--load_model_path", ft, "--test_path", str(test), "--prediction_path", str(pred),
                                "--output_logits", "--no_progress", "--precision", "fp32", "--batch_size", "16",
                                "--seq_length", "64"])
    lines = open(pred, encoding="utf-8").read().splitlines()[1:]
    return torch.tensor([[float(x) for x in line.split("\t")[1].split()] for line in lines])


def theirs(tok, model, rows):
    enc = tok([r[0] for r in rows], [r[1] for r in rows] if len(rows[0]) == 2 else None, padding=True,
              return_tensors="pt")
    assert (enc["input_ids"] == tok.pad_token_id).any()  # the batch is padded
    with torch.no_grad():
        return model(**enc).logits


def encoder(ft):
    return D.Encoder(cli._build_tokenizer(cli.build_parser("classification").parse_args(["--load_model_path", ft])))


def test_padding_and_positions_of_a_pad_id_1_vocabulary(roberta, tmp_path):
    hf_dir, ft, tok, model = roberta
    enc = encoder(ft)
    assert enc.pad_id == tok.pad_token_id == 1 and enc.cls_id == 0  # <s> is not padding
    rows = [(t,) for t in TEXTS]
    d = (predict(tmp_path, ft, rows) - theirs(tok, model, rows)).abs().max()
    print(f"single sentences, padded batch: max |logit difference| {float(d):.1e}")
    assert d < 1e-5


def test_sentence_pairs_follow_the_tokenizers_template(roberta, tmp_path):
    hf_dir, ft, tok, model = roberta
    enc = encoder(ft)
    for a, b in PAIRS:
        ids_a, ids_b = enc.ids(a), enc.ids(b)
        src, seg, start_a, start_b = enc.pack(ids_a, ids_b)
        assert src == tok(a, b)["input_ids"], (a, b)
        assert src[start_a:start_a + len(ids_a)] == ids_a and src[start_b:start_b + len(ids_b)] == ids_b
        assert len(seg) == len(src) and min(seg) > 0
    d = (predict(tmp_path, ft, PAIRS) - theirs(tok, model, PAIRS)).abs().max()
    print(f"sentence pairs, padded batch: max |logit difference| {float(d):.1e}")
    assert d < 1e-5


def test_the_layout_is_read_from_the_post_processor():
    """tokenizer.json's post-processor names the pair template: RobertaProcessing, BertProcessing, or a
    TemplateProcessing of either shape (what transformers v5 writes); GPT-2's ByteLevel says none."""
    import json

    from tokenizers import processors

    from uer_like.tokenizers.layout import of_post_processor

    def layout(p):
        return of_post_processor(json.loads(p.__getstate__()), "<s>", "</s>")

    assert layout(processors.RobertaProcessing(("</s>", 2), ("<s>", 0))) == "roberta"
    assert layout(processors.BertProcessing(("</s>", 2), ("<s>", 0))) == "bert"
    special = [("<s>", 0), ("</s>", 2)]
    assert layout(processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                special_tokens=special)) == "roberta"
    assert layout(processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1",
                                                special_tokens=special)) == "bert"
    assert layout(processors.TemplateProcessing(single="$A", pair="$A $B", special_tokens=[])) is None
    assert layout(processors.ByteLevel()) is None
