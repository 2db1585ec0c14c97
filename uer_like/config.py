"""Model config: UER-format JSON in, a typed and validated dataclass out.

The JSON keys are UER-py's, so the configs that ship with released UER models load as they are.
Validation happens once, here, before any tensor is built: an unknown key or a bad value is an
error naming the key, the value and the valid choices.
"""
import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import List, Optional

from .data.masking import check_values, strategy_of
from .data.processors import DATA_PROCESSOR_NAMES, SEQ2SEQ_PROCESSOR_NAMES
from .errors import ConfigError
from .legacy_config import normalize
from .resources import CONFIGS_DIR, resolve

# causal_with_prefix: the prefix LM (UniLM; UER-py's name): segment 1 attends bidirectionally, segment 2 causally
MASKS = ("fully_visible", "causal", "causal_with_prefix")
LAYERNORM_POSITIONINGS = ("post", "pre", "grover")
POOLINGS = ("first", "mean", "max", "last")
FEED_FORWARDS = ("dense", "gated")

BOUNDED_EMBEDDINGS = ("pos", "sinusoidalpos", "sinusoidalpos_2019", "sinusoidalpos_concat")  # position tables of max_seq_length rows
# UER-py's data processors of encoder-decoder models, accepted in a config with a decoder: t5, bart and gsg
# pretrain (data/seq2seq.py); mt and seq2seq (parallel text) are accepted in a config, not preprocessed
PARALLEL_DATA_PROCESSORS = ("mt", "seq2seq")
SEQ2SEQ_DATA_PROCESSORS = SEQ2SEQ_PROCESSOR_NAMES + PARALLEL_DATA_PROCESSORS

MAX_CONFIG_SIZE = 1 << 22  # any size key (positions, widths, layers): larger is a typo, not a model


@dataclass
class ModelConfig:
    # sizes
    emb_size: int = 768
    hidden_size: int = 768
    feedforward_size: int = 3072
    heads_num: int = 12
    layers_num: int = 12
    max_seq_length: int = 512
    dropout: float = 0.1
    hidden_act: str = "gelu"
    # components (names resolved through the registries)
    embedding: List[str] = field(default_factory=lambda: ["word", "pos", "seg"])
    encoder: str = "transformer"
    target: List[str] = field(default_factory=lambda: ["mlm", "sp"])
    # transformer options
    mask: str = "fully_visible"
    layernorm_positioning: str = "post"
    layernorm: str = "normal"
    layernorm_eps: Optional[float] = None  # None: the layer norm's own default
    feed_forward: str = "dense"
    remove_embedding_layernorm: bool = False
    remove_transformer_bias: bool = False
    remove_attention_scale: bool = False
    remove_attention_bias: bool = False  # q/k/v/output projections without bias, the feed-forward keeps its own
    factorized_embedding_parameterization: bool = False
    parameter_sharing: bool = False
    # how attention sees token order (uer_like/layers/positions/): "absolute" (the embedding's pos /
    # sinusoidalpos), "rotary" (RoFormer), "nezha" (functional relative), "xlnet" (relative attention),
    # "relative_position_bucket" (T5 / MPNet's bucketed bias; UER-py's relative_position_embedding: true)
    position_scheme: str = "absolute"
    max_relative_position: int = 64  # nezha: relative distances are clipped to +-max_relative_position
    rotary_value: bool = False  # rotary: rotate the values too (RoFormer's option)
    clamp_len: int = -1  # xlnet: relative distances clamped to +-clamp_len when > 0
    # relative_position_bucket (T5, MPNet): buckets of the shared bias table (UER-py's key), the distance
    # from which every farther key shares the last bucket, and whether keys after the query get their own
    # buckets (None: bidirectional unless mask is causal)
    relative_attention_buckets_num: int = 32
    relative_attention_max_distance: int = 128
    relative_attention_bidirectional: Optional[bool] = None
    # attention heads of another size than hidden_size / heads_num (mT5: d_kv); None: hidden_size / heads_num
    attention_head_size: Optional[int] = None
    # encoder-decoder models (UER-py's keys; decoders/): the decoder (None: an encoder-only model), the
    # decoder's embedding components, whether its word embedding is the encoder's, its layer count (None:
    # layers_num), and T5's scaling of the decoder output by hidden_size ** -0.5 before a tied LM head
    decoder: Optional[str] = None
    tgt_embedding: List[str] = field(default_factory=list)
    share_embedding: bool = False
    decoder_layers_num: Optional[int] = None
    scale_decoder_output: bool = False
    # heads
    tie_weights: bool = False
    has_lmtarget_bias: bool = False
    # lm target: dense -> activation -> layer norm before the vocabulary projection (BERT's MLM transform, as
    # NEZHA-Gen's left-to-right head has it)
    lm_head_transform: bool = False
    pooling: str = "first"
    cls_act: str = "tanh"  # the cls target's dense layer: tanh (BERT's pooler), relu (DistilBERT's pre_classifier)
    labels_num: int = 2
    # vocabulary and segments
    vocab_size: Optional[int] = None
    segment_vocab_size: int = 3  # UER: 0 padding, 1 sentence A, 2 sentence B
    position_offset: int = 0  # RoBERTa-style position ids start at padding_idx + 1
    task_type_vocab_size: int = 3  # ERNIE 2.0/3.0 "task" embedding: its rows
    task_id: int = 0  # and the task type every token gets
    # data
    data_processor: str = "bert"
    tokenizer: str = "bert"
    # masking strategy the model is pretrained with (preprocessing choices, checked against the dataset's
    # manifest; uer_like/data/masking.py): UER-py's span keys, n-gram, MacBERT and PERT; one at most
    span_masking: bool = False
    span_geo_prob: float = 0.2
    span_max_length: int = 10
    ngram_masking: bool = False
    ngram_probs: List[float] = field(default_factory=list)  # of 1-grams, 2-grams, ...; empty: the default
    macbert_masking: bool = False
    pert_masking: bool = False
    pert_window: int = 16
    # recurrent encoders: torch's bidirectional stack for lstm/gru/rnn (bilstm/bigru/birnn are UER-py's
    # two separate stacks)
    bidirectional: bool = False
    # ELECTRA pretraining (the 'electra' target, targets/electra.py): the generator's sizes (None: a quarter of
    # the discriminator's hidden size and heads, 4 x hidden feed-forward, the discriminator's layer count) and
    # the discriminator loss weight (lambda)
    generator_hidden_size: Optional[int] = None
    generator_heads_num: Optional[int] = None
    generator_feedforward_size: Optional[int] = None
    generator_layers_num: Optional[int] = None
    electra_lambda: float = 50.0
    # the zen encoder (ZEN, encoders/zen.py): rows of the n-gram embedding (ngram.txt lines + 1), the n-gram
    # transformer layers beside the first character layers, the most n-grams matched per sequence
    ngram_vocab_size: int = 0
    ngram_layers_num: int = 6
    max_ngrams: int = 128

    @property
    def masking_strategy(self):
        """mlm, span, ngram, macbert or pert (masking.py), from the *_masking keys."""
        return strategy_of(self.to_dict(), "config")

    @property
    def head_size(self):
        """The size of one attention head."""
        return self.attention_head_size or self.hidden_size // self.heads_num

    @property
    def position_limit(self):
        """The longest sequence the model's positions cover: max_seq_length when a table bounds them (learned
        or sinusoidal absolute positions, the rotary table), None when nothing does (NEZHA's clipped relative
        distances, XLNet's relative encodings, a model without positions)."""
        if any(e in self.embedding for e in BOUNDED_EMBEDDINGS) or self.position_scheme == "rotary":
            return self.max_seq_length
        return None

    def refuse_decoder(self, what):
        """A one-line ConfigError for a code path that cannot run an encoder-decoder model (`what` it is)."""
        if self.decoder is not None:
            raise ConfigError(f"{what} does not handle encoder-decoder models (decoder: {self.decoder!r}) yet; such "
                              "a model loads, converts and generates (uer_like.generate)")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d, source="config"):
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: a config must be a JSON object, got {type(d).__name__}")
        d = normalize(d, source)  # UER-py's older forms and non-model keys (see legacy_config.py)
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in d.items():
            if key not in known:
                close = get_close_matches(key, list(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(
                    f"{source}: unknown config key '{key}'{hint}; valid keys: {', '.join(sorted(known))}"
                )
            kwargs[key] = _coerce(key, value, known[key], source)
        cfg = cls(**kwargs)
        cfg.validate(source)
        return cfg

    def to_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **overrides):
        d = self.to_dict()
        d.update(overrides)
        return ModelConfig.from_dict(d, source="overrides")

    def diff(self, other):
        """Keys whose values differ between two configs: {key: (self, other)}."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    # ------------------------------------------------------------------ validation
    def validate(self, source="config"):
        """The keys this dataclass owns. The components a config names (embeddings, encoder, targets, position
        scheme, activation, norm, tokenizer) validate their own keys when a model is built
        (uer_like.modules.check_config); importing them here would make loading a config import torch."""
        def bad(key, value, valid):
            raise ConfigError(f"{source}: config key '{key}' has invalid value {value!r}; valid choices: {', '.join(map(str, valid))}")

        if not self.embedding:
            raise ConfigError(f"{source}: config key 'embedding' must list at least one embedding, e.g. [\"word\", \"pos\", \"seg\"]")
        if "word" not in self.embedding:
            raise ConfigError(f"{source}: config key 'embedding' must include 'word', got {self.embedding}")
        if self.decoder is not None:  # the decoder and tgt_embedding names: uer_like.modules.check_config
            if "word" not in self.tgt_embedding:
                raise ConfigError(f"{source}: a decoder needs config key 'tgt_embedding' with 'word' (e.g. [\"word\", "
                                  f"\"pos\"]), got {self.tgt_embedding}")
            if self.encoder != "transformer":
                raise ConfigError(f"{source}: a decoder needs encoder 'transformer', got {self.encoder!r}")
            if self.target != ["lm"]:
                raise ConfigError(f"{source}: an encoder-decoder model has the target ['lm'] (the decoder's LM head), "
                                  f"got {self.target}")
            if self.mask != "fully_visible" or self.parameter_sharing or self.factorized_embedding_parameterization:
                raise ConfigError(f"{source}: an encoder-decoder model needs mask 'fully_visible', no parameter sharing "
                                  "and no factorized embedding")
            if self.layernorm_positioning not in ("post", "pre"):
                raise ConfigError(f"{source}: an encoder-decoder model needs layernorm_positioning 'post' or 'pre', "
                                  f"got {self.layernorm_positioning!r}")
            if self.decoder_layers_num is not None and not 0 < self.decoder_layers_num <= MAX_CONFIG_SIZE:
                raise ConfigError(f"{source}: config key 'decoder_layers_num' must be positive, got "
                                  f"{self.decoder_layers_num}")
        else:
            for key in ("tgt_embedding", "share_embedding", "decoder_layers_num", "scale_decoder_output"):
                if getattr(self, key):
                    raise ConfigError(f"{source}: config key '{key}' needs a decoder (decoder: \"transformer\")")
        if self.attention_head_size is not None and not 0 < self.attention_head_size <= MAX_CONFIG_SIZE:
            raise ConfigError(f"{source}: config key 'attention_head_size' must be positive, got "
                              f"{self.attention_head_size}")
        if self.attention_head_size is not None and self.position_scheme in ("rotary", "nezha", "xlnet"):
            raise ConfigError(f"{source}: attention_head_size is not supported with position_scheme "
                              f"{self.position_scheme!r}")
        if "task" in self.embedding and not 0 <= self.task_id < self.task_type_vocab_size:
            raise ConfigError(f"{source}: config key 'task_id' {self.task_id} is outside the "
                              f"{self.task_type_vocab_size} task types 0..{self.task_type_vocab_size - 1} "
                              "(task_type_vocab_size)")
        if self.mask not in MASKS:
            bad("mask", self.mask, MASKS)
        if self.layernorm_positioning not in LAYERNORM_POSITIONINGS:
            bad("layernorm_positioning", self.layernorm_positioning, LAYERNORM_POSITIONINGS)
        if self.pooling not in POOLINGS:
            bad("pooling", self.pooling, POOLINGS)
        if self.feed_forward not in FEED_FORWARDS:
            bad("feed_forward", self.feed_forward, FEED_FORWARDS)
        for key in ("emb_size", "hidden_size", "layers_num", "max_seq_length", "labels_num", "segment_vocab_size"):
            check_size(self, key, source)
        if self.bidirectional and self.encoder not in ("lstm", "gru", "rnn"):
            raise ConfigError(f"{source}: config key 'bidirectional' applies to the lstm, gru and rnn encoders, not "
                              f"'{self.encoder}'" + (" (bidirectional already)" if self.encoder.startswith("bi") else ""))
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{source}: config key 'dropout' must be in [0, 1), got {self.dropout}")
        if self.vocab_size is not None and self.vocab_size <= 0:
            raise ConfigError(f"{source}: config key 'vocab_size' must be positive, got {self.vocab_size}")
        if self.data_processor in SEQ2SEQ_DATA_PROCESSORS:
            if self.decoder is None:
                raise ConfigError(f"{source}: data_processor {self.data_processor!r} is an encoder-decoder processor; "
                                  "the config has no decoder")
        elif self.data_processor not in DATA_PROCESSOR_NAMES:
            bad("data_processor", self.data_processor, DATA_PROCESSOR_NAMES + PARALLEL_DATA_PROCESSORS)
        d = self.to_dict()
        strategy_of(d, source)
        check_values(d, source)


def check_size(config, key, source):
    """A size key: positive, and not absurd (a typo, found here rather than by an out-of-memory kill)."""
    v = getattr(config, key)
    if v <= 0:
        raise ConfigError(f"{source}: config key '{key}' must be positive, got {v}")
    if v > MAX_CONFIG_SIZE:
        raise ConfigError(f"{source}: config key '{key}' is {v}, above {MAX_CONFIG_SIZE}: a typo?")


def _coerce(key, value, f, source):
    """Check a JSON value against the dataclass field's type (ints are accepted where floats are)."""
    t = f.type
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    optional = origin is typing.Union and type(None) in args
    if optional:
        if value is None:
            return None
        t = [a for a in args if a is not type(None)][0]
        origin = typing.get_origin(t)
        args = typing.get_args(t)
    if origin in (list, List) and args and args[0] is float:
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise ConfigError(f"{source}: config key '{key}' must be a list of numbers, got {value!r}")
        return [float(v) for v in value]
    if origin in (list, List):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: config key '{key}' must be a list of strings, got {value!r}")
        return list(value)
    if t is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: config key '{key}' must be true or false, got {value!r}")
        return value
    if t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: config key '{key}' must be an integer, got {value!r}")
        return value
    if t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: config key '{key}' must be a number, got {value!r}")
        return float(value)
    if t is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: config key '{key}' must be a string, got {value!r}")
        return value
    return value


def resolve_config_path(path_or_name):
    """`bert/base_config.json`, `bert/base` or a file path."""
    if os.path.isfile(resolve(path_or_name)):
        return resolve(path_or_name)
    for cand in (path_or_name, path_or_name + ".json", path_or_name + "_config.json"):
        p = os.path.join(CONFIGS_DIR, cand)
        if os.path.isfile(p):
            return p
    available = []
    if os.path.isdir(CONFIGS_DIR):
        for fam in sorted(os.listdir(CONFIGS_DIR)):
            d = os.path.join(CONFIGS_DIR, fam)
            if os.path.isdir(d):
                available += [f"{fam}/{f}" for f in sorted(os.listdir(d)) if f.endswith(".json")]
    raise ConfigError(f"config '{path_or_name}' not found (neither a file nor a name in configs/); "
                      f"available: {', '.join(available)}")


def list_configs():
    out = []
    for fam in sorted(os.listdir(CONFIGS_DIR)):
        d = os.path.join(CONFIGS_DIR, fam)
        if os.path.isdir(d):
            out += [f"{fam}/{f}" for f in sorted(os.listdir(d)) if f.endswith(".json")]
    return out


def load_config(path_or_name, **overrides):
    """Load a UER-format JSON config (a path, or a name inside configs/) into a ModelConfig."""
    if isinstance(path_or_name, ModelConfig):
        return path_or_name.replace(**overrides) if overrides else path_or_name
    d, source = read_config_dict(path_or_name)
    d.update(overrides)
    return ModelConfig.from_dict(d, source=source)


def read_json(path, text=None):
    """The value of a JSON file (or of `text`, read from `path`); what is not valid JSON, or not UTF-8, is a
    ConfigError naming the file, the line and the column. A UTF-8 byte order mark is allowed."""
    try:
        if text is None:
            with open(path, encoding="utf-8-sig") as f:
                text = f.read()
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON: not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x})") \
            from None


def read_config_dict(path_or_name):
    """The raw JSON object of a config (a path, a name inside configs/ or a dict) -> (dict copy, source)."""
    if isinstance(path_or_name, dict):
        return dict(path_or_name), "config"
    path = resolve_config_path(path_or_name)
    d = read_json(path)
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: a config must be a JSON object, got {type(d).__name__}")
    return d, path


def save_config(config, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config.to_dict(), f, indent=2, ensure_ascii=False)
