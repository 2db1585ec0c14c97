"""The rules that change a decoding step's scores before the next token is chosen: transformers' logits
processors (generation/logits_process.py), in the order transformers' `generate` applies them
(`_get_logits_processor`), as uer_like.generate uses them for greedy decoding, sampling and beam search.

    repetition_penalty     RepetitionPenaltyLogitsProcessor: scores of tokens already in the row / penalty
                           (positive scores) or * penalty (negative ones)
    no_repeat_ngram_size   NoRepeatNGramLogitsProcessor: a token that would complete an n-gram already in the
                           row is banned (-inf)
    bad_words_ids          NoBadWordsLogitsProcessor: a one-token entry is banned everywhere; a longer one bans its
                           last token where the row ends with the rest (a one-token entry equal to eos is dropped)
    min_length,            MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor: eos banned while the row is
    min_new_tokens         shorter than min_length tokens (its sequence, below) or has fewer than min_new_tokens new
    forced_bos_token_id    ForcedBOSTokenLogitsProcessor: the first new token of a row whose sequence is one token
    forced_eos_token_id    ForcedEOSTokenLogitsProcessor: the last new token a row's budget allows
    temperature, top_k,    the sampling warpers (do_sample only), after every rule above; beam sampling keeps at
    top_p                  least 2 tokens (transformers' min_tokens_to_keep)

A row's sequence (transformers' `input_ids`): a left-to-right LM's prompt and its new tokens; an
encoder-decoder model's decoder start token and its new tokens (never the source). The scores are the logits
(greedy, sampling) or their log_softmax (beam search: transformers applies its processors there, before the
beam scores are added). Padding never counts: each prompt is ruled as it would be alone (transformers, with a
left-padded batch of prompts of different lengths, counts the padding ids in n-grams and bad words and the
padded length for min_length and forced_bos_token_id; with one prompt, or prompts of one length, the two agree).

Each rule is a class whose `build(settings)` returns an instance, or None where its setting is off: an off rule
is not in the list and costs nothing per step. A rule declares the per-row state it reads (`needs`: "tokens",
each row's sequence so far; "seen", the set of its tokens); State keeps only what some rule reads.
"""
import math

import torch

__all__ = ["RULES", "Rules", "State", "apply_repetition_penalty", "top_k_filter", "top_p_filter"]

_PAD = -1  # a padding column of State.tokens: never equal to a token, so never part of an n-gram or a bad word


# ---------------------------------------------------------------------------------------------- the functions
def apply_repetition_penalty(scores, seen, penalty):
    """transformers' RepetitionPenaltyLogitsProcessor: scores of tokens already in the row (seen: bool
    [rows, vocab]) are divided by the penalty when positive, multiplied when negative."""
    penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalised, scores)


def top_k_filter(scores, top_k, min_keep=1):
    """transformers' TopKLogitsWarper: keep the top_k highest scores (ties with the k-th kept), -inf elsewhere."""
    k = min(max(top_k, min_keep), scores.size(-1))
    kth = torch.topk(scores, k)[0][..., -1, None]
    return scores.masked_fill(scores < kth, float("-inf"))


def top_p_filter(scores, top_p, min_keep=1):
    """transformers' TopPLogitsWarper: keep the smallest set of most probable tokens whose probabilities
    add up to top_p or more (the token that crosses top_p is kept), -inf elsewhere."""
    sorted_scores, order = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[..., -min_keep:] = False
    remove = remove.scatter(1, order, remove)
    return scores.masked_fill(remove, float("-inf"))


def _ban(scores, rows_tokens, vocab):
    """scores with -inf where `rows_tokens` (long [rows, k]; an id outside [0, vocab) bans nothing) names a token."""
    banned = torch.zeros(scores.size(0), vocab + 1, dtype=torch.bool, device=scores.device)
    ok = (rows_tokens >= 0) & (rows_tokens < vocab)
    banned.scatter_(1, torch.where(ok, rows_tokens, vocab), True)
    return scores.masked_fill(banned[:, :vocab], float("-inf"))


def _force(scores, token, rows=None):
    """Every score -inf but `token`'s, 0 (transformers' forced-token processors), in `rows` (bool [rows]) or all."""
    forced = torch.full_like(scores, -math.inf)
    forced[:, token] = 0
    return forced if rows is None else torch.where(rows[:, None], forced, scores)


# ---------------------------------------------------------------------------------------------- per-row state
class State:
    """What the rules read of each row (rows = prompts x beams, a prompt's beams adjacent): `tokens`, long
    [rows, width + max_new], its sequence so far left-padded with -1 (`length` columns filled); `seen`, bool
    [rows, vocab], the tokens of its sequence; `context` [rows], the length of its sequence before the first new
    token (`uniform_context`: that length when every row shares it, else None); `budget` [rows], its number of
    new tokens (`uniform_budget` likewise). `src`, `seg` [rows, width]: the sequences before generation
    (seg 0 = padding)."""

    def __init__(self, src, seg, vocab, max_new, budget, needs):
        rows, width = src.shape
        self.length = width
        self.context = (seg != 0).sum(1)
        self.uniform_context = _uniform(self.context)
        self.budget = budget
        self.uniform_budget = _uniform(budget)
        self.tokens = self.seen = None
        if "tokens" in needs:
            self.tokens = torch.full((rows, width + max_new), _PAD, dtype=torch.long, device=src.device)
            self.tokens[:, :width] = src.masked_fill(seg == 0, _PAD)
        if "seen" in needs:
            seen = torch.zeros(rows, vocab + 1, dtype=torch.bool, device=src.device)
            seen.scatter_(1, src.masked_fill(seg == 0, vocab), True)
            self.seen = seen[:, :vocab].contiguous()

    def append(self, tokens):
        """The step's chosen tokens [rows] join each row's sequence."""
        if self.tokens is not None:
            self.tokens[:, self.length] = tokens
        if self.seen is not None:
            self.seen.scatter_(1, tokens[:, None], True)
        self.length += 1

    def reorder(self, index):
        """Keep rows `index` (beam search: each new beam's parent), before `append`."""
        if self.tokens is not None:
            self.tokens = self.tokens.index_select(0, index)
        if self.seen is not None:
            self.seen = self.seen.index_select(0, index)


def _uniform(values):
    first = int(values[0])
    return first if bool((values == first).all()) else None


# ---------------------------------------------------------------------------------------------- the rules
class RepetitionPenalty:
    needs = ("seen",)

    @classmethod
    def build(cls, s):
        p = s.get("repetition_penalty")
        return cls(p) if p is not None and p != 1.0 else None

    def __init__(self, penalty):
        self.penalty = penalty

    def __call__(self, scores, state, t):
        return apply_repetition_penalty(scores, state.seen, self.penalty)


class NoRepeatNGram:
    """transformers' NoRepeatNGramLogitsProcessor, vectorised as it is: the row's last n - 1 tokens are matched
    against every n-gram of its sequence, and each match bans its last token."""

    needs = ("tokens",)

    @classmethod
    def build(cls, s):
        n = s.get("no_repeat_ngram_size")
        return cls(n, s["vocab"]) if n else None

    def __init__(self, n, vocab):
        self.n, self.vocab = n, vocab

    def __call__(self, scores, state, t):
        n, length = self.n, state.length
        if length < n:
            return scores
        seq = state.tokens[:, :length]
        windows = seq.unfold(1, n, 1)  # [rows, length - n + 1, n]; a padded row's short prefix matches none
        match = (windows[..., :-1] == seq[:, None, length - n + 1:]).all(-1)
        return _ban(scores, torch.where(match, windows[..., -1], _PAD), self.vocab)


class BadWords:
    """transformers' NoBadWordsLogitsProcessor (a SequenceBiasLogitsProcessor with bias -inf)."""

    @classmethod
    def build(cls, s):
        words = s.get("bad_words_ids")
        if not words:
            return None
        eos = s.get("eos_token_id")
        words = [w for w in words if w != [eos]]  # transformers drops eos from the one-token entries
        return cls(words, s["vocab"], s["device"]) if words else None

    def __init__(self, words, vocab, device):
        self.vocab = vocab
        single = [w[0] for w in words if len(w) == 1]
        self.single = torch.tensor(single, dtype=torch.long, device=device)[None] if single else None
        groups = {}
        for w in words:
            if len(w) > 1:
                groups.setdefault(len(w) - 1, []).append(w)
        # per prefix length: the prefixes [k, length] and the token each one bans [k]
        self.groups = [(torch.tensor([w[:-1] for w in g], device=device), torch.tensor([w[-1] for w in g],
                                                                                       device=device))
                       for g in groups.values()]
        self.needs = ("tokens",) if self.groups else ()

    def __call__(self, scores, state, t):
        banned = [] if self.single is None else [self.single.expand(scores.size(0), -1)]
        for prefixes, last in self.groups:
            k = prefixes.size(1)
            if k > state.length:
                continue
            match = (state.tokens[:, None, state.length - k:state.length] == prefixes[None]).all(-1)
            banned.append(torch.where(match, last[None], _PAD))
        return _ban(scores, torch.cat(banned, 1), self.vocab)


class MinLength:
    """transformers' MinLengthLogitsProcessor and MinNewTokensLengthLogitsProcessor as one rule: eos is banned
    for the first max(min_new_tokens, min_length - the row's sequence length before generation) new tokens."""

    needs = ()

    @classmethod
    def build(cls, s):
        eos = s.get("eos_token_id")
        if eos is None or not (s.get("min_new_tokens") or s.get("min_length")):
            return None
        return cls(eos, s.get("min_new_tokens") or 0, s.get("min_length") or 0)

    def __init__(self, eos, min_new, min_length):
        self.eos, self.min_new, self.min_length = eos, min_new, min_length

    def __call__(self, scores, state, t):
        if state.uniform_context is not None:
            if t >= max(self.min_new, self.min_length - state.uniform_context):
                return scores
            scores = scores.clone()
            scores[:, self.eos] = float("-inf")
            return scores
        rows = (t < self.min_new) | (t < self.min_length - state.context)
        scores = scores.clone()
        scores[:, self.eos] = scores[:, self.eos].masked_fill(rows, float("-inf"))
        return scores


class _ForcedToken:
    """A rule that forces one token (the setting `key`) at some step of each row."""
    needs = ()
    key = None

    @classmethod
    def build(cls, s):
        return cls(s[cls.key]) if s.get(cls.key) is not None else None

    def __init__(self, token):
        self.token = token


class ForcedBOS(_ForcedToken):
    key = "forced_bos_token_id"

    def __call__(self, scores, state, t):
        if t != 0:
            return scores
        if state.uniform_context is not None:
            return _force(scores, self.token) if state.uniform_context == 1 else scores
        return _force(scores, self.token, state.context == 1)


class ForcedEOS(_ForcedToken):
    key = "forced_eos_token_id"

    def __call__(self, scores, state, t):
        if state.uniform_budget is not None:
            return _force(scores, self.token) if t == state.uniform_budget - 1 else scores
        return _force(scores, self.token, state.budget == t + 1)


class Temperature:
    needs = ()

    @classmethod
    def build(cls, s):
        temp = s.get("temperature")
        return cls(temp) if s.get("do_sample") and temp is not None and temp != 1.0 else None

    def __init__(self, temperature):
        self.temperature = temperature

    def __call__(self, scores, state, t):
        return scores / self.temperature


class TopK:
    needs = ()

    @classmethod
    def build(cls, s):
        return cls(s["top_k"], s["min_keep"]) if s.get("do_sample") and s.get("top_k") else None

    def __init__(self, k, min_keep):
        self.k, self.min_keep = k, min_keep

    def __call__(self, scores, state, t):
        return top_k_filter(scores, self.k, self.min_keep)


class TopP:
    needs = ()

    @classmethod
    def build(cls, s):
        p = s.get("top_p")
        return cls(p, s["min_keep"]) if s.get("do_sample") and p is not None and p < 1.0 else None

    def __init__(self, p, min_keep):
        self.p, self.min_keep = p, min_keep

    def __call__(self, scores, state, t):
        return top_p_filter(scores, self.p, self.min_keep)


# transformers' order (_get_logits_processor): the processors, then (sampling only) the warpers. The forced
# tokens come after every ban (they replace the whole row); the warpers see the result.
RULES = (RepetitionPenalty, NoRepeatNGram, BadWords, MinLength, ForcedBOS, ForcedEOS, Temperature, TopK, TopP)


class Rules:
    """The rules of one generate call: Rules.build(settings) -> Rules, or None when every rule is off (the
    decoding loop then calls nothing). settings: generate's options by name, plus `vocab` (the model's output
    size), `device`, `min_keep` (1; beam sampling: 2). rules(scores, state, t) -> scores."""

    def __init__(self, rules):
        self.rules = rules
        self.needs = {n for r in rules for n in r.needs}

    @classmethod
    def build(cls, settings):
        rules = [r for r in (rule.build(settings) for rule in RULES) if r is not None]
        return cls(rules) if rules else None

    def state(self, src, seg, vocab, max_new, budget):
        """The per-row State these rules read (see State), for the sequences src/seg [rows, width]."""
        return State(src, seg, vocab, max_new, budget, self.needs)

    def __call__(self, scores, state, t):
        for rule in self.rules:
            scores = rule(scores, state, t)
        return scores
