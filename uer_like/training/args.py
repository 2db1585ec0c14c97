"""Pretraining's arguments, declared once: `TrainArgs` is what trainer.Trainer takes and what pretrain.py's
flags are made from (flags.add_flags(parser, TrainArgs)). Each field carries its default, range, choices and
help (flags.flag); the training settings pretraining shares with fine-tuning are flags.TrainFlags' own
declarations (flags.train_field), so a default or a rule lives in one place. `validate` checks a call from
Python by the rules the command line applies."""
import dataclasses
import os
from typing import Optional

from ..errors import ConfigError
from ..flags import Float, check_flags, flag, train_field
from ..io.formats import writable


@dataclasses.dataclass(kw_only=True)
class TrainArgs:
    config: str = flag("bert/base_config.json", aliases=("--config_path",),
                       help="a UER-format JSON config: a path or a name in configs/ (e.g. bert/base_config.json)")
    dataset_path: str = flag(cli_default=None, help="made by preprocess.py (default: the bundled sample corpus)")
    vocab_path: Optional[str] = flag(None, help="checked against the dataset's vocabulary")
    ngram_path: Optional[str] = flag(None, help="encoder 'zen': ZEN's n-gram lexicon (ngram.txt), matched in every "
                                                "batch")
    spm_model_path: Optional[str] = flag(None, help="SentencePiece model of a word-based dataset (preprocess.py "
                                                    "--spm_model_path); checked against the dataset's vocabulary")
    pretrained_model_path: Optional[str] = flag(None, help="initialise from these weights (UER format)")
    output_model_path: str = flag("output/model.bin", help="final weights (see --output_format)")
    output_format: str = flag("uer", choices=writable,  # the formats registered in io/formats that write
                              help="final weights: uer (UER-py's .bin + NAME_config.json, the default), safetensors "
                                   "(same names in NAME.safetensors), hf (a directory transformers loads: config, "
                                   "weights, tokenizer files; named as --output_model_path without .bin)")
    checkpoint_dir: Optional[str] = flag(None, help="default: <output_model_path without .bin>_checkpoints")
    resume: str = train_field("resume", help="auto (continue from checkpoint_dir if it has checkpoints), never, or a "
                                             "checkpoint file")
    total_steps: int = train_field("total_steps")
    batch_size: int = train_field("batch_size", help="per process and micro-step")
    accumulation_steps: int = train_field("accumulation_steps")
    global_batch_size: Optional[int] = train_field("global_batch_size")
    learning_rate: float = train_field("learning_rate")
    warmup: float = train_field("warmup", help="fraction of total_steps")
    scheduler: str = train_field("scheduler")
    optimizer: str = train_field("optimizer")
    weight_decay: float = train_field("weight_decay")
    max_grad_norm: float = train_field("max_grad_norm")
    seed: int = train_field("seed")
    report_steps: int = train_field("report_steps")
    save_checkpoint_steps: int = train_field("save_checkpoint_steps")
    keep_checkpoints: int = train_field("keep_checkpoints")
    max_nonfinite_steps: int = train_field("max_nonfinite_steps")
    verify_dataset: bool = flag(False, action="store_true",
                                help="read the whole dataset at start: section checksums, offsets, every id below "
                                     "the vocabulary size (opening it checks only the header, in constant time)")
    precision: str = train_field("precision")  # (pretrain.py's --fp16 is UER-py's alias of --precision fp16)
    compile: bool = flag(False, action="store_true", help="torch.compile the model")
    fsdp: bool = flag(False, action="store_true", help="shard parameters, gradients and optimizer state (torchrun)")
    device: str = train_field("device")
    tensorboard_dir: Optional[str] = flag(None, help="default: <checkpoint_dir>/tensorboard")
    deterministic: bool = flag(False, action="store_true")
    trace_path: Optional[str] = flag(None, help="write every step's loss, lr and sample ids (JSON lines)")
    allow_dataset_change: bool = flag(False, action="store_true",
                                      help="resume a checkpoint that was trained on another dataset than "
                                           "--dataset_path (refused otherwise: the checkpoint records its dataset's "
                                           "checksum)")
    dev_dataset_path: Optional[str] = flag(None, help="held-out text made into a dataset by preprocess.py with the "
                                                      "training dataset's options (processor, vocabulary, seq_length, "
                                                      "masking): evaluated every --eval_steps and at the end")
    dev_fraction: Optional[float] = train_field(
        "dev_fraction", help="hold out this fraction of the training dataset's instances (chosen from --seed, never "
                             "trained on) as the dev set; recorded in the checkpoints: a resumed run keeps it (default: "
                             "the checkpoint's, else none)")
    eval_steps: Optional[int] = train_field(
        "eval_steps", help="evaluate the dev set every N steps and at the end (default: --save_checkpoint_steps); "
                           "figures in the log, tensorboard and <checkpoint_dir>/dev_eval.jsonl, the lowest dev loss "
                           "kept as <checkpoint_dir>/best.pt")
    eval_batches: int = train_field("eval_batches", help="dev batches (of --batch_size) per evaluation, the same ones "
                                                         "each time (0: the whole set)")
    allow_dev_split_change: bool = flag(False, action="store_true",
                                        help="resume a checkpoint with another --dev_fraction than it was trained "
                                             "with (refused otherwise: instances held out would be trained on)")
    distributed_timeout: float = flag(1800.0, Float(min=1, max=7 * 24 * 3600),
                                      help="seconds a collective waits for a rank that has stopped answering (a "
                                           "frozen worker) before the whole run fails")
    config_overrides: dict = dataclasses.field(default_factory=dict)  # config keys laid over --config's

    @classmethod
    def from_flags(cls, namespace, **changes):
        """The arguments of pretrain.py's parsed flags (the fields by name), `changes` laid over them."""
        values = {k: v for k, v in vars(namespace).items() if k in {f.name for f in dataclasses.fields(cls)}}
        return cls(**dict(values, **changes))

    def validate(self):
        check_flags(self)  # ranges and choices, as the command line declares them
        if self.dev_dataset_path and self.dev_fraction:
            raise ConfigError(f"--dev_dataset_path {self.dev_dataset_path} and --dev_fraction {self.dev_fraction}: "
                              "give one dev set (a held-out dataset, or a fraction of the training dataset)")
        if self.checkpoint_dir is None:
            self.checkpoint_dir = os.path.splitext(self.output_model_path)[0] + "_checkpoints"

    def final_weights_path(self):
        """--output_model_path for --output_format: hf writes a directory (the path without .bin/.safetensors),
        safetensors a .safetensors file."""
        stem, ext = os.path.splitext(self.output_model_path)
        if self.output_format == "hf":
            return stem if ext.lower() in (".bin", ".pt", ".safetensors") else self.output_model_path
        if self.output_format == "safetensors":
            return stem + ".safetensors" if ext.lower() != ".safetensors" else self.output_model_path
        return self.output_model_path
