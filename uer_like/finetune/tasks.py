"""The task registry and the interface every fine-tuning task implements.

A task is one module (classification.py, tagging.py, mrc.py, ...) holding one class registered here; it owns
its command-line flags, reader, encoding and batching, head (the nn.Module), loss, metric and prediction
writer. The one training loop (core.py) and the command line (cli.py) know tasks only through this
interface, so a new task is one new module plus a thin finetune/run_*.py script:

    from .tasks import TASKS, Task

    @TASKS.register("my_task")
    class MyTask(Task):
        script = "run_my_task.py"
        ...

The command line's task list, each script's flags and the task table in docs/finetune.md derive from TASKS.
"""
import importlib
import logging

import torch

from ..registry import Registry

TASKS = Registry("fine-tuning task")
logger = logging.getLogger("uer_like.finetune")


_quiet = [False]  # set on the ranks other than 0 of a torchrun launch: rank 0 speaks for the run


def log(msg):
    """Progress lines of a fine-tuning run (stdout); problems go to logger.warning."""
    if not _quiet[0]:
        print(msg, flush=True)


def set_quiet(quiet):
    """Silence log() (the ranks other than 0 of a distributed run); -> the previous setting."""
    old, _quiet[0] = _quiet[0], bool(quiet)
    return old

# the modules that register the built-in tasks (imported on first use of the registry)
TASK_MODULES = ("classification", "regression", "multi_label", "tagging", "mrc", "cjrc", "multiple_choice", "simcse",
                "siamese", "prompt", "chid", "dbqa", "multi_task", "model_selection", "text2text")


def load_tasks():
    """Import every built-in task module (each registers itself) and return TASKS."""
    for name in TASK_MODULES:
        importlib.import_module(f"{__package__}.{name}")
    return TASKS


def get_task(name):
    return load_tasks().get(name)


def task_names():
    return load_tasks().names()


def tasks_of_script(script):
    """The registered task names a finetune/ script serves (its --task choices), the script's own first."""
    return [n for n in load_tasks().names() if TASKS.get(n).script == script]


class Task:
    """Interface of a fine-tuning task. Subclasses set the class attributes and implement the methods that
    raise NotImplementedError; the rest are defaults most tasks keep."""

    name = None           # the name it is registered under in TASKS
    script = None         # the finetune/ script that runs it, e.g. "run_classifier.py"
    description = ""      # one line for --help and the docs
    main_metric = None    # the dev metric that selects the best checkpoint (higher is better)
    defaults = {}         # defaults of shared flags for this task, e.g. {"seq_length": 512}
    # a script whose command is more than one run of its task (cross-validation, a grid search): a function
    # (args, argv) -> report that cli.run calls on the parsed flags instead of one cli.run_args
    command = None
    # what tells a model fine-tuned for the task (--load_model_path) from a pretrained one: key prefixes of its
    # UER-format file, and their description for the error naming a file without them (cli.check_finetuned_model)
    head_keys = ("output_layer", "crf.")
    head_description = "no fine-tuned task head (output_layer*)"

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def add_args(group):
        """Add the task's own flags to an argparse group."""

    # whether collate() adds the encoder's own fields (`extra_inputs`: the zen encoder's n-grams) and the
    # forward passes them (`model_inputs`); a task without it refuses such an encoder (cli.py)
    feeds_encoder_inputs = False

    def __init__(self, args, encoder, meta=None):
        """args: the parsed flags; encoder: data.Encoder; meta: the task settings saved beside a fine-tuned
        model (MODEL_finetune.json) when one is loaded, else {}."""
        self.args = args
        self.enc = encoder
        self.saved = dict(meta or {})
        self.extra_inputs = None  # (token-id rows) -> {field: int64 array [batch, n]}, set by cli.py
        self.inputs_meta = {}  # what inference needs to build them again (the n-gram lexicon's path)

    def meta(self):
        """What inference needs besides the weights and the model config (saved as MODEL_finetune.json): with a
        WordPiece tokenizer its do_lower_case (inference uses it unless --do_lower_case is given)."""
        lower = getattr(self.enc, "do_lower_case", None)
        casing = {} if lower is None else {"do_lower_case": bool(lower)}
        return {"task": self.name, "seq_length": self.args.seq_length, **casing, **self.inputs_meta}

    def add_extra_inputs(self, batch, rows):
        """batch plus the encoder's own fields for the unpadded token-id `rows` (when the model takes any)."""
        if self.extra_inputs is not None:
            batch.update({k: torch.from_numpy(v) for k, v in self.extra_inputs(rows).items()})
        return batch

    @staticmethod
    def model_inputs(model, batch):
        """The batch fields the model's encoder takes beside src and seg."""
        return {k: batch[k] for k in getattr(model, "input_keys", ()) if k in batch}

    def check_inference(self, model_path):
        """Raise ConfigError when a fine-tuned model cannot be run without settings its meta lacks."""

    # ------------------------------------------------------------------ data
    def is_labeled(self, path):
        """Whether a test file carries gold labels (then it is also evaluated)."""
        return True

    def read(self, path, labeled=True, train=False):
        raise NotImplementedError

    def encode(self, examples, train=False):
        """examples -> features (dicts with at least src, seg and example: the index of its example)."""
        raise NotImplementedError

    def collate(self, feats):
        """Pad a list of features into a batch dict of tensors."""
        raise NotImplementedError

    @staticmethod
    def length(feat):
        """Length used to bucket features of similar size into a batch."""
        return len(feat["src"])

    def to_device(self, batch, device):
        return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    # ------------------------------------------------------------------ model
    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        """-> the task model (a models.TaskModel). backbone: (embedding, encoder) of a pretrained model or
        None for random init; pooler: the pretrained pooler's state dict (or None) for heads that start from it."""
        raise NotImplementedError

    def loss(self, model, batch):
        raise NotImplementedError

    def outputs(self, model, batch):
        """Forward a batch (no grad) -> one output per feature, on the CPU."""
        raise NotImplementedError

    # ------------------------------------------------------------------ results
    def decode(self, examples, feats, outputs):
        """Per-feature outputs -> one prediction per example."""
        raise NotImplementedError

    def evaluate(self, examples, preds):
        """-> metrics dict holding main_metric."""
        raise NotImplementedError

    def has_gold(self, examples):
        return True

    def summary(self, m):
        return f"{self.main_metric} {m[self.main_metric]:.4f}"

    def write(self, path, examples, feats, outputs, preds):
        raise NotImplementedError
