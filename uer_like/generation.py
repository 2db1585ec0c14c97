"""Text generation from left-to-right language models (GPT-2 and its variants, LSTM/GRU language models) and
from encoder-decoder models (BART, PEGASUS, T5: a model with a `decoder`).

    uer_like.generate(model, prompts, max_new_tokens, ...) -> one list of new token ids per prompt
    uer_like.score(model, sequences) -> one list of per-token log-probabilities per sequence

The model is any `Model` with an `lm` target and a left-to-right encoder: a transformer with the causal
mask (learned, sinusoidal or rotary positions, pre- or post-LN, ALBERT sharing) or an lstm/gru/rnn stack.
A prefix LM (UniLM: mask causal_with_prefix, data_processor prefixlm) generates too: each prompt is its source
(segment 1, attended bidirectionally; with the cache computed once at prefill) and the new tokens its target
(segment 2, causal); `score` needs a causal model.

How a batch is laid out: prompts of different lengths are **left-padded** to the longest one. Every row
counts its own positions (a prompt gets the positions it would get alone: 0 for its first real token) and
its padding is masked out of attention (transformers) or never enters the state (RNNs), so a prompt's
continuation does not depend on the other prompts of its batch. A batch whose prompts have one length
runs without any mask (the cheaper step).

Decoding is incremental: one prefill over the prompts writes a preallocated cache (`Model.init_cache`: the
keys and values of every layer for prompt + max_new_tokens columns, or an RNN's carried state), then
every step feeds one token per row. A single new query attends to every cached key through an explicit
padding mask or none at all, never through scaled_dot_product_attention's `is_causal` flag (which aligns
top-left: one query would see only the first key). `use_cache=False` re-runs the whole sequence for each
token (the reference the cache is tested against).

The decoding rules follow transformers' `generate`: greedy; sampling with temperature, top-k and top-p;
beam search with transformers' length penalty (a finished hypothesis scores sum(log p) / new_tokens **
length_penalty) and its default stopping heuristic (`early_stopping=False`); beam sampling with do_sample and
num_beams > 1. Before a token is chosen, transformers' logits processors change the step's scores, in its
order (uer_like/logits_processors.py: a list of rules, each off by default and then never called):
repetition_penalty, no_repeat_ngram_size, bad_words_ids, min_length / min_new_tokens, forced_bos_token_id,
forced_eos_token_id, then (sampling) temperature, top-k, top-p; on the logits (greedy, sampling) or their
log_softmax (beam search, before the beam scores are added). They count a row's sequence as transformers'
input_ids: a prompt and its new tokens, or an encoder-decoder's start token and its new tokens.

Length: prompt + max_new_tokens must fit the model's position table (max_seq_length, for learned,
sinusoidal or rotary positions): a longer request is an error naming the prompt, never a silent run past
the table. `max_new_tokens` may be one number per prompt (a row stops at its own budget), which is how
scripts/generate_lm.py fills each prompt up to --seq_length.

Encoder-decoder models: `prompts` are the sources (encoder input ids, right-padded together, padding masked);
the encoder runs once per source and every decoder layer's cross-attention keys and values are projected once
per source (beam search keeps them per source, not per beam: the beams of a source attend to them as one
longer query sequence); the decoder starts from `decoder_start_token_id` and keeps a self-attention key/value
cache. The result is the decoder's ids without the start token. decoder_start_token_id and eos_token_id, when
not given, are the ones of the Hugging Face config.json the model was loaded from (transformers' defaults);
a model without one needs decoder_start_token_id given. The decoder's positions (learned or sinusoidal
tables) bound max_new_tokens; the sources are bounded by the encoder's.

Beam search moves cached keys and values between beams only where beams differ: a prompt's columns (shared by
all its beams) and an encoder-decoder's cross-attention memory are never copied, only the generated columns
(gathered in one pass into a second buffer: layers/context.py KVCache.reorder).

On CPU in float32 a decoding step is bound by reading the weights; the decoder's (or a left-to-right LM's) linear
layers and the lm target run through a path for the step's number of rows (layers/decoding_linear.py): the
native kernel on the weights themselves for one or two rows; from three rows a oneDNN-packed copy, made at the
first call and kept for later ones (a second copy of those weights in memory while the model lives).

A returned continuation stops after the end token (included) when `eos_token_id` is given, or after
max_new_tokens tokens.

Errors are one line, before any work: every option by `check_options` (the ranges scripts/generate_lm.py
declares its flags with, finite; beams and ids within the vocabulary), every prompt (token ids within the
vocabulary and, with the new tokens, within the positions). A model whose output turns out NaN or inf
(NaN/inf weights, an overflow) is a CheckpointError naming the weight, raised after the decoding loop
(checked on the device, without a synchronisation per step), never garbage tokens or a multinomial
traceback.
"""
import logging
import operator
import os

import torch
import torch.nn.functional as F

from .errors import CheckpointError, ConfigError, DataError
from .flags import GENERATION_RULES, NONNEG, Int, TokenLists, check_value
from .layers.decoding_linear import decoding_linears
from .logits_processors import (Rules, apply_repetition_penalty, top_k_filter,  # noqa: F401  (public here)
                               top_p_filter)

__all__ = ["generate", "score"]

logger = logging.getLogger("uer_like")

_NEG = -1.0e9  # transformers' beam-search "impossible" score


# ---------------------------------------------------------------------------------------------- checks
def check_lm(model, seq2seq=False, prefix=False):
    """The model must have an lm target and a left-to-right encoder (or, with seq2seq, a decoder; with prefix,
    a prefix LM's mask causal_with_prefix); a one-line error otherwise."""
    config = model.config
    if getattr(model, "decoder", None) is not None:
        if not seq2seq:
            config.refuse_decoder("scoring and text generation from prompts (score, generate_text, "
                                  "scripts/generate_lm.py)")
        return
    if "lm" not in config.target:
        raise ConfigError(f"the model has no 'lm' target (its targets: {', '.join(config.target)}); generation "
                          "needs a left-to-right language model (target lm, as UER's GPT-2 and LSTM LMs)")
    if config.encoder == "transformer" and config.mask == "causal_with_prefix" and not prefix:
        raise ConfigError("the model is a prefix LM (mask 'causal_with_prefix'): it continues a source "
                          "(uer_like.generate, scripts/generate_lm.py); scoring whole sequences needs mask 'causal'")
    if config.encoder == "transformer" and config.mask not in ("causal", "causal_with_prefix"):
        raise ConfigError(f"the model's transformer uses mask '{config.mask}'; generation needs a left-to-right "
                          "model (mask 'causal')")
    if getattr(model.encoder, "bidirectional", False):
        raise ConfigError(f"the '{config.encoder}' encoder is bidirectional (it reads the whole sequence); "
                          "generation needs a left-to-right encoder")


SWITCHES = ("do_sample", "use_cache", "return_logits")
TOKEN_OPTIONS = ("eos_token_id", "decoder_start_token_id", "forced_bos_token_id", "forced_eos_token_id")
TOKEN_ID = Int(max=None)


def check_options(options, vocab=None, positions=None, prefix=""):
    """Check generation options by name and return them normalised (numpy's and torch's integers as int);
    None leaves an option unset. The numeric ones by flags.GENERATION_RULES (the ranges of generate_lm.py's
    flags: finite, within range), the switches True or False, the token ids (TOKEN_OPTIONS, bad_words_ids)
    and num_beams against `vocab` (the model's vocabulary size), seq_length
    against `positions` (its position table); max_new_tokens may be one number per prompt. A bad one is a
    ConfigError line naming it as `prefix + name` (scripts/generate_lm.py: "--num_beams")."""
    out = {}
    for name, value in options.items():
        flag = prefix + name
        if value is None:
            pass
        elif name in SWITCHES:
            if not isinstance(value, bool):
                raise ConfigError(f"{flag} must be True or False, got {value!r}")
        elif name == "max_new_tokens" and (isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) == 1):
            value = [check_value(b, NONNEG, flag) for b in (value.tolist() if hasattr(value, "tolist") else value)]
        elif name == "bad_words_ids":
            value = check_value(value, TokenLists(vocab), flag)
        elif name in TOKEN_OPTIONS:
            value = check_value(value, TOKEN_ID, flag)
            if vocab is not None and not 0 <= value < vocab:
                raise ConfigError(f"{flag} must be a token id in [0, {vocab}) (the model's vocabulary), got {value}")
        elif name in GENERATION_RULES:
            value = check_value(value, GENERATION_RULES[name], flag)
        else:
            raise ConfigError(f"unknown generation option {flag}")
        out[name] = value
    if vocab is not None and (out.get("num_beams") or 1) > vocab:
        raise ConfigError(f"{prefix}num_beams must be <= {vocab} (the model's vocabulary size), got {out['num_beams']}")
    if positions is not None and (out.get("seq_length") or 0) > positions:
        raise ConfigError(f"{prefix}seq_length {out['seq_length']} exceeds the model's position table "
                          f"(max_seq_length {positions})")
    return out


def _check_prompts(prompts, vocab, what="prompt", first=0):
    """Lists of token ids (lists, tuples, arrays or tensors of integers) within [0, vocab); errors name
    `what` and its number (counted from `first`)."""
    if hasattr(prompts, "tolist"):  # a tensor or an array
        prompts = prompts.tolist()
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise DataError(f"give a non-empty list of {what}s (each a list of token ids)")
    out = []
    for i, p in enumerate(prompts, first):
        if hasattr(p, "tolist"):
            p = p.tolist()
        if not isinstance(p, (list, tuple)):
            hint = f" (give a list of {what}s, e.g. {str([list(prompts)])[:40]} for one)" if i == first else ""
            raise DataError(f"{what} {i} is not a list of token ids: {str(p)[:60]}{hint}")
        if not p:
            raise DataError(f"{what} {i} is empty: give at least one token (e.g. the start token [CLS])")
        ids = []
        for x in p:
            try:
                ids.append(operator.index(x))
            except TypeError:
                raise DataError(f"{what} {i} holds {x!r}, not a token id") from None
        lo, hi = min(ids), max(ids)
        if lo < 0 or hi >= vocab:
            raise DataError(f"{what} {i} holds token id {lo if lo < 0 else hi}, outside the model's vocabulary "
                            f"[0, {vocab})")
        out.append(ids)
    return out


def _budgets(max_new_tokens, n):
    """One budget per prompt from max_new_tokens (checked by check_options: an int or a list of ints)."""
    if isinstance(max_new_tokens, int):
        return [max_new_tokens] * n
    if len(max_new_tokens) != n:
        raise ConfigError(f"max_new_tokens gives {len(max_new_tokens)} budgets for {n} prompts")
    return max_new_tokens


def _check_lengths(model, prompts, budgets):
    limit = model.config.position_limit
    if limit is None:
        return
    if _is_seq2seq(model):
        for i, (p, b) in enumerate(zip(prompts, budgets)):
            if len(p) > limit:
                raise DataError(f"source {i} has {len(p)} tokens, more than the model's position table covers "
                                f"(max_seq_length {limit}): shorten it")
            if b > limit:
                raise DataError(f"{b} new tokens need {b} decoder positions but the model's position table has "
                                f"{limit} (max_seq_length): ask for at most {limit}")
        return
    for i, (p, b) in enumerate(zip(prompts, budgets)):
        if len(p) + b > limit:
            raise DataError(f"prompt {i} has {len(p)} tokens; with {b} new tokens it would need {len(p) + b} "
                            f"positions but the model's position table has {limit} (max_seq_length): "
                            f"ask for at most {max(limit - len(p), 0)} new tokens or shorten the prompt")


# ---------------------------------------------------------------------------------------------- guards
class _Guard:
    """Non-finite scores, noted on the device (no synchronisation per step) and raised in one line after the
    loop: NaN/inf logits (NaN/inf weights, or an overflow) would decode as garbage (an argmax over NaN) or
    stop torch.multinomial with a traceback (a device-side assert on CUDA); probabilities that overflow
    (a tiny temperature) likewise. NaN probabilities are sampled as 1 until then. (Reductions, not
    torch.isfinite over [rows, vocab], which costs several times a softmax on CPU.)"""

    def __init__(self, device):
        self.bad_logits = torch.zeros((), dtype=torch.bool, device=device)
        self.bad_probs = torch.zeros((), dtype=torch.bool, device=device)

    def logits(self, logits):
        lo, hi = torch.aminmax(logits)  # NaN propagates
        self.bad_logits |= ~(torch.isfinite(lo) & torch.isfinite(hi))

    def probs(self, probs):
        self.bad_probs |= ~torch.isfinite(probs.sum())  # probabilities <= 1: the sum cannot overflow
        return probs.nan_to_num_(nan=1.0)

    def check(self, model, temperature, repetition_penalty):
        if bool(self.bad_logits):
            raise nonfinite_output(model)
        if bool(self.bad_probs):
            raise ConfigError(f"sampling probabilities are not finite: temperature {temperature:g} and "
                              f"repetition_penalty {repetition_penalty:g} scale the scores past float32's range; "
                              "use a larger temperature (or greedy decoding)")


def nonfinite_output(model):
    """The error for a model whose output is NaN or inf, naming the first weight that is."""
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            kind = "NaN" if bool(torch.isnan(p).any()) else "inf"
            return CheckpointError(f"the model's output is not finite (NaN or inf): its weight {name} holds {kind} "
                                   "(a diverged model: use a checkpoint saved before the loss became NaN)")
    dtype = next(model.parameters()).dtype
    return CheckpointError(f"the model's output is not finite (NaN or inf) although its weights are finite: an "
                           f"overflow in {dtype}? (run the model in float32)")


# ---------------------------------------------------------------------------------------------- the model side
def _is_seq2seq(model):
    return getattr(model, "decoder", None) is not None


def _feeder(model, prompts, device, max_new, use_cache, beams=1, start=None):
    """What feeds the model, rows = prompts x beams (beams of one prompt adjacent): a _Decoder (left-to-right
    LMs) or a _Seq2SeqDecoder (encoder-decoder models). Its src, seg [rows, width] are each row's sequence
    before the first new token, seg 0 for padding (what the logits rules count: logits_processors.State)."""
    if _is_seq2seq(model):
        return _Seq2SeqDecoder(model, prompts, start, beams, max_new, use_cache, device)
    src, seg, lengths = _left_pad(prompts, device)
    if beams > 1:
        expand = torch.arange(len(prompts), device=device).repeat_interleave(beams)
        src, seg, lengths = src[expand], seg[expand], lengths[expand]
    return _Decoder(model, src, seg, lengths, max_new, use_cache)


def _is_prefix_lm(model):
    return model.config.encoder == "transformer" and model.config.mask == "causal_with_prefix"


def _left_pad(prompts, device):
    """-> src, seg [batch, longest] left-padded (seg 1 = token, 0 = padding), lengths [batch]."""
    n, s = len(prompts), max(len(p) for p in prompts)
    src = torch.zeros(n, s, dtype=torch.long)
    seg = torch.zeros(n, s, dtype=torch.long)
    for i, p in enumerate(prompts):
        src[i, s - len(p):] = torch.tensor(p, dtype=torch.long)
        seg[i, s - len(p):] = 1
    lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long)
    return src.to(device), seg.to(device), lengths.to(device)


class _Decoder:
    """Feeds the model: prefill() over the left-padded prompts, then step(tokens) one token per row, each
    returning the next-token logits [rows, vocab] (float32). reorder(index) keeps rows `index` (beams).

    Cached: a preallocated cache of prompt + max_new columns. Uncached: the whole sequence each step.
    A prefix LM (mask causal_with_prefix): the prompt is the source, segment 1, read bidirectionally (with the
    cache, once, at prefill); the new tokens are the target, segment 2, each seeing the source and the
    targets before it, as in training."""

    def __init__(self, model, src, seg, lengths, max_new, use_cache):
        rows, p = src.shape
        self.model = model
        self.lm = model.target.lm
        self.padded = bool((seg == 0).any())
        self.use_cache = use_cache
        dev = src.device
        # positions of the new tokens: each row continues its own count
        self.new_pos = lengths[:, None] + torch.arange(max(max_new, 1), device=dev)
        self.prompt_pos = (seg.cumsum(1) - 1).clamp_(min=0) if self.padded else None
        self.src, self.seg = src, seg
        self.t = 0
        new_seg = 2 if _is_prefix_lm(model) else 1  # the segment of the generated tokens
        if use_cache:
            self.cache = model.init_cache(rows, p + max_new, padded=self.padded)
            self.ones = torch.full((rows, 1), new_seg, dtype=torch.long, device=dev)
        else:
            total = p + max_new
            self.all_src = torch.zeros(rows, total, dtype=torch.long, device=dev)
            self.all_src[:, :p] = src
            self.all_seg = torch.full((rows, total), new_seg, dtype=torch.long, device=dev)
            self.all_seg[:, :p] = seg
            if self.padded:
                self.all_pos = torch.cat([self.prompt_pos, self.new_pos[:, :max_new]], 1)
            self.p = p

    def _logits(self, hidden):
        return _head(self.lm, hidden[:, -1]).float()

    def prefill(self):
        if self.use_cache:
            return self._logits(self.model.encode(self.src, self.seg, positions=self.prompt_pos, cache=self.cache))
        return self._logits(self.model.encode(self.src, self.seg, positions=self.prompt_pos))

    def step(self, tokens):
        t = self.t
        self.t += 1
        if self.use_cache:
            h = self.model.encode(tokens.view(-1, 1), self.ones, positions=self.new_pos[:, t:t + 1], cache=self.cache)
            return self._logits(h)
        end = self.p + t + 1
        self.all_src[:, end - 1] = tokens
        pos = self.all_pos[:, :end] if self.padded else None
        return self._logits(self.model.encode(self.all_src[:, :end], self.all_seg[:, :end], positions=pos))

    def reorder(self, index):
        # beams move only within their prompt's rows, which share padding, positions and the prompt's keys and
        # values: only the generated columns move
        if self.use_cache:
            self.cache.reorder(index, start=self.src.size(1))
        else:
            self.all_src = self.all_src.index_select(0, index)


class _Seq2SeqDecoder:
    """An encoder-decoder model's side of decoding: prefill() encodes the sources (right-padded, once per
    source) and projects the cross-attention memory, then decodes the start token; step(tokens) feeds one token
    per row; both return the next-token logits [rows, vocab] (float32). reorder(index) keeps rows `index`
    (beams of one source stay among its rows; the memory is per source and never moves)."""

    def __init__(self, model, sources, start, beams, max_new, use_cache, device):
        n, s = len(sources), max(len(p) for p in sources)
        self.sources = torch.zeros(n, s, dtype=torch.long)
        self.source_seg = torch.zeros(n, s, dtype=torch.long)
        for i, p in enumerate(sources):
            self.sources[i, :len(p)] = torch.tensor(p, dtype=torch.long)
            self.source_seg[i, :len(p)] = 1
        self.sources, self.source_seg = self.sources.to(device), self.source_seg.to(device)
        self.padded = any(len(p) < s for p in sources)  # no padding: cross-attention without a mask
        rows = n * beams
        self.model = model
        self.target = model.target.lm
        self.use_cache = use_cache
        self.tokens = torch.full((rows, max_new + 1), start, dtype=torch.long, device=device)
        self.t = 1
        self.src, self.seg = self.tokens[:, :1], torch.ones(rows, 1, dtype=torch.long, device=device)
        self.ones = self.seg
        self.cache = model.init_cache(rows, max_new + 1, padded=False) if use_cache else None

    def _logits(self, hidden):
        return _head(self.target, self.target.scaled(hidden[:, -1])).float()

    def prefill(self):
        self.memory = self.model.memory(self.model.encode(self.sources, self.source_seg), self.source_seg,
                                        self.padded)
        return self._logits(self.model.decode(self.tokens[:, :1], self.ones, self.memory, cache=self.cache))

    def step(self, tokens):
        self.tokens[:, self.t] = tokens
        self.t += 1
        if self.use_cache:
            return self._logits(self.model.decode(tokens.view(-1, 1), self.ones, self.memory, cache=self.cache))
        toks = self.tokens[:, :self.t]
        return self._logits(self.model.decode(toks, torch.ones_like(toks), self.memory))

    def reorder(self, index):
        self.tokens = self.tokens.index_select(0, index)
        if self.use_cache:
            self.cache.reorder(index, start=1)  # the start token's column is the same in every row


def _head(lm, hidden):
    """The lm target's vocabulary projection (after its transform, if any) of hidden [rows, hidden]."""
    return lm.output_layer(lm.transform(hidden))


def _generator(seed, device):
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


# ---------------------------------------------------------------------------------------------- the API
def generate(model, prompts, max_new_tokens, *, do_sample=False, temperature=1.0, top_k=0, top_p=1.0,
             repetition_penalty=1.0, num_beams=1, length_penalty=1.0, eos_token_id=None, min_new_tokens=0,
             seed=None, use_cache=True, return_logits=False, decoder_start_token_id=None, no_repeat_ngram_size=0,
             min_length=0, forced_bos_token_id=None, forced_eos_token_id=None, bad_words_ids=None):
    """Continue each prompt (a list of token ids; lengths may differ) by up to max_new_tokens tokens.

    Returns one list of new token ids per prompt (the continuation only; it ends with eos_token_id when the
    row stopped there). max_new_tokens: an int, or one int per prompt. do_sample=False and num_beams=1:
    greedy. Sampling uses `seed` (a torch.Generator of its own: the same seed, the same output) or torch's
    global generator. num_beams > 1: beam search (beam sampling with do_sample). The rules are
    transformers' (see the module docstring). use_cache=False recomputes the whole sequence every step.
    The logits rules (uer_like/logits_processors.py, transformers' processors; every default is off):
    repetition_penalty, no_repeat_ngram_size, bad_words_ids (lists of token ids), min_length (the row's
    sequence: a prompt and its new tokens, or the decoder start token and the new tokens) and min_new_tokens
    (both need eos_token_id), forced_bos_token_id (the first new token where the sequence is one token: an
    encoder-decoder model's start token), forced_eos_token_id (the last new token a row's budget allows).
    None of them is read from the model's files: a caller passes the settings it wants (the scripts default
    them to the release's generation_config.json / config.json: release_defaults).
    return_logits=True (num_beams 1): also returns the raw model logits of every step, [steps, batch, vocab].
    An encoder-decoder model (see the module docstring) takes sources as `prompts` and returns the decoder's
    ids without decoder_start_token_id (None: the loaded config.json's; eos_token_id None likewise).
    Errors (one line): a model that is not a left-to-right LM (ConfigError), an empty prompt or an id outside
    the vocabulary (DataError), prompt + new tokens longer than the position table (DataError), bad options
    (ConfigError: check_options, with generate_lm.py's ranges), a model whose output is NaN or inf
    (CheckpointError).
    """
    options = dict(locals())  # the arguments
    del options["model"], options["prompts"]
    check_lm(model, seq2seq=True, prefix=True)
    vocab = model.target.lm.output_layer.out_features
    if _is_seq2seq(model):
        hf = getattr(getattr(model, "load_info", None), "hf_config", None) or {}
        for key in ("decoder_start_token_id", "eos_token_id"):
            if options[key] is None and hf.get(key) is not None:
                options[key] = hf[key]
        if options["decoder_start_token_id"] is None:
            raise ConfigError("an encoder-decoder model needs decoder_start_token_id (the token its decoder starts "
                              "from, e.g. [CLS]'s id for UER-py's BART and T5)")
    elif options["decoder_start_token_id"] is not None:
        raise ConfigError("decoder_start_token_id is for encoder-decoder models; this model has no decoder")
    options = check_options(options, vocab)
    what = "source" if _is_seq2seq(model) else "prompt"
    return _generate(model, _check_prompts(prompts, vocab, what=what), vocab, **options)


def _generate(model, prompts, vocab, max_new_tokens, num_beams, return_logits, **o):
    budgets = _budgets(max_new_tokens, len(prompts))
    _check_lengths(model, prompts, budgets)
    if return_logits and num_beams > 1:
        raise ConfigError("return_logits is for num_beams=1")
    if num_beams > 1 and o["do_sample"] and (o["forced_bos_token_id"] is not None
                                             or o["forced_eos_token_id"] is not None):
        raise ConfigError("forced_bos_token_id / forced_eos_token_id with beam sampling (do_sample and num_beams > 1) "
                          "leave one token to draw 2 x num_beams candidates from: use beam search (do_sample False) "
                          "or sampling with num_beams 1")
    max_new = max(budgets)
    if max_new == 0:
        return ([[] for _ in prompts], torch.zeros(0, len(prompts), vocab)) if return_logits else [[] for _ in prompts]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), decoding_linears(_decoding_modules(model), len(prompts) * num_beams):
            if num_beams == 1:
                return _greedy_or_sample(model, prompts, budgets, max_new, vocab, device, return_logits, o)
            return _beam_search(model, prompts, budgets, max_new, vocab, device, num_beams, o)
    finally:
        model.train(was_training)


def _decoding_modules(model):
    """The modules every decoding step runs (their linear layers are laid out for the step's rows: see
    layers/decoding_linear.py): the decoder (or a left-to-right LM's encoder) and the lm target."""
    return [model.decoder if _is_seq2seq(model) else model.encoder, model.target.lm]


def _greedy_or_sample(model, prompts, budgets, max_new, vocab, device, return_logits, o):
    n = len(prompts)
    do_sample, eos = o["do_sample"], o["eos_token_id"]
    dec = _feeder(model, prompts, device, max_new, o["use_cache"], start=o["decoder_start_token_id"])
    budget = torch.tensor(budgets, device=device)
    rules = Rules.build(dict(o, vocab=vocab, device=device, min_keep=1))
    state = rules.state(dec.src, dec.seg, vocab, max_new, budget) if rules is not None else None
    gen = _generator(o["seed"], device)
    out = torch.zeros(n, max_new, dtype=torch.long, device=device)
    uneven = len(set(budgets)) > 1
    done = torch.zeros(n, dtype=torch.bool, device=device)
    steps = []
    guard = _Guard(device)
    logits = dec.prefill()
    t = 0
    while True:
        guard.logits(logits)
        if return_logits:
            steps.append(logits.clone())
        scores = rules(logits, state, t) if rules is not None else logits
        if do_sample:
            nxt = torch.multinomial(guard.probs(scores.softmax(-1)), 1, generator=gen).view(-1)
        else:
            nxt = scores.max(-1).indices  # the first maximum, as argmax, but faster on CPU
        out[:, t] = nxt
        t += 1
        if t == max_new:
            break
        if eos is not None:
            done |= nxt == eos
        if uneven:
            done |= budget <= t
        if (eos is not None or uneven) and bool(done.all()):
            break
        if state is not None:
            state.append(nxt)
        logits = dec.step(nxt)
    guard.check(model, o["temperature"], o["repetition_penalty"])
    result = []
    rows = out[:, :t].tolist()
    for row, b in zip(rows, budgets):
        row = row[:b]
        if eos is not None and eos in row:
            row = row[:row.index(eos) + 1]
        result.append(row)
    if return_logits:
        return result, torch.stack(steps)
    return result


def _beam_search(model, prompts, budgets, max_new, vocab, device, nb, o):
    """transformers' beam search (generation/utils.py `_beam_search`, early_stopping=False), vectorised the
    same way: per step the top 2 * num_beams continuations over every beam; those ending in eos (or at the
    length budget) among the top num_beams become finished hypotheses scored sum(log p) / new ** penalty;
    the best num_beams unfinished ones run on; a batch item stops when its best running beam can no longer
    beat its worst finished one."""
    n = len(prompts)
    do_sample, eos, length_penalty = o["do_sample"], o["eos_token_id"], o["length_penalty"]
    dec = _feeder(model, prompts, device, max_new, o["use_cache"], beams=nb, start=o["decoder_start_token_id"])
    keep = 2 * nb  # transformers: max(2, 1 + number of eos tokens) * num_beams
    budget = torch.tensor(budgets, device=device)
    # transformers keeps at least (number of eos tokens + 1) tokens, and 2 without eos, in beam sampling
    rules = Rules.build(dict(o, vocab=vocab, device=device, min_keep=2))
    state = (rules.state(dec.src, dec.seg, vocab, max_new, budget.repeat_interleave(nb))
             if rules is not None else None)
    gen = _generator(o["seed"], device)
    top_mask = torch.zeros(keep, dtype=torch.bool, device=device)
    top_mask[:nb] = True
    offset = (torch.arange(n, device=device) * nb)[:, None]

    run_seq = torch.zeros(n, nb, max_new, dtype=torch.long, device=device)
    run_scores = torch.zeros(n, nb, device=device)
    run_scores[:, 1:] = _NEG
    fin_seq = torch.zeros(n, nb, max_new, dtype=torch.long, device=device)
    fin_scores = torch.full((n, nb), _NEG, device=device)
    fin_len = torch.zeros(n, nb, dtype=torch.long, device=device)
    fin = torch.zeros(n, nb, dtype=torch.bool, device=device)
    open_ = torch.ones(n, 1, dtype=torch.bool, device=device)  # transformers' is_early_stop_heuristic_unsatisfied

    guard = _Guard(device)
    logits = dec.prefill()
    for t in range(max_new):
        guard.logits(logits)
        logp = F.log_softmax(logits, dim=-1)
        if rules is not None:
            logp = rules(logp, state, t)
        acc = (logp.view(n, nb, vocab) + run_scores[:, :, None]).view(n, nb * vocab)
        if do_sample:
            idx = torch.multinomial(guard.probs(acc.softmax(-1)), keep, generator=gen)
            lp = acc.gather(1, idx)
            lp, order = lp.sort(dim=-1, descending=True)
            idx = idx.gather(1, order)
        else:
            lp, idx = torch.topk(acc, keep)
        beam = idx // vocab  # [n, keep]: the running beam each candidate extends
        tok = idx % vocab
        cand = run_seq.gather(1, beam[:, :, None].expand(-1, -1, max_new)).clone()
        cand[:, :, t] = tok
        hits = (budget <= t + 1)[:, None].expand(n, keep)
        if eos is not None:
            hits = hits | (tok == eos)
        # the best num_beams unfinished candidates run on
        run_lp = lp + hits.float() * _NEG
        nxt = torch.topk(run_lp, nb)[1]
        run_seq = cand.gather(1, nxt[:, :, None].expand(-1, -1, max_new))
        run_scores = run_lp.gather(1, nxt)
        src_beam = beam.gather(1, nxt)
        # candidates among the top num_beams that just finished compete with the finished hypotheses
        just = hits & top_mask[None, :]
        flp = lp / ((t + 1) ** length_penalty)
        flp = flp + (~open_).float() * _NEG + (~just).float() * _NEG
        m_scores = torch.cat([fin_scores, flp], 1)
        m_seq = torch.cat([fin_seq, cand], 1)
        m_len = torch.cat([fin_len, torch.full_like(lp, t + 1, dtype=torch.long)], 1)
        m_fin = torch.cat([fin, just], 1)
        best = torch.topk(m_scores, nb)[1]
        fin_scores = m_scores.gather(1, best)
        fin_seq = m_seq.gather(1, best[:, :, None].expand(-1, -1, max_new))
        fin_len = m_len.gather(1, best)
        fin = m_fin.gather(1, best)
        # can a running beam still beat the worst finished hypothesis? (transformers' heuristic)
        best_possible = run_scores[:, :1] / ((t + 1) ** length_penalty)
        worst = torch.where(fin, fin_scores.min(1, keepdim=True)[0], torch.full_like(fin_scores, _NEG))
        open_ = open_ & (best_possible > worst).any(-1, keepdim=True) & (budget > t + 1)[:, None]
        if not bool(open_.any()) or bool(hits.all()):
            break
        index = (src_beam + offset).view(-1)
        dec.reorder(index)
        step_tok = run_seq[:, :, t].reshape(-1)
        if state is not None:
            state.reorder(index)
            state.append(step_tok)
        logits = dec.step(step_tok)
    guard.check(model, o["temperature"], o["repetition_penalty"])
    seqs = fin_seq[:, 0].tolist()
    lens = fin_len[:, 0].tolist()
    return [s[:min(k, b)] for s, k, b in zip(seqs, lens, budgets)]  # a zero budget still ran one step


def score(model, sequences, *, batch_size=32):
    """Per-token log-probabilities: for each sequence (a list of token ids, at least one), the log-probability
    the model gives each token after the first given the ones before it (a list of len - 1 floats).
    Perplexity is exp(-mean); a cloze ranks candidates by their sum. Sequences longer than the position
    table, bad ids, a batch_size that is not a positive integer and a model whose output is NaN or inf are
    one-line errors."""
    check_lm(model)
    batch_size = check_options({"batch_size": batch_size})["batch_size"]
    vocab = model.target.lm.output_layer.out_features
    sequences = _check_prompts(sequences, vocab, what="sequence")
    limit = model.config.position_limit
    if limit is not None:
        for i, s in enumerate(sequences):
            if len(s) > limit:
                raise DataError(f"sequence {i} has {len(s)} tokens, more than the model's position table covers "
                                f"(max_seq_length {limit})")
    device = next(model.parameters()).device
    lm = model.target.lm

    def head(hidden):
        return lm.output_layer(lm.transform(hidden))

    out = [None] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for b in range(0, len(order), batch_size):
                idx = order[b:b + batch_size]
                s = max(len(sequences[i]) for i in idx)
                src = torch.zeros(len(idx), s, dtype=torch.long)
                seg = torch.zeros_like(src)
                for r, i in enumerate(idx):  # right padding: causal attention never sees it
                    src[r, :len(sequences[i])] = torch.tensor(sequences[i])
                    seg[r, :len(sequences[i])] = 1
                src, seg = src.to(device), seg.to(device)
                logp = F.log_softmax(head(model.encode(src, seg)[:, :-1]).float(), dim=-1)
                got = logp.gather(2, src[:, 1:, None])[..., 0].cpu()
                if not bool(torch.isfinite(got).all()):  # a NaN or +inf logit makes its whole row NaN
                    raise nonfinite_output(model)
                for r, i in enumerate(idx):
                    out[i] = got[r, :len(sequences[i]) - 1].tolist()
    finally:
        model.train(was_training)
    return out


# ---------------------------------------------------------------------------------------------- a release's settings
# the decoding settings a release may carry, which generate() applies, with their neutral values (generate's
# defaults: what a script uses where neither its flag nor the release sets one)
DECODING_SETTINGS = {"num_beams": 1, "length_penalty": 1.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
                     "bad_words_ids": None, "min_length": 0, "min_new_tokens": 0, "forced_bos_token_id": None,
                     "forced_eos_token_id": None}
# the settings release_defaults reads: the decoding ones, the special token ids and max_length (an
# encoder-decoder's counts the decoder start token, as its min_length does)
RELEASE_SETTINGS = ("decoder_start_token_id", "eos_token_id", "max_length") + tuple(DECODING_SETTINGS)
# settings generate() does not apply, with their off values: the scripts say so when a release asks for one
# (never silently ignored)
UNSUPPORTED_SETTINGS = {"encoder_no_repeat_ngram_size": 0, "encoder_repetition_penalty": 1.0, "suppress_tokens": None,
                        "begin_suppress_tokens": None, "sequence_bias": None, "exponential_decay_length_penalty": None}


def release_defaults(model):
    """The generation settings of the release a model was loaded from, as transformers reads them: its
    generation_config.json when the directory has one (which then replaces config.json's settings), else its
    config.json (load_info.hf_config); the token ids decoder_start_token_id and eos_token_id fall back to
    config.json's. -> {name: value} of RELEASE_SETTINGS that are set, plus `unsupported`: {name: value} of
    UNSUPPORTED_SETTINGS set to something other than off. Empty for a model not loaded from a Hugging Face
    directory (a UER file names none). Nothing here is applied by generate() itself: a caller passes the
    settings (decoding_settings)."""
    info = getattr(model, "load_info", None)
    config = dict(getattr(info, "hf_config", None) or {})
    settings = config
    path = getattr(info, "path", None)
    if path:
        from .config import read_json

        d = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        gen = os.path.join(d, "generation_config.json")
        if os.path.isfile(gen):
            settings = read_json(gen)
    out = {k: settings[k] for k in RELEASE_SETTINGS if settings.get(k) is not None}
    for k in ("decoder_start_token_id", "eos_token_id"):
        if k not in out and config.get(k) is not None:
            out[k] = config[k]
    unsupported = {k: settings[k] for k, off in UNSUPPORTED_SETTINGS.items() if settings.get(k, off) not in (off, None)}
    if unsupported:
        out["unsupported"] = unsupported
    return out


def decoding_settings(given, release):
    """generate()'s decoding settings (DECODING_SETTINGS' names): each the value `given` names (a flag; None:
    not given), else the release's (release_defaults), else the neutral one. A forced token id of -1 and an
    empty bad_words_ids list given are "none", overriding the release's."""
    out = {}
    for name, neutral in DECODING_SETTINGS.items():
        value = given.get(name)
        if value is None:
            value = release.get(name, neutral)
        elif name in ("forced_bos_token_id", "forced_eos_token_id") and value == -1:
            value = None
        elif name == "bad_words_ids" and not value:
            value = None
        out[name] = value
    return out


# ---------------------------------------------------------------------------------------------- text in, text out
def special_id(vocab, token, name, model_vocab):
    """The id of a start/end token (None for none), which must be in the vocabulary and the model's."""
    if not token:
        return None
    i = vocab.get(token)
    if i is None:
        raise ConfigError(f"{name} {token!r} is not in the tokenizer's vocabulary")
    if i >= model_vocab:
        raise ConfigError(f"{name} {token!r} is id {i}, outside the model's vocabulary [0, {model_vocab})")
    return i


def detokenize(tokens, tokenizer="bert"):
    """Tokens back to text as UER-py's generate_lm.py writes them: joined without spaces (Chinese characters),
    WordPiece's '##' marks dropped; SentencePiece's '▁' becomes a space; the space tokenizer joins with spaces."""
    if tokenizer == "space":
        return " ".join(tokens)
    text = "".join(t[2:] if t.startswith("##") else t for t in tokens)
    return text.replace("\u2581", " ") if tokenizer == "sentencepiece" or "\u2581" in text else text


def generate_text(model, tokenizer, texts, *, seq_length, max_new_tokens=None, batch_size=8, start_token="[CLS]",
                  end_token="[SEP]", tokenizer_name="bert", source="prompt", option_prefix="", **options):
    """Text prompts in, generated text out (the continuation of each prompt, without the end token).

    UER GPT-2 conventions: each prompt is start_token + its tokens ([CLS], as UER-py); a prefix LM's prompt is
    its source as the prefixlm processor frames it, start_token + its tokens + the vocabulary's separator
    ([CLS] ... [SEP]), and the new tokens are its target (segment 2). Generation stops at
    end_token ([SEP]; None: never) or when the prompt + new tokens reach seq_length (UER-py's meaning:
    the total length), and after max_new_tokens new tokens when given. An empty prompt generates from the
    start token alone. options: generate()'s (do_sample, top_k, top_p, temperature, num_beams, ...).

    Everything is checked before the first batch runs, each error one line: the options (check_options,
    named `option_prefix + name`: scripts/generate_lm.py passes "--"), seq_length against the position
    table, the start and end tokens against the vocabulary, and each prompt (its ids, its length within
    seq_length), named by `source` and its line (1-based)."""
    check_lm(model, prefix=True)
    model_vocab = model.target.lm.output_layer.out_features
    check_options({"seq_length": seq_length, "max_new_tokens": max_new_tokens, "batch_size": batch_size, **options},
                  model_vocab, model.config.position_limit, option_prefix)
    vocab = tokenizer.vocab
    start = special_id(vocab, start_token, option_prefix + "start_token", model_vocab)
    eos = special_id(vocab, end_token, option_prefix + "end_token", model_vocab)
    sep = special_id(vocab, vocab.specials["sep"], "the source's end", model_vocab) if _is_prefix_lm(model) else None
    prompts, budgets = [], []
    for i, text in enumerate(texts):
        ids = ([start] if start is not None else []) + tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
        if _is_prefix_lm(model):
            ids.append(sep)  # the source's [SEP]: the first target token is predicted from it
        if not ids:
            raise DataError(f"{source} line {i + 1} is empty and the vocabulary has no start token {start_token}")
        if len(ids) >= seq_length:
            raise DataError(f"{source} line {i + 1} has {len(ids)} tokens, which leaves no room to generate within "
                            f"seq_length {seq_length}: shorten the prompt or raise --seq_length")
        room = seq_length - len(ids)
        budgets.append(room if max_new_tokens is None else min(max_new_tokens, room))
        prompts.append(ids)
    _check_prompts(prompts, model_vocab, what=f"{source} line", first=1)
    decode = getattr(tokenizer, "decode", None)  # tokenizers with their own decoding (byte-level BPE, CPM, XLM-R)
    out = []
    for b in range(0, len(prompts), batch_size):
        rows = generate(model, prompts[b:b + batch_size], budgets[b:b + batch_size], eos_token_id=eos, **options)
        for row in rows:
            if eos is not None and row and row[-1] == eos:
                row = row[:-1]
            if any(i >= len(vocab) for i in row):  # a padding row of the embedding (io/tokenizer.py)
                logger.warning("generated ids beyond the tokenizer's %d tokens (the embedding's padding rows) "
                               "are left out of the text", len(vocab))
                row = [i for i in row if i < len(vocab)]
            out.append(decode(row) if decode is not None else detokenize(vocab.convert_ids_to_tokens(row),
                                                                        tokenizer_name))
    return out
