"""Model = Embedding > Encoder > Target(s), composed from a ModelConfig through the registries; an
encoder-decoder model (config key `decoder`, as UER-py's BART / PEGASUS / T5) adds a target embedding and a
decoder between the encoder and the LM target:

    Embedding > Encoder --memory--> Decoder (tgt_embedding of the target tokens) > lm target
"""
import torch
import torch.nn as nn

from . import modules  # registration, and the components' config checks
from .config import ModelConfig, load_config
from .embeddings import Embedding
from .errors import ConfigError, DataError
from .registry import DECODERS, ENCODERS, TARGETS


class Model(nn.Module):
    load_info = None  # where a loaded model came from: io/formats.LoadInfo, set by uer_like.load_model

    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        modules.check_config(config)  # each component validates its own keys, before any tensor is built
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = Embedding(config, vocab_size)
        self.encoder = ENCODERS.get(config.encoder, key="encoder")(config)
        if config.decoder is not None:
            self.tgt_embedding = Embedding(config, vocab_size, config.tgt_embedding)
            self.decoder = DECODERS.get(config.decoder, key="decoder")(config)
        else:
            self.tgt_embedding = self.decoder = None
        self.target = nn.Module()
        for name in config.target:
            self.target.add_module(name, TARGETS.get(name, key="target")(config, vocab_size))
        self.apply(_init_weights)
        self.tie_weights()

    def tie_weights(self):
        """With the config's tie_weights, every weight a target declares in `tied_weights` (paths inside the
        target: its vocabulary projection) becomes the word embedding's: an encoder-decoder model's target
        embedding's (its LM head predicts target tokens), which share_embedding makes the encoder's first."""
        word = self.embedding.word.embedding.weight
        if self.decoder is not None:
            if self.config.share_embedding:
                self.tgt_embedding.word.embedding.weight = word
            word = self.tgt_embedding.word.embedding.weight
        if not self.config.tie_weights:
            return
        for name in self.config.target:
            target = getattr(self.target, name)
            for path in getattr(target, "tied_weights", ()):
                owner, _, attr = path.rpartition(".")
                setattr(target.get_submodule(owner), attr, word)

    @property
    def target_names(self):
        return list(self.config.target)

    @property
    def loss_names(self):
        """The names of the per-target results forward() returns (a target may report parts: ELECTRA's
        electra_gen and electra_disc)."""
        return [n for name in self.config.target for n in getattr(getattr(self.target, name), "report_names", (name,))]

    # ------------------------------------------------------------------ the public API
    def embed(self, src, seg, *, positions=None):
        """src, seg: [batch, seq] (seg 1/2 for the sentences, 0 for padding) -> [batch, seq, emb_size].
        positions: [batch | 1, seq] token positions (0-based), or None for 0..seq-1."""
        return self.embedding(src, seg, positions)

    @property
    def input_keys(self):
        """The batch fields the encoder takes beside src and seg (the zen encoder's n-gram fields), or ()."""
        return tuple(getattr(self.encoder, "input_keys", ()))

    def encode(self, src, seg, *, positions=None, cache=None, **inputs):
        """-> encoder output [batch, seq, hidden_size].

        cache: from `init_cache`; src/seg are then the tokens that follow the cached ones, and positions
        default to each row's count of real tokens so far (left-padded prompts keep their own positions).
        inputs: the encoder's own fields (`input_keys`), e.g. the zen encoder's n-grams (data/ngram.py).
        """
        unknown = sorted(set(inputs) - set(self.input_keys))
        if unknown:
            raise ConfigError(f"encoder '{self.config.encoder}' takes no input {', '.join(unknown)} "
                              f"(its inputs: {', '.join(self.input_keys) or 'src and seg only'})")
        if cache is not None and positions is None:
            positions = cache.default_positions(seg)
        return self.encoder(self.embedding(src, seg, positions), seg, positions=positions, cache=cache, **inputs)

    def memory(self, encoder_output, seg, padded=True):
        """An encoder-decoder model's encoder output as the decoder's cross-attention reads it (the keys and
        values of every decoder layer, computed once per source): decoders/transformer.Memory. padded=False
        promises that seg holds no padding (no mask: a cheaper decoding step)."""
        return self.decoder.memory(encoder_output, seg, padded)

    def decode(self, tgt, tgt_seg, memory, *, positions=None, cache=None):
        """An encoder-decoder model's decoder output [rows, tgt_len, hidden_size] (before the LM head) for the
        target tokens tgt, tgt_seg [rows, tgt_len] (0 = padding, on the right) given memory (`memory()` of
        `sources` rows; rows = sources x beams). cache: from `init_cache`; tgt are then the tokens that follow
        the cached ones, at positions that continue the cache's count."""
        if cache is not None and positions is None:
            positions = cache.default_positions(tgt_seg)
        return self.decoder(self.tgt_embedding(tgt, tgt_seg, positions), tgt_seg, memory, positions=positions,
                            cache=cache)

    def init_cache(self, batch_size, max_length, *, padded=True):
        """An empty decoding cache (a key/value cache, or an LSTM/GRU's carried state) for `batch_size` rows
        of at most `max_length` tokens. padded=False promises that no row holds padding (a cheaper step).
        An encoder-decoder model's cache is its decoder's self-attention cache."""
        if self.decoder is not None:
            p = next(self.parameters())
            return self.decoder.init_cache(batch_size, max_length, dtype=p.dtype, device=p.device, padded=padded)
        init = getattr(self.encoder, "init_cache", None)
        if init is None:
            raise ConfigError(f"encoder '{self.config.encoder}' has no incremental decoding (no init_cache)")
        p = next(self.parameters())
        return init(batch_size, max_length, dtype=p.dtype, device=p.device, padded=padded)

    def target_logits(self, hidden, seg=None):
        """Logits of every target, by name: mlm/lm [batch, seq, vocab], sp [batch, 2], cls [batch, labels]."""
        return {name: getattr(self.target, name).logits(hidden, seg) for name in self.config.target}

    def forward(self, batch):
        """Training forward: batch dict (src, seg and each target's `batch_keys`) -> {"loss", per-target dicts}.
        Every target computes its loss except one declared `inference_only` (pooler); a batch without a field
        a target declares is an error, never a target silently left out. An encoder-decoder model takes the
        decoder's `batch_keys` instead, UER-py's seq2seq batch (src, seg, tgt_in, tgt_seg, tgt_out: the decoder
        reads tgt_in and its lm target predicts tgt_out where tgt_seg > 0)."""
        if self.decoder is not None:
            return self._seq2seq_forward(batch)
        hidden = None  # the encoder output, computed once for the targets that take it
        out = {}
        total = None
        for name in self.config.target:
            target = getattr(self.target, name)
            if getattr(target, "inference_only", False):
                continue
            missing = [k for k in target.batch_keys if k not in batch and k not in getattr(target, "optional_keys", ())]
            if missing:
                raise DataError(f"target '{name}' needs batch field(s) {', '.join(missing)}, which the batch lacks "
                                f"(it has {', '.join(sorted(batch))}): build batches with the Collator of the "
                                "model's targets")
            if hasattr(target, "model_loss"):  # a target that runs the model itself (ELECTRA)
                res = target.model_loss(self, batch)
                out.update(res.pop("parts", {}))
            else:
                if hidden is None:
                    hidden = self.encode(batch["src"], batch["seg"],
                                         **{k: batch[k] for k in self.input_keys if k in batch})
                res = target.loss(hidden, batch)
            out[name] = res
            total = res["loss"] if total is None else total + res["loss"]
        if total is None:
            raise DataError(f"the targets {self.config.target} are all inference-only: add a target with a loss "
                            "(mlm, sp, cls, ...) to train")
        out["loss"] = total
        return out

    def _seq2seq_forward(self, batch):
        missing = [k for k in ("src", "seg") + tuple(self.decoder.batch_keys) if k not in batch]
        if missing:
            raise DataError(f"decoder '{self.config.decoder}' needs batch field(s) {', '.join(missing)}, which the "
                            f"batch lacks (it has {', '.join(sorted(batch))})")
        memory = self.memory(self.encode(batch["src"], batch["seg"]), batch["seg"])
        hidden = self.decode(batch["tgt_in"], batch["tgt_seg"], memory)
        # tgt_seg marks the positions to predict; a target of id 0 (BART's <s> in its English vocabulary) counts
        res = self.target.lm.loss(hidden, {"tgt_lm": batch["tgt_out"].masked_fill(batch["tgt_seg"] == 0, -100)},
                                  ignore_index=-100)
        return {"lm": res, "loss": res["loss"]}


def _init_weights(module):
    # UER-py's initialisation: normal(0, 0.02) for every weight, biases zero, layer norms untouched.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
        for name, p in module.named_parameters():
            if "weight" in name:
                nn.init.normal_(p, mean=0.0, std=0.02)
            else:
                nn.init.zeros_(p)


def build_model(config, vocab_size=None, **overrides):
    """Build a randomly initialised model from a ModelConfig, a config name/path or a dict."""
    config = load_config(config, **overrides)
    vocab_size = vocab_size or config.vocab_size
    if not vocab_size:
        raise ConfigError("build_model needs vocab_size (argument or config key 'vocab_size')")
    if config.vocab_size != vocab_size:
        config = config.replace(vocab_size=vocab_size)
    return Model(config, vocab_size)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def model_dtype(model):
    return next(model.parameters()).dtype if any(True for _ in model.parameters()) else torch.float32
