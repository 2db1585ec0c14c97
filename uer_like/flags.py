"""Command-line parsing shared by every script: numeric flags declared with their range, and a parser whose
errors are one line.

A numeric flag's `type` is an `Int` or `Float` carrying its range; argparse applies it, so every script
refuses 0, a negative number, NaN, inf or an absurd size where the flag cannot take it, before any work,
with one line naming the flag and exit status 2:

    p.add_argument("--learning_rate", type=Float(min=0, min_open=True), default=1e-4)
    error: argument --learning_rate: must be > 0, got -0.001

Checks that involve a model or a file (a beam count above the vocabulary, a sequence length above the
position embedding) run where that thing is known, with the same wording.
"""
import argparse
import copy
import dataclasses
import math
import numbers
import sys

from .errors import ConfigError

# a sequence length, a batch or a beam count above this is a typo, not a plan (and would otherwise be found
# out by an out-of-memory kill, minutes later)
MAX_SIZE = 1 << 24


class Number:
    """An argparse type: parse `text` as `kind`, finite, within [min, max] (ends open where asked)."""

    kind = float
    kind_name = "number"

    def __init__(self, min=None, max=None, min_open=False, max_open=False, allow=()):
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        self.allow = tuple(allow)  # values accepted outside the range (e.g. 0 meaning "off")

    def describe(self):
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '>='} {_fmt(self.min)}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '<='} {_fmt(self.max)}")
        rng = " and ".join(parts)
        if self.allow:
            rng = (rng + " or " if rng else "") + " or ".join(_fmt(a) for a in self.allow)
        return rng

    def check(self, value, name="value"):
        """value (numpy's and torch's scalars as Python numbers), or ValueError naming it and the range (for
        values that do not come from the command line)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if self.kind is int else numbers.Real):
            if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
                return self.check(value.item(), name)  # a 0-d tensor or array
            raise ValueError(f"{name} must be {self.kind_name}, got {value!r}")
        try:
            value = self.kind(value)
        except OverflowError:  # an int beyond float's range
            raise ValueError(f"{name} must be finite, got an integer of {len(str(abs(value)))} digits") from None
        if value in self.allow:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        lo_bad = self.min is not None and (value <= self.min if self.min_open else value < self.min)
        hi_bad = self.max is not None and (value >= self.max if self.max_open else value > self.max)
        if lo_bad or hi_bad:
            raise ValueError(f"{name} must be {self.describe()}, got {_fmt(value)}")
        return value

    def __call__(self, text):
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {self.kind_name}, got {text!r}") from None
        try:
            return self.check(value, "")
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).strip()) from None

    def __repr__(self):  # argparse's help and error texts
        return f"{self.kind_name} {self.describe()}".strip()


class Int(Number):
    kind = int
    kind_name = "an integer"

    def __init__(self, min=None, max=MAX_SIZE, **kw):
        super().__init__(min=min, max=max, **kw)


class Float(Number):
    kind = float
    kind_name = "a number"


# the ranges most flags share
COUNT = Int(min=1)  # steps, batch sizes, epochs, beams, processes
NONNEG = Int(min=0)  # 0 meaning "none" or "off"
SEED = Int(min=0, max=2 ** 32 - 1)  # numpy's and torch's seeds alike
FRACTION = Float(min=0, max=1)  # probabilities and fractions, ends included
FRACTION_OPEN = Float(min=0, max=1, min_open=True, max_open=True)
POSITIVE = Float(min=0, min_open=True)  # learning rates, temperatures, epsilons
NONNEG_FLOAT = Float(min=0)  # weight decay
LEARNING_RATE = Float(min=0, max=10, min_open=True)  # above 10 nothing trains: a typo (1e6 for 1e-6)
WARMUP = Float(min=0, max=1, max_open=True)  # a fraction of the steps
GRAD_NORM = Float(min=0, min_open=True)
DROPOUT = Float(min=0, max=1, max_open=True)

# Library entry points whose script passes its flags straight through: the script declares the flags with
# these rules and the library checks calls from Python with them (here, without torch, so that a parser
# refuses a bad flag without importing it).
GENERATION_RULES = {  # uer_like.generate / generate_text (generation.check_options), scripts/generate_lm.py
    "max_new_tokens": NONNEG, "min_new_tokens": NONNEG, "top_k": NONNEG, "top_p": Float(min=0, max=1, min_open=True),
    "temperature": POSITIVE, "repetition_penalty": POSITIVE, "num_beams": Int(min=1, max=4096),
    "length_penalty": Float(min=-100, max=100), "seed": SEED, "batch_size": COUNT, "seq_length": Int(min=2),
    "no_repeat_ngram_size": NONNEG, "min_length": NONNEG}
FEATURE_RULES = {"seq_length": Int(min=3), "batch_size": COUNT}  # io.extract_features, scripts/extract_features.py
FORCED_TOKEN = Int(min=0, allow=(-1,))  # a script's --forced_bos_token_id / --forced_eos_token_id: -1 for none


class TokenLists:
    """generate's bad_words_ids: a non-empty list of non-empty lists of token ids (within [0, vocab) when `vocab`
    is given). As an argparse type (scripts' --bad_words_ids) it reads JSON, '[]' for none."""

    EXAMPLE = "a list of token-id lists such as [[5], [7, 8]]"

    def __init__(self, vocab=None):
        self.vocab = vocab

    def check(self, value, name="value"):
        if hasattr(value, "tolist"):
            value = value.tolist()
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be {self.EXAMPLE}, got {str(value)[:60]}")
        out = []
        for i, word in enumerate(value):
            if hasattr(word, "tolist"):
                word = word.tolist()
            if not isinstance(word, (list, tuple)) or not word:
                raise ValueError(f"{name} entry {i} must be a non-empty list of token ids ({self.EXAMPLE}), got "
                                 f"{str(word)[:60]}")
            ids = [Int(min=0, max=None if self.vocab is None else self.vocab - 1).check(x, f"{name} entry {i}")
                   for x in word]
            out.append(ids)
        return out

    def __call__(self, text):
        import json

        try:
            value = json.loads(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be JSON, {self.EXAMPLE}, got {text[:40]!r}") from None
        if value == []:
            return value
        try:
            return self.check(value, "")
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).strip()) from None

    def __repr__(self):
        return "JSON token-id lists"



class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps the module docstring's layout and shows every flag's default and range."""

    def _format_action(self, action):
        if action.help is None and action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = super()._get_help_string(action) or ""
        if isinstance(action.type, Number) and f"[{action.type!r}]" not in text:
            text = f"{text} [{action.type!r}]".strip()
        return text


class Parser(argparse.ArgumentParser):
    """argparse with defaults in --help and errors in one line (`error: argument --x: ...`, exit status 2)."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _fmt(v):
    return str(v) if isinstance(v, int) else f"{v:g}"


def check_value(value, rule, name):
    """`rule.check` with a ConfigError naming `name` (library entry points called from Python)."""
    try:
        return rule.check(value, name)
    except ValueError as e:
        raise ConfigError(str(e)) from None


# ====================================================================== training flags, declared once
SCHEDULERS = ("linear", "cosine", "constant")  # training/optim.py's lr_at
OPTIMIZERS = ("adamw", "lamb")  # training/optim.py's build_optimizer
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # training/precision.py's resolve_precision


def flag(default=dataclasses.MISSING, rule=None, help=None, choices=None, action=None, aliases=(),
         cli_default=dataclasses.MISSING):
    """A dataclass field that is a command-line flag too (add_flags, check_flags): its default (none: a required
    field), range (an Int/Float rule), help, choices (a tuple, or a function giving them: a registry's names) or
    argparse action; aliases: more option strings; cli_default: the flag's default where it is not the field's
    (a required field whose flag has a fallback, say)."""
    return dataclasses.field(default=default, metadata={"flag": True, "rule": rule, "help": help, "choices": choices,
                                                        "action": action, "aliases": tuple(aliases),
                                                        "cli_default": cli_default})


@dataclasses.dataclass
class TrainFlags:
    """The training flags of pretrain.py (training/args.py's TrainArgs) and of the fine-tuning scripts
    (finetune/cli.py, core.train): each with its range, help and default in one place. `add_train_flags`
    declares a script's share of them, `train_rules` gives their ranges to the library's checks of calls from
    Python, `train_field` makes one a field of another dataclass (pretraining's TrainArgs); a script's own
    default (fine-tuning's learning rate, say) is passed to add_train_flags."""

    # the loop
    batch_size: int = flag(32, COUNT, "examples per step on each process (fine-tuning: the global batch is "
                                      "this x the processes of a torchrun launch)")
    learning_rate: float = flag(1e-4, LEARNING_RATE)
    warmup: float = flag(0.01, WARMUP, "fraction of the steps with rising learning rate")
    scheduler: str = flag("linear", help="after the warmup: linear or cosine decay to 0, or constant",
                          choices=SCHEDULERS)
    weight_decay: float = flag(0.01, Float(min=0, max=1))
    max_grad_norm: float = flag(1.0, GRAD_NORM)
    seed: int = flag(7, SEED)
    report_steps: int = flag(100, Int(min=1, max=10 ** 9), "a progress line (loss, lr, grad norm, throughput) "
                                                         "every this many steps")
    max_nonfinite_steps: int = flag(5, COUNT, "a NaN/inf loss or gradient norm skips the optimizer step (no "
                                              "checkpoint or model is written while it lasts); this many such "
                                              "steps in a row stop the run with an error")
    # checkpoints and resume
    save_checkpoint_steps: int = flag(10000, Int(min=1, max=10 ** 9), "a training checkpoint every this many "
                                                                      "steps")
    resume: str = flag("auto", help="auto: continue from the newest training checkpoint of an interrupted run "
                                    "(running the same command again); never: start afresh; or a checkpoint path")
    # precision and device
    precision: str = flag("auto", help="auto: bf16 autocast where the CPU (AMX or AVX512_BF16) or GPU multiplies "
                                       "bf16 natively, else fp32 (the log says which and why); fp16 uses loss "
                                       "scaling on CUDA", choices=PRECISIONS)
    fp16: bool = flag(False, help="same as --precision fp16 (UER-py's flag)", action="store_true")
    device: str = flag("auto", help="auto, cpu, cuda, cuda:1 ... (under torchrun: each rank its LOCAL_RANK's "
                                    "GPU, or cpu)")
    # pretraining's
    total_steps: int = flag(100000, Int(min=1, max=10 ** 9), "optimizer steps")
    accumulation_steps: int = flag(1, COUNT)
    global_batch_size: int = flag(None, COUNT, "samples per optimizer step over all processes; sets "
                                               "--accumulation_steps from the world size, so a run keeps its batch "
                                               "when resumed on fewer or more processes")
    optimizer: str = flag("adamw", choices=OPTIMIZERS)
    keep_checkpoints: int = flag(3, NONNEG, "the newest checkpoints kept (0: all)")
    dev_fraction: float = flag(None, Float(min=0, max=1, max_open=True))
    eval_steps: int = flag(None, Int(min=1, max=10 ** 9))
    eval_batches: int = flag(100, Int(min=0, max=10 ** 9))
    # fine-tuning's
    epochs_num: int = flag(3, Int(min=1, max=10 ** 6))
    max_steps: int = flag(0, Int(min=0, max=10 ** 9), "stop after this many steps (0: no limit)")
    layerwise_lr_decay: float = flag(1.0, Float(min=0, max=1, min_open=True),
                                     "learning rate x this per layer going down from the head (the top encoder "
                                     "layer trains at lr x d, the embedding at lr x d^(layers+1)); 1: off")
    fgm_epsilon: float = flag(1.0, Float(min=0), "L2 norm of the FGM perturbation of the word-embedding matrix "
                                                 "(UER-py's default is 1e-6)")


def train_flag(name):
    """The TrainFlags field `name` (a dataclasses.Field: default and metadata)."""
    fields = {f.name: f for f in dataclasses.fields(TrainFlags)}
    if name not in fields:
        raise KeyError(f"no training flag {name!r}; TrainFlags declares {', '.join(fields)}")
    return fields[name]


def train_rules(names):
    """-> {name: range rule} of the named numeric training flags (the library's checks of calls from Python)."""
    return {n: train_flag(n).metadata["rule"] for n in names if train_flag(n).metadata["rule"] is not None}


def train_field(name, help=None):
    """TrainFlags' field `name` as a field of another dataclass (training/args.py's TrainArgs): its default,
    range, choices and help declared once, the help replaced where the script says more."""
    f = train_flag(name)
    return dataclasses.field(default=f.default, metadata=dict(f.metadata, help=help or f.metadata["help"]))


def flag_fields(cls):
    """{name: field} of the fields of dataclass `cls` declared with `flag`, in order."""
    return {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("flag")}


def add_flags(parser, cls, names=None, defaults=None, help=None):
    """Declare the flag fields of dataclass `cls` (those named, else all in order) on an argparse parser or
    group, with the script's own `defaults` and `help` texts (name -> value) where they differ."""
    fields, defaults, help = flag_fields(cls), defaults or {}, help or {}
    for name in names if names is not None else fields:
        if name not in fields:
            raise KeyError(f"no flag {name!r}; {cls.__name__} declares {', '.join(fields)}")
        f, m = fields[name], fields[name].metadata
        kw = {"help": help.get(name, m["help"])}
        if m["action"]:
            kw["action"] = m["action"]
        else:
            default = f.default if m["cli_default"] is dataclasses.MISSING else m["cli_default"]
            kw["default"] = defaults.get(name, None if default is dataclasses.MISSING else default)
            if m["rule"] is not None:
                kw["type"] = m["rule"]
            choices = m["choices"]() if callable(m["choices"]) else m["choices"]
            if choices:
                kw["choices"] = choices
        parser.add_argument(f"--{name}", *m["aliases"], **kw)


def check_flags(obj):
    """ConfigError naming the flag for a flag field of dataclass instance `obj` outside its range or choices
    (the command line refuses them already; this is for callers from Python). None passes (unset)."""
    for name, f in flag_fields(type(obj)).items():
        value, m = getattr(obj, name), f.metadata
        if value is None:
            continue
        if m["rule"] is not None:
            check_value(value, m["rule"], f"--{name}")
        choices = m["choices"]() if callable(m["choices"]) else m["choices"]
        if choices and value not in choices:
            raise ConfigError(f"--{name} {value!r} is not valid; choices: {', '.join(choices)}")


def add_train_flags(parser, names, defaults=None, help=None):
    """Declare the named TrainFlags on an argparse parser or group, with the script's own `defaults` and
    `help` texts (name -> value) where they differ."""
    add_flags(parser, TrainFlags, names, defaults, help)
