"""One-time check of the sentence-transformers export against sentence-transformers itself (which the
project's tests do not need: they read the directory with transformers and the pooling rule instead).

    # 1. in the project's environment: a short SimCSE run, its export, and the model's own vectors
    python tests/data/similarity/check_sentence_transformers.py export OUT [mean|first|max|last]
    # 2. in an environment with sentence-transformers: its vectors of the same texts, compared
    python tests/data/similarity/check_sentence_transformers.py compare OUT
"""
import os
import sys

import numpy as np

TEXTS = ["今天天气很好，适合出去走走。", "这本书写得真好", "火车晚点了两个小时", "A股今天大涨3%", "好"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def export(out, pooling):
    sys.path.insert(0, ROOT)
    import argparse

    import torch

    from uer_like import build_model, save_model
    from uer_like.finetune import run
    from uer_like.finetune.data import Encoder
    from uer_like.finetune.simcse import SimCSETask
    from uer_like.finetune.st_export import export_sentence_transformers
    from uer_like.io.checkpoint import load_model
    from uer_like.tokenizers import build_tokenizer

    vocab = os.path.join(ROOT, "models", "google_zh_vocab.txt")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    init, model_path = os.path.join(out, "init.bin"), os.path.join(out, "simcse.bin")
    save_model(build_model("bert/tiny_config.json", vocab_size=21128), init)
    run("simcse", ["--pretrained_model_path", init, "--vocab_path", vocab, "--no_progress", "--max_steps", "5",
                   "--train_path", os.path.join(ROOT, "tests", "data", "similarity", "train.tsv"), "--pooling", pooling,
                   "--seq_length", "32", "--learning_rate", "1e-3", "--output_model_path", model_path])
    export_sentence_transformers(model_path, os.path.join(out, "st"), vocab=vocab)
    task = SimCSETask(argparse.Namespace(seq_length=32, pooling=None, pretrained_model_path=model_path), Encoder(
        build_tokenizer("bert", vocab)))
    m = load_model(model_path, strict=False)
    model = task.build_model(m.config, 21128, backbone=(m.embedding, m.encoder)).eval()
    vecs = []
    with torch.no_grad():
        for t in TEXTS:  # one at a time: no padding
            f = task.encode([{"text_a": t, "text_b": t, "label": None}])[0]
            vecs.append(model.embed(torch.tensor([f["src"]]), torch.tensor([f["seg"]]))[0].numpy())
    np.save(os.path.join(out, "ours.npy"), np.stack(vecs))


def compare(out):
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(os.path.join(out, "st"), device="cpu")
    theirs = st.encode(TEXTS, convert_to_numpy=True, batch_size=len(TEXTS))  # one padded batch
    diff = float(np.abs(theirs - np.load(os.path.join(out, "ours.npy"))).max())
    print(f"sentence-transformers {sentence_transformers.__version__}: {st[1]}; max abs diff {diff:.3g}")
    return diff < 1e-5


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "mean")
    else:
        sys.exit(0 if compare(sys.argv[2]) else 1)
