"""Building a vocabulary from a corpus, and comparing two vocabularies.

    tokens, counts = build_vocab(open("corpus.txt", encoding="utf-8"), tokenizer="bert", min_count=2)

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


def count_tokens(lines, tokenizer="bert", do_lower_case=True):
    """Counter of the vocabulary entries of `lines` (see the module docstring)."""
    if tokenizer not in PRE_TOKENIZERS:
        raise DataError(f"build_vocab: tokenizer {tokenizer!r} is not one of {', '.join(PRE_TOKENIZERS)}")
    make, wordpiece = PRE_TOKENIZERS[tokenizer]
    split = make(do_lower_case)
    words = Counter()
    for line in lines:
        words.update(split(line))
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


def build_vocab(lines, tokenizer="bert", min_count=1, do_lower_case=True, unused=GOOGLE_UNUSED):
    """-> (tokens, counts): the vocabulary (special tokens first, at Google's ids) and the corpus counts of
    its entries. lines: an iterable of text lines (a file object)."""
    if min_count < 1:
        raise DataError(f"build_vocab: min_count must be >= 1, got {min_count}")
    counts = count_tokens(lines, tokenizer, do_lower_case)
    specials = special_tokens(unused)
    taken = set(specials)
    kept = sorted((t for t, n in counts.items() if n >= min_count and t not in taken),
                  key=lambda t: (-counts[t], t))
    return specials + kept, counts


def diff_vocabs(first, second):
    """Two vocabularies (Vocab or token lists) -> (only in first, only in second, in both), each in the
    first one's order (the second's for `only in second`)."""
    a = list(getattr(first, "i2w", first))
    b = list(getattr(second, "i2w", second))
    sa, sb = set(a), set(b)
    return ([t for t in dict.fromkeys(a) if t not in sb], [t for t in dict.fromkeys(b) if t not in sa],
            [t for t in dict.fromkeys(a) if t in sb])
