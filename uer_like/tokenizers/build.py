"""Building a vocabulary from a corpus, and comparing two vocabularies.

    tokens, counts = build_vocab(open("corpus.txt", encoding="utf-8"), tokenizer="bert", min_count=2)
    tokens = vocab_from_counts(count_file("corpus.txt", workers=4), min_count=2)   # the same, in 4 processes

A built vocabulary starts with the special tokens at the ids of Google's BERT vocabularies ([PAD] 0,
[unused1..99] 1-99, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103; `unused=0` drops the [unused] tokens:
[PAD] 0, [UNK] 1, ... [MASK] 4), then the corpus's tokens with at least `min_count` occurrences, most
frequent first (ties in code-point order). The tokenizer splits each line as the project's tokenizer of
that name does before looking anything up: `bert` with BERT's basic tokenizer (lower-cased and accents
stripped with do_lower_case, punctuation split off, each CJK character a word), `char` into characters,
`space` at whitespace. With `bert` the vocabulary is WordPiece-style: besides the words, every character of
them, and `##c` for each character that follows another inside a word, so that the WordPiece tokenizer
spells every corpus word without [UNK] (a rare word as characters).
"""
from collections import Counter

from ..errors import DataError
from .bert import BasicTokenizer
from .vocab import CLS, MASK, PAD, SEP, UNK

GOOGLE_UNUSED = 99


def special_tokens(unused=GOOGLE_UNUSED):
    """The special tokens at Google's ids: [PAD], [unused1..N], [UNK], [CLS], [SEP], [MASK]."""
    return [PAD] + [f"[unused{i}]" for i in range(1, unused + 1)] + [UNK, CLS, SEP, MASK]


def _bert_words(do_lower_case):
    basic = BasicTokenizer(do_lower_case)
    return basic.tokenize


def _char_words(do_lower_case):
    return lambda line: [c for c in line if not c.isspace()]


def _space_words(do_lower_case):
    return lambda line: line.split()


# tokenizer name -> (the function that splits a line into words, whether words add WordPiece characters)
PRE_TOKENIZERS = {"bert": (_bert_words, True), "char": (_char_words, False), "space": (_space_words, False)}


def _splitter(tokenizer, do_lower_case):
    if tokenizer not in PRE_TOKENIZERS:
        raise DataError(f"build_vocab: tokenizer {tokenizer!r} is not one of {', '.join(PRE_TOKENIZERS)}")
    make, wordpiece = PRE_TOKENIZERS[tokenizer]
    return make(do_lower_case), wordpiece


def _entries(words, wordpiece):
    """word counts -> vocabulary entry counts (with WordPiece: each word's characters and ##c pieces too)."""
    if not wordpiece:
        return words
    counts = Counter(words)
    for word, n in words.items():
        if len(word) == 1:
            continue
        counts[word[0]] += n
        for c in word[1:]:
            counts[c] += n  # the character alone
            counts["##" + c] += n  # and as a continuation piece
    return counts


def count_tokens(lines, tokenizer="bert", do_lower_case=True):
    """Counter of the vocabulary entries of `lines` (see the module docstring)."""
    split, wordpiece = _splitter(tokenizer, do_lower_case)
    words = Counter()
    for line in lines:
        words.update(split(line))
    return _entries(words, wordpiece)


def _count_range(path, start, end, tokenizer, do_lower_case):
    """Word counts of the lines of `path` that start in bytes [start, end)."""
    split, _ = _splitter(tokenizer, do_lower_case)
    words = Counter()
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        while pos < end:
            raw = f.readline()
            if not raw:
                break
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                f.seek(0)
                number = f.read(pos).count(b"\n") + 1
                raise DataError(f"{path}:{number}: not valid UTF-8 (byte {e.start} of the line); the corpus must be "
                                f"UTF-8 text (from GBK: `iconv -f GBK -t UTF-8 {path} > {path}.utf8`)") from None
            words.update(split(line.removeprefix("\ufeff") if pos == 0 else line))
            pos += len(raw)
    return words


def count_file(path, tokenizer="bert", do_lower_case=True, workers=1):
    """count_tokens over a UTF-8 corpus file, read line by line; workers > 1 count byte ranges of it in as many
    processes (the counts do not depend on it). A line that is not UTF-8 is a DataError naming it."""
    import os

    if not os.path.isfile(path):
        raise DataError(f"corpus {path}: no such file")
    _, wordpiece = _splitter(tokenizer, do_lower_case)
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb") as f:
        for k in range(1, workers):
            f.seek(max(size * k // workers - 1, bounds[-1]))
            f.readline()  # to the start of the next line
            bounds.append(max(f.tell(), bounds[-1]))
    bounds.append(size)
    jobs = [(path, a, b, tokenizer, do_lower_case) for a, b in zip(bounds, bounds[1:]) if b > a]
    if len(jobs) <= 1:
        parts = [_count_range(*j) for j in jobs]
    else:
        from multiprocessing import get_context

        with get_context("fork").Pool(len(jobs)) as pool:
            parts = pool.starmap(_count_range, jobs)
    words = Counter()
    for p in parts:
        words.update(p)
    return _entries(words, wordpiece)


def vocab_from_counts(counts, min_count=1, unused=GOOGLE_UNUSED):
    """The special tokens at Google's ids, then the entries counted `min_count` times or more, most frequent
    first (ties in code-point order)."""
    if min_count < 1:
        raise DataError(f"build_vocab: min_count must be >= 1, got {min_count}")
    specials = special_tokens(unused)
    taken = set(specials)
    kept = sorted((t for t, n in counts.items() if n >= min_count and t not in taken), key=lambda t: (-counts[t], t))
    return specials + kept


def build_vocab(lines, tokenizer="bert", min_count=1, do_lower_case=True, unused=GOOGLE_UNUSED):
    """-> (tokens, counts): the vocabulary (special tokens first, at Google's ids) and the corpus counts of
    its entries. lines: an iterable of text lines (a file object)."""
    counts = count_tokens(lines, tokenizer, do_lower_case)
    return vocab_from_counts(counts, min_count, unused), counts


def diff_vocabs(first, second):
    """Two vocabularies (Vocab or token lists) -> (only in first, only in second, in both), each in the
    first one's order (the second's for `only in second`)."""
    a = list(getattr(first, "i2w", first))
    b = list(getattr(second, "i2w", second))
    sa, sb = set(a), set(b)
    return ([t for t in dict.fromkeys(a) if t not in sb], [t for t in dict.fromkeys(b) if t not in sa],
            [t for t in dict.fromkeys(a) if t in sb])
