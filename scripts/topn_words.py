#!/usr/bin/env python
r"""The words a model puts nearest to a word (UER-py's topn_words_indep.py and topn_words_dep.py, one script).

    python scripts/topn_words.py --mode indep --load_model_path model.bin --config_path config.json \
        --vocab_path models/google_zh_vocab.txt --test_path words.txt --topn 15
    python scripts/topn_words.py --mode dep --load_model_path hf_dir --test_path word_sentences.txt

--mode indep: context-independent; the words whose input (word) embeddings are nearest by cosine.
  --test_path: one word per line (its first whitespace-separated field).
--mode dep: context-dependent, as UER-py's topn_words_dep: the encoder's output at the word's first position
  in the sentence ([CLS] tokens [SEP]), compared by cosine with the output there when each candidate word
  replaces it (one forward pass per candidate, --batch_size at a time).
  --test_path: `word<TAB>sentence` per line; the word must be one token of the sentence.
The word itself is left out. --cand_vocab_path: the words to rank, one per line (default: the whole
vocabulary). Output (--prediction_path, else stdout): for each line `Target word: W` (and `Sentence: S`),
then the --topn nearest as `word<TAB>cosine`, best first, then an empty line. Empty lines are skipped.
Errors are one line: a word outside the vocabulary (named with its line), a sentence without the word,
--topn above the candidates.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODES = ("indep", "dep")


def build_parser():
    from uer_like.cli import add_load_model_flags, add_threads_arg
    from uer_like.flags import COUNT, Int, Parser

    p = Parser(description=__doc__)
    add_load_model_flags(p)
    p.add_argument("--mode", default="indep", choices=MODES,
                   help="indep: input embeddings; dep: encoder outputs in the sentence")
    p.add_argument("--test_path", required=True, help="indep: words, one per line; dep: word<TAB>sentence lines")
    p.add_argument("--cand_vocab_path", default=None, help="candidate words, one per line (default: the vocabulary)")
    p.add_argument("--prediction_path", default=None, help="output file (default: stdout)")
    p.add_argument("--topn", type=COUNT, default=15, help="nearest words shown per line")
    p.add_argument("--batch_size", type=COUNT, default=64, help="dep: candidates encoded at a time")
    p.add_argument("--seq_length", type=Int(min=3), default=None,
                   help="dep: longest sentence in tokens with [CLS] and [SEP] (default: the position embedding)")
    add_threads_arg(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from uer_like.cli import call_checked

    return call_checked(_run, args)


def _queries(args, lines):
    """(line number, word, sentence or None) for each non-empty line."""
    from uer_like.errors import DataError

    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if args.mode == "indep":
            out.append((i, line.split()[0], None))
            continue
        if "\t" not in line:
            raise DataError(f"{args.test_path}:{i}: --mode dep takes `word<TAB>sentence` lines; this line has no tab")
        word, sentence = line.split("\t", 1)
        if not word.strip() or not sentence.strip():
            raise DataError(f"{args.test_path}:{i}: an empty word or sentence; give `word<TAB>sentence`")
        out.append((i, word.strip(), sentence))
    return out


def _run(args):
    from uer_like.cli import apply_threads, load_model_and_tokenizer, read_text_lines
    from uer_like.errors import DataError
    from uer_like.outputs import atomic_write, check_output_file

    queries = _queries(args, read_text_lines(args.test_path, "--test_path"))
    if not queries:
        raise DataError(f"--test_path {args.test_path} has no word")
    candidates = None
    if args.cand_vocab_path:
        candidates = [w.strip() for w in read_text_lines(args.cand_vocab_path, "--cand_vocab_path") if w.strip()]
        if not candidates:
            raise DataError(f"--cand_vocab_path {args.cand_vocab_path} has no word")
    if args.prediction_path:
        check_output_file(args.prediction_path, "--prediction_path", error=DataError)
    apply_threads(args)

    from uer_like.inspection import nearest_words, nearest_words_in_context

    model, tok = load_model_and_tokenizer(args, args.seq_length)
    out = []
    for i, word, sentence in queries:
        where = f"{args.test_path}:{i}"
        try:
            if sentence is None:
                top = nearest_words(model, tok.vocab, word, k=args.topn, candidates=candidates)
            else:
                top = nearest_words_in_context(model, tok, word, sentence, k=args.topn, candidates=candidates,
                                               batch_size=args.batch_size, seq_length=args.seq_length, where=where)
        except DataError as e:
            msg = str(e)
            raise DataError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        out.append(f"Target word: {word}")
        if sentence is not None:
            out.append(f"Sentence: {sentence}")
        out += [f"{w}\t{s:.6f}" for w, s in top]
        out.append("")
    text = "\n".join(out) + "\n"
    if args.prediction_path:
        data = text.encode("utf-8")
        atomic_write(args.prediction_path, lambda f: f.write(data), error=DataError, what="--prediction_path")
        print(f"{len(queries)} words -> {args.prediction_path}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
