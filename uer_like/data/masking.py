"""Masking for MLM and its variants. The same functions serve static masking (at preprocessing) and dynamic
masking (per batch at training time); every draw comes from a SplitMix64 keyed by the instance, so masks are
reproducible, and csrc/instances.c draws the same numbers in the same order (byte-identical datasets).

Strategies (MaskingOptions.strategy), each over *units*: single tokens, or whole words (a token whose
word-start bit is 0 joins the unit before it) with whole-word masking. Special tokens are never in a unit.
  mlm      BERT: units chosen in random order until mask_prob of the maskable tokens; 80% [MASK] / 10% random /
           10% kept, decided per unit (mask_decision word) or per token.
  span     UER-py's span masking (SpanBERT): the units are cut left to right into spans whose lengths (in units:
           tokens, or words with whole-word masking) follow a geometric distribution with parameter
           span_geo_prob truncated to 1..span_max_length (P(k) proportional to p (1-p)^(k-1)); a span stops at a
           special token; spans are chosen in random order as units are; one 80/10/10 decision per span.
  ngram    ALBERT/ERNIE n-gram masking: from each unit in random order, an n-gram of 1..N adjacent units with
           probabilities ngram_probs (default proportional to 1/n), shortened while it overflows the budget,
           skipped when it overlaps a chosen one; 80/10/10 per unit (or token).
  macbert  MacBERT's MLM as correction: n-gram selection (default 1..4-grams at 40/30/20/10%), then per word
           80% a similar word from the similar-words file (a random word of the same length when the word has
           no candidate), 10% a random word of the same length, 10% kept. A random word is a word of the file
           with as many tokens, or where it has none, random tokens other than [MASK] and the special tokens.
           Nothing becomes [MASK].
  pert     PERT's permuted LM: units chosen as mlm does; the chosen token positions are shuffled among
           themselves within windows of pert_window positions ([0, W), [W, 2W), ...); the labels are the
           original positions of the tokens now at the chosen positions (so ids[label] restores them).

mask_instance() is the original BERT masking (kept bit for bit); mask_with() runs any strategy.
"""
import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Optional, Tuple

from ..errors import ConfigError, DataError
from .options import MASKING_PROCESSORS
from .rng import SplitMix64

STRATEGIES = ("mlm", "span", "ngram", "macbert", "pert")
# the boolean keys (UER-py's span_masking; ours for the others) -> strategy
STRATEGY_KEYS = {"span_masking": "span", "ngram_masking": "ngram", "macbert_masking": "macbert",
                 "pert_masking": "pert"}
DEFAULT_NGRAM_PROBS = {"ngram": (6 / 11, 3 / 11, 2 / 11), "macbert": (0.4, 0.3, 0.2, 0.1)}
MAX_SPAN_LENGTH = 64
MAX_NGRAM = 16


def mask_groups(n, word_start, special, whole_word):
    """Groups of token positions that are masked together. Special tokens are never in a group.
    With whole_word, a token whose word_start bit is 0 joins the group before it."""
    groups = []
    for i in range(n):
        if special[i]:
            continue
        if whole_word and not word_start[i] and groups and groups[-1][-1] == i - 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def mask_instance(ids, word_start, special_ids, rng: SplitMix64, vocab_size, mask_id, prob=0.15,
                  whole_word=False, decision_per_word=True):
    """-> (masked ids, positions, labels), positions ascending. `ids` is not modified."""
    n = len(ids)
    special = [t in special_ids for t in ids]
    groups = mask_groups(n, word_start, special, whole_word)
    n_cand = sum(len(g) for g in groups)
    if n_cand == 0:
        return list(ids), [], []
    num_to_mask = max(1, int(n_cand * prob + 0.5))
    rng.shuffle(groups)
    out = list(ids)
    chosen = []
    count = 0
    for g in groups:
        if count >= num_to_mask:
            break
        if count + len(g) > num_to_mask:
            continue
        count += len(g)
        r = rng.random() if decision_per_word else None
        for i in g:
            r_i = r if decision_per_word else rng.random()
            if r_i < 0.8:
                out[i] = mask_id
            elif r_i < 0.9:
                out[i] = rng.randint(1, vocab_size - 1)
            chosen.append(i)
    chosen.sort()
    return out, chosen, [ids[i] for i in chosen]


# ------------------------------------------------------------------------------------------ options
def span_cumulative(p, max_length):
    """UER-py's get_span_len table: cum[k] = sum_{j<=k} p (1-p)^(j-1), k = 0..max_length, summed in this
    order (the C path receives this table, so both draw with the same doubles)."""
    cum, g = [0.0], 1.0
    for k in range(1, max_length + 1):
        g *= p if k == 1 else (1 - p)
        cum.append(cum[-1] + g)
    return tuple(cum)


def span_length_pmf(p, max_length):
    """The distribution draw_span_length samples: P(k) = p (1-p)^(k-1) / sum, k = 1..max_length."""
    w = [p * (1 - p) ** (k - 1) for k in range(1, max_length + 1)]
    s = sum(w)
    return [x / s for x in w]


def draw_from(cum, limit, rng):
    """k in 1..limit with P(k) proportional to cum[k] - cum[k-1] (one rng.random())."""
    u = cum[limit] * rng.random()
    for k in range(1, limit):
        if u < cum[k]:
            return k
    return limit


@dataclass(frozen=True)
class MaskingOptions:
    """How instances are masked. `similar` (macbert): a SimilarWords table."""
    strategy: str = "mlm"
    prob: float = 0.15
    whole_word: bool = False
    per_word: bool = True
    span_geo_prob: float = 0.2
    span_max_length: int = 10
    ngram_probs: Tuple[float, ...] = ()
    pert_window: int = 16
    similar: Optional["SimilarWords"] = field(default=None, compare=False)

    @property
    def span_cum(self):
        return span_cumulative(self.span_geo_prob, self.span_max_length)

    @property
    def ngram_cum(self):
        probs = self.ngram_probs or DEFAULT_NGRAM_PROBS.get(self.strategy, (1.0,))
        total = math.fsum(probs)
        cum, acc = [0.0], 0.0
        for p in probs:
            acc += p / total
            cum.append(acc)
        return tuple(cum)

    def manifest(self):
        """What the dataset manifest records (besides mask_prob, whole_word_masking, mask_decision)."""
        m = {"strategy": self.strategy}
        if self.strategy == "span":
            m.update(span_geo_prob=self.span_geo_prob, span_max_length=self.span_max_length)
        if self.strategy in ("ngram", "macbert"):
            m["ngram_probs"] = list(self.ngram_probs or DEFAULT_NGRAM_PROBS[self.strategy])
        if self.strategy == "pert":
            m["pert_window"] = self.pert_window
        if self.strategy == "macbert" and self.similar is not None:
            m["similar_words"] = self.similar.describe()
        return m


def strategy_of(d, source, prefix=""):
    """The strategy named by the boolean keys of a dict (config or preprocess options); two is an error."""
    on = [k for k in STRATEGY_KEYS if d.get(k)]
    if len(on) > 1:
        raise ConfigError(f"{source}: {prefix}{on[0]} and {prefix}{on[1]} cannot be combined: choose one masking "
                          f"strategy ({', '.join(prefix + k for k in STRATEGY_KEYS)})")
    return STRATEGY_KEYS[on[0]] if on else "mlm"


def check_values(d, source, prefix=""):
    """Range checks of the strategy parameters in a dict (config keys or preprocess options)."""
    p = d.get("span_geo_prob", 0.2)
    if not (isinstance(p, (int, float)) and 0 < p < 1):
        raise ConfigError(f"{source}: {prefix}span_geo_prob must be in (0, 1), got {p!r}")
    n = d.get("span_max_length", 10)
    if not (isinstance(n, int) and 1 <= n <= MAX_SPAN_LENGTH):
        raise ConfigError(f"{source}: {prefix}span_max_length must be an integer in 1..{MAX_SPAN_LENGTH}, got {n!r}")
    probs = d.get("ngram_probs") or ()
    if probs:
        if len(probs) > MAX_NGRAM or any(not isinstance(x, (int, float)) or x < 0 or x != x for x in probs) \
                or not sum(probs) > 0:
            raise ConfigError(f"{source}: {prefix}ngram_probs must list 1..{MAX_NGRAM} non-negative probabilities "
                              f"of 1-grams, 2-grams, ... (not all zero), got {list(probs)!r}")
    w = d.get("pert_window", 16)
    if not (isinstance(w, int) and 2 <= w <= 1 << 20):
        raise ConfigError(f"{source}: {prefix}pert_window must be an integer >= 2, got {w!r}")


def options_from_manifest(m, similar=None):
    """MaskingOptions of a dataset (datasets made before strategies existed are mlm)."""
    s = m.get("masking") or {"strategy": "mlm"}
    return MaskingOptions(strategy=s["strategy"], prob=m["mask_prob"], whole_word=m["whole_word_masking"],
                          per_word=m["mask_decision"] == "word", span_geo_prob=s.get("span_geo_prob", 0.2),
                          span_max_length=s.get("span_max_length", 10),
                          ngram_probs=tuple(s.get("ngram_probs", ())), pert_window=s.get("pert_window", 16),
                          similar=similar)


def check_dataset_strategy(config, manifest, path):
    """Refuse a dataset made with another masking strategy than the model config asks for (a config that asks
    for none trains on whatever masking the dataset has)."""
    want = getattr(config, "masking_strategy", "mlm")
    have = (manifest.get("masking") or {}).get("strategy", "mlm")
    targets = list(getattr(config, "target", ()) or ())
    if _masked(manifest) and (have == "pert") != ("pert" in targets):  # PERT's labels are positions, not ids
        if have == "pert":
            raise DataError(f"{path}: made with PERT's permuted-LM masking, whose labels are original positions: "
                            f"it trains the 'pert' target (configs/pert), not {targets} (an mlm head would read "
                            "the positions as token ids)")
        raise DataError(f"{path}: the 'pert' target predicts the original positions of permuted tokens, but the "
                        f"dataset was made with {have} masking; re-run preprocess.py with --pert_masking")
    bad = [t for t in targets if t in ("mlm", "electra")]
    if have == "pert" and bad and _masked(manifest):
        raise DataError(f"{path}: a PERT dataset's labels are original positions; the target(s) {bad} would read "
                        "them as token ids: use the 'pert' target alone (with sp where the processor has it)")
    if want == "mlm" or not _masked(manifest):
        return
    if have != want:
        flag = {v: k for k, v in STRATEGY_KEYS.items()}[want]
        raise DataError(f"{path}: made with {have} masking, but the model config asks for {want} masking "
                        f"({flag}); re-run preprocess.py with --{flag}")
    s = manifest["masking"]
    for key in {"span": ("span_geo_prob", "span_max_length"), "pert": ("pert_window",)}.get(want, ()):
        if getattr(config, key) != s[key]:
            raise DataError(f"{path}: made with {key} {s[key]}, but the model config says {getattr(config, key)}; "
                            f"re-run preprocess.py with --{key} {getattr(config, key)}")


def _masked(manifest):
    return manifest.get("data_processor") in MASKING_PROCESSORS


# ------------------------------------------------------------------------------------------ similar words
class SimilarWords:
    """MacBERT's similar-word table over token ids.

    The file: UTF-8, one word per line, `word<TAB>candidate candidate ...` (candidates separated by spaces or
    tabs); blank lines and lines starting with '#' are skipped; a word on several lines gets all their
    candidates. A line without a TAB, without candidates, with an empty word or one containing whitespace, or
    not UTF-8 is an error (one DataError naming the lines). Words and candidates are tokenized with the
    dataset's tokenizer: a candidate with another number of tokens than its word is dropped (the instance keeps
    its length), as is the word itself; `dropped_at` lists them [(line, word, candidate, why)] (preprocess logs
    them), and a file of which no candidate is left is an error.

    lexicon: the distinct token-id tuples (keys and candidates, first-seen order); table: key tuple -> candidate
    lexicon indices; by_length: token count -> lexicon indices (the random words of the same length)."""

    def __init__(self, lexicon, table, source=None, sha256=None, dropped=0, dropped_at=()):
        self.lexicon = [tuple(w) for w in lexicon]
        self.table = {tuple(k): list(v) for k, v in table.items()}
        self.source, self.sha256, self.dropped = source, sha256, dropped
        self.dropped_at = list(dropped_at)
        self.by_length = {}
        for i, w in enumerate(self.lexicon):
            self.by_length.setdefault(len(w), []).append(i)

    @classmethod
    def load(cls, path, tokenize):
        """tokenize: text -> list of ids (the dataset's tokenizer). Bad lines raise one DataError naming them."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise DataError(f"--similar_words_path {path}: {e.strerror}") from None
        entries, bad = parse_similar_words(raw, path)
        if bad:
            shown = "; ".join(f"line {n}: {why}" for n, why in bad[:5])
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise DataError(f"{path}: {len(bad)} bad line(s) in the similar-words file (expected "
                            f"`word<TAB>candidate candidate ...`): {shown}{more}")
        if not entries:
            raise DataError(f"{path}: the similar-words file has no entries (expected `word<TAB>candidate ...` lines)")
        index, lexicon, table, dropped = {}, [], {}, []

        def intern(ids):
            if ids not in index:
                index[ids] = len(lexicon)
                lexicon.append(ids)
            return index[ids]

        for no, word, cands in entries:
            key = tuple(tokenize(word))
            if not key:
                dropped += [(no, word, c, "the word has no tokens") for c in cands]
                continue
            slot = table.setdefault(key, [])
            intern(key)
            for c in cands:
                ids = tuple(tokenize(c))
                if len(ids) != len(key) or ids == key:
                    dropped.append((no, word, c, "the word itself" if ids == key else
                                    f"{len(ids)} token(s), the word {len(key)}"))
                    continue
                j = intern(ids)
                if j not in slot:
                    slot.append(j)
        table = {k: v for k, v in table.items() if v}
        if not table:
            raise DataError(f"{path}: no word of the similar-words file has a usable candidate (a candidate needs "
                            f"as many tokens as its word, and must differ from it): {describe_dropped(dropped)}")
        return cls(lexicon, table, os.path.basename(path), hashlib.sha256(raw).hexdigest(), len(dropped), dropped)

    def describe(self):
        return {"file": self.source, "sha256": self.sha256, "words": len(self.table), "lexicon": len(self.lexicon),
                "dropped_candidates": self.dropped}

    def to_json(self):
        keys = sorted(self.table)
        return {"lexicon": [list(w) for w in self.lexicon], "keys": [list(k) for k in keys],
                "candidates": [self.table[k] for k in keys]}

    @classmethod
    def from_json(cls, d, describe=None):
        table = {tuple(k): c for k, c in zip(d["keys"], d["candidates"])}
        s = cls(d["lexicon"], table)
        if describe:
            s.source, s.sha256, s.dropped = describe.get("file"), describe.get("sha256"), describe.get("dropped_candidates", 0)
        return s

    def flat(self):
        """Flat arrays for the C path: lexicon ids/offsets, then keys (lexicon indices, sorted by key) with
        their candidate offsets and candidates."""
        import numpy as np

        lex_ids = np.fromiter((t for w in self.lexicon for t in w), np.int64)
        lex_off = np.cumsum([0] + [len(w) for w in self.lexicon]).astype(np.int64)
        index = {w: i for i, w in enumerate(self.lexicon)}
        keys = sorted(self.table)
        key_lex = np.array([index[k] for k in keys], np.int64)
        cand_off = np.cumsum([0] + [len(self.table[k]) for k in keys]).astype(np.int64)
        cands = np.fromiter((c for k in keys for c in self.table[k]), np.int64)
        return lex_ids, lex_off, key_lex, cand_off, cands


def describe_dropped(dropped, limit=5):
    """The first dropped candidates [(line, word, candidate, why)] in words."""
    shown = "; ".join(f"line {no}: {w!r} -> {c!r} ({why})" for no, w, c, why in dropped[:limit])
    return shown + (f" (and {len(dropped) - limit} more)" if len(dropped) > limit else "")


def parse_similar_words(raw, path):
    """bytes of a similar-words file -> ([(line_no, word, [candidates])], [(line_no, why)])."""
    entries, bad = [], []
    for no, line in enumerate(raw.split(b"\n"), 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            bad.append((no, f"invalid UTF-8 at byte {e.start}"))
            continue
        if text.startswith("\ufeff") and no == 1:
            text = text[1:]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        if "\t" not in text:
            bad.append((no, "no TAB between the word and its candidates"))
            continue
        word, rest = text.split("\t", 1)
        word = word.strip()
        cands = rest.split()
        if not word:
            bad.append((no, "empty word"))
        elif any(c.isspace() for c in word):
            bad.append((no, f"the word {word!r} contains whitespace"))
        elif not cands:
            bad.append((no, f"no candidates for {word!r}"))
        else:
            entries.append((no, word, cands))
    return entries, bad


# ------------------------------------------------------------------------------------------ strategies
def _units(ids, bits, special_ids, whole_word):
    """-> list of [start, end) token ranges of the units, ascending."""
    units = []
    for i, t in enumerate(ids):
        if t in special_ids:
            continue
        if whole_word and not bits[i] and units and units[-1][1] == i:
            units[-1][1] = i + 1
        else:
            units.append([i, i + 1])
    return units


def span_candidates(units, o, rng):
    """Spans of units, drawn left to right, cut at special tokens: [(first unit, last unit + 1)]. A span's
    drawn length is its length unless fewer adjacent units remain."""
    cum, spans, k = o.span_cum, [], 0
    while k < len(units):
        length = draw_from(cum, o.span_max_length, rng)
        j = k + 1
        while j < len(units) and j - k < length and units[j - 1][1] == units[j][0]:
            j += 1
        spans.append((k, j))
        k = j
    return spans


def _replace(out, a, b, r, per_word, rng, vocab_size, mask_id):
    """80/10/10 over tokens a..b-1: one decision r (per_word) or one per token."""
    for i in range(a, b):
        ri = r if per_word else rng.random()
        if ri < 0.8:
            out[i] = mask_id
        elif ri < 0.9:
            out[i] = rng.randint(1, vocab_size - 1)


def _random_word(n, sim, rng, vocab_size, avoid):
    """A word of the similar-words file with n tokens, else n random tokens other than the ids in `avoid`."""
    words = sim.by_length.get(n) if sim is not None else None
    if words:
        return sim.lexicon[words[rng.randint(0, len(words) - 1)]]
    return [_random_token(rng, vocab_size, avoid) for _ in range(n)]


def avoided_ids(special_ids, mask_id, vocab_size):
    """The ids MacBERT's random tokens avoid ([MASK] and the special tokens), sorted, within 1..vocab_size-1
    (none when nothing else would be left)."""
    avoid = sorted(t for t in set(special_ids) | {mask_id} if 1 <= t < vocab_size)
    return avoid if len(avoid) < vocab_size - 1 else []


def _random_token(rng, vocab_size, avoid):
    """Uniform over 1..vocab_size-1 without the ids in `avoid` (sorted): one draw, shifted past them."""
    t = rng.randint(1, vocab_size - 1 - len(avoid))
    for a in avoid:
        if t >= a:
            t += 1
    return t


def mask_with(ids, bits, special_ids, rng: SplitMix64, vocab_size, mask_id, o: MaskingOptions):
    """-> (new ids, positions ascending, labels): the original ids at the positions, or (pert) the original
    positions of the tokens now there."""
    if o.strategy == "mlm":
        return mask_instance(ids, bits, special_ids, rng, vocab_size, mask_id, o.prob, o.whole_word, o.per_word)
    units = _units(ids, bits, special_ids, o.whole_word)
    n_cand = sum(e - s for s, e in units)
    if n_cand == 0:
        return list(ids), [], []
    budget = max(1, int(n_cand * o.prob + 0.5))
    out = list(ids)
    chosen = []
    count = 0
    if o.strategy in ("span", "pert"):
        if o.strategy == "span":
            cands = [(units[k][0], units[j - 1][1]) for k, j in span_candidates(units, o, rng)]
        else:
            cands = [tuple(u) for u in units]
        rng.shuffle(cands)
        for a, b in cands:
            if count >= budget:
                break
            if count + (b - a) > budget:
                continue
            count += b - a
            chosen.extend(range(a, b))
            if o.strategy == "span":
                r = rng.random() if o.per_word else None
                _replace(out, a, b, r, o.per_word, rng, vocab_size, mask_id)
        chosen.sort()
        if o.strategy == "span":
            return out, chosen, [ids[i] for i in chosen]
        return _permute(ids, out, chosen, o.pert_window, rng)
    # ngram / macbert
    avoid = avoided_ids(special_ids, mask_id, vocab_size) if o.strategy == "macbert" else None
    cum = o.ngram_cum
    N = len(cum) - 1
    nu = len(units)
    run = [1] * nu  # adjacent units from k on (capped at N)
    for k in range(nu - 2, -1, -1):
        if units[k][1] == units[k + 1][0]:
            run[k] = min(N, run[k + 1] + 1)
    starts = list(range(nu))
    rng.shuffle(starts)
    covered = [False] * nu
    for k in starts:
        if count >= budget:
            break
        if covered[k]:
            continue
        n = draw_from(cum, run[k], rng)
        while n > 1 and count + units[k + n - 1][1] - units[k][0] > budget:
            n -= 1
        ntok = units[k + n - 1][1] - units[k][0]
        if count + ntok > budget or any(covered[k:k + n]):
            continue
        count += ntok
        for u in range(k, k + n):
            covered[u] = True
            a, b = units[u]
            chosen.extend(range(a, b))
            if o.strategy == "ngram":
                r = rng.random() if o.per_word else None
                _replace(out, a, b, r, o.per_word, rng, vocab_size, mask_id)
                continue
            r = rng.random()  # macbert: per word
            if r < 0.8:
                cands = o.similar.table.get(tuple(ids[a:b])) if o.similar is not None else None
                if cands:
                    word = o.similar.lexicon[cands[rng.randint(0, len(cands) - 1)]]
                else:
                    word = _random_word(b - a, o.similar, rng, vocab_size, avoid)
            elif r < 0.9:
                word = _random_word(b - a, o.similar, rng, vocab_size, avoid)
            else:
                continue
            out[a:b] = word
    chosen.sort()
    return out, chosen, [ids[i] for i in chosen]


def _permute(ids, out, chosen, window, rng):
    """PERT: shuffle the chosen positions (ascending) within each window of `window` positions."""
    labels = list(chosen)
    i = 0
    while i < len(chosen):
        j = i
        while j < len(chosen) and chosen[j] // window == chosen[i] // window:
            j += 1
        src = chosen[i:j]
        rng.shuffle(src)
        for p, s in zip(chosen[i:j], src):
            out[p] = ids[s]
        labels[i:j] = src
        i = j
    return out, chosen, labels
