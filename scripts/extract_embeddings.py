#!/usr/bin/env python
r"""Write a model's word-embedding matrix with its vocabulary (UER-py's extract_embeddings.py).

    python scripts/extract_embeddings.py --load_model_path model.bin --config_path config.json \
        --vocab_path models/google_zh_vocab.txt --word_embedding_path embeddings.txt

--word_embedding_path ending .npy: the matrix [vocabulary, emb_size] as float32 numpy, and the vocabulary
beside it as NAME.vocab.txt (row i is line i). Any other path: word2vec's text format, as UER-py writes it:
a `tokens dim` line, then `token v1 ... vdim` per token in vocabulary order (9 significant digits: float32
values read back exactly). The vocabulary is the model's tokenizer's (the model directory's own files, else
--vocab_path / --spm_model_path / --tokenizer as named, else models/google_zh_vocab.txt); its size must equal
the embedding's rows (rows padded past it are written to .npy only). Outputs are written at once at the end.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser():
    from uer_like.cli import add_load_model_flags
    from uer_like.flags import Parser

    p = Parser(description=__doc__)
    add_load_model_flags(p)
    p.add_argument("--word_embedding_path", required=True, help="output: .npy, or word2vec text otherwise")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _run(args):
    from uer_like.cli import load_model_and_tokenizer
    from uer_like.errors import DataError
    from uer_like.inspection import save_word_embeddings, word_embeddings
    from uer_like.outputs import check_output_file

    check_output_file(args.word_embedding_path, "--word_embedding_path", error=DataError)
    model, tok = load_model_and_tokenizer(args)
    matrix = word_embeddings(model)
    written = save_word_embeddings(matrix, tok.vocab.i2w, args.word_embedding_path)
    print(f"{matrix.shape[0]} x {matrix.shape[1]} embeddings -> {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
