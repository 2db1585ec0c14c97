"""Pretraining's loop: single process or torchrun (DDP / FSDP), mixed precision, gradient accumulation,
exact resume, held-out evaluation, throughput logs.

Its pieces are shared with fine-tuning (finetune/core.py): the DDP/FSDP wrap (parallel.py), the checkpoint
manager (checkpoint.CheckpointManager: save, rotate, resume, never non-finite), precision (precision.py), the
non-finite guard (guard.py), the progress line (metrics.py), rank-0 writes (distributed.on_main) and the
flags' declarations (flags.TrainFlags)."""
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..config import ModelConfig, load_config
from ..data.dataset import Dataset
from ..data.masking import check_dataset_strategy
from ..data.processors import SEQ2SEQ_PROCESSOR_NAMES
from ..errors import CheckpointError, ConfigError, DataError, TrainingError
from ..flags import check_value, train_rules
from ..outputs import OutputLock, check_writable
from ..io.checkpoint import detect_format, load_into, load_model, save_model
from ..io.formats import writable
from ..model import Model
from ..modules import check_config as check_components
from . import distributed as dist_utils
from . import parallel
from .batches import Collator, SampleOrder
from .checkpoint import CheckpointManager, rng_state, save_best, set_rng_state
from . import evaluation as dev_eval
from .memory import cap_shape_caches
from .metrics import format_report
from .guard import check_weights_finite, count_nonfinite, diverged, skip_step
from .optim import OPTIMIZERS, SCHEDULERS, build_optimizer, lr_at
from .precision import DTYPES, PRECISIONS, autocast, precision_warning, resolve_precision

logger = logging.getLogger("uer_like")
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "A10": 125e12, "V100": 125e12, "L40": 181e12,
              "4090": 165e12, "3090": 71e12, "T4": 65e12}


@dataclass
class TrainArgs:
    dataset_path: str
    config: str = "bert/base_config.json"
    vocab_path: Optional[str] = None
    spm_model_path: Optional[str] = None  # checked against the dataset's vocabulary, as vocab_path
    ngram_path: Optional[str] = None  # the zen encoder's n-gram lexicon (ZEN's ngram.txt), matched per batch
    pretrained_model_path: Optional[str] = None
    output_model_path: str = "output/model.bin"
    output_format: str = "uer"  # the final weights: uer (UER-py's .bin), safetensors, or hf (a transformers directory)
    checkpoint_dir: Optional[str] = None
    total_steps: int = 100000
    batch_size: int = 32
    accumulation_steps: int = 1
    global_batch_size: Optional[int] = None  # when set, accumulation_steps = global / (batch_size x world size)
    learning_rate: float = 1e-4
    warmup: float = 0.01
    scheduler: str = "linear"
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 7
    report_steps: int = 100
    save_checkpoint_steps: int = 10000
    keep_checkpoints: int = 3
    verify_dataset: bool = False  # read the whole dataset at start (checksums, offsets, ids < vocabulary size)
    max_nonfinite_steps: int = 5  # a NaN/inf loss or gradient norm skips the step; this many in a row stop the run
    precision: str = "auto"  # bf16 where the CPU/GPU multiplies bf16 natively, else fp32 (training/precision.py)
    compile: bool = False
    fsdp: bool = False
    device: str = "auto"
    resume: str = "auto"  # auto: continue from checkpoint_dir when it has one; never; or a checkpoint path
    tensorboard_dir: Optional[str] = None
    deterministic: bool = False
    trace_path: Optional[str] = None  # JSON lines: every step's loss, lr and sample ids (for audits and tests)
    allow_dataset_change: bool = False  # resume a checkpoint trained on another dataset, on purpose
    distributed_timeout: float = 1800.0  # seconds a collective waits for a silent rank before the run fails
    dev_dataset_path: Optional[str] = None  # held-out text, made by preprocess.py as the training dataset was
    dev_fraction: Optional[float] = None  # held out of the training dataset (None: the checkpoint's split, else 0)
    eval_steps: Optional[int] = None  # evaluate the dev set every N steps and at the end (None: save_checkpoint_steps)
    eval_batches: int = 100  # dev batches (of batch_size) per evaluation; 0: the whole dev set
    allow_dev_split_change: bool = False  # resume with another --dev_fraction than the checkpoint's, on purpose
    config_overrides: dict = field(default_factory=dict)

    def validate(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision!r} is not valid; choices: {', '.join(PRECISIONS)}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"--scheduler {self.scheduler!r} is not valid; choices: {', '.join(SCHEDULERS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer {self.optimizer!r} is not valid; choices: {', '.join(OPTIMIZERS)}")
        for k, rule in TRAIN_ARG_RULES.items():
            if getattr(self, k) is not None:
                check_value(getattr(self, k), rule, f"--{k}")
        if self.output_format not in writable():  # the formats registered in io/formats that write
            raise ConfigError(f"--output_format {self.output_format!r} is not valid; choices: {', '.join(writable())}")
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


# the numeric fields' ranges, as the command line declares them (flags.TrainFlags), for callers from Python
TRAIN_ARG_RULES = train_rules(("total_steps", "batch_size", "accumulation_steps", "global_batch_size", "learning_rate",
                               "warmup", "weight_decay", "max_grad_norm", "seed", "report_steps",
                               "save_checkpoint_steps", "keep_checkpoints", "max_nonfinite_steps", "dev_fraction",
                               "eval_steps", "eval_batches"))


class Trainer:
    def __init__(self, args: TrainArgs):
        cap_shape_caches()  # before the first oneDNN primitive: flat host memory as shapes vary (memory.py)
        self._t_created = time.time()
        args.validate()
        self.args = args
        dist_utils.set_timeout(args.distributed_timeout)
        self.info = dist_utils.setup(args.device)
        self.lock = None
        # an exception on one rank stops every rank at once (not a wait in the first collective), and the ranks
        # must agree on where they start
        try:
            with dist_utils.start_up(self.info) as agree:
                self._set_up(args)
                agree.update(step=self.step, dataset_instances=len(self.dataset), global_batch=self.global_batch,
                             dev=self.dev.identity if self.dev else None)
            self.train_model = self._wrap(self.model)
        except BaseException:
            self.close()
            raise

    def close(self):
        """Release the checkpoint directory's lock (train() does at its end; so does garbage collection)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _set_up(self, args):
        self.stop_requested = False
        if args.deterministic:
            torch.use_deterministic_algorithms(True)

        if self.info.is_main:  # one run per checkpoint directory: taken before its checkpoints are read
            self.lock = OutputLock(args.checkpoint_dir, "--checkpoint_dir", error=TrainingError).acquire()
            weakref.finalize(self, self.lock.release)
        self.dataset = Dataset(args.dataset_path)
        self.manifest = self.dataset.manifest
        if args.verify_dataset:
            t0 = time.time()
            n = self.dataset.verify()
            if self.info.is_main:
                logger.info("%s: verified %.1f MB in %.1fs", args.dataset_path, n / 1e6, time.time() - t0)
        self.config = load_config(args.config, **args.config_overrides)
        pre = self._pretrained_defining_config()
        if pre is not None:
            self.config = pre.config
        check_components(self.config, args.config)  # the components' own keys, before the data is read
        if args.output_format == "hf":  # refuse at the start what cannot be written at the end
            from ..io.hf import hf_family_for

            try:
                if "electra" in self.config.target:  # written as its two halves (io/checkpoint.py save_model)
                    from ..targets.electra import discriminator_config, generator_config

                    hf_family_for(discriminator_config(self.config))
                    hf_family_for(generator_config(self.config))
                else:
                    hf_family_for(self.config)
            except ConfigError as e:
                raise ConfigError(f"--output_format hf: {e}; use --output_format uer or safetensors") from None
        self._check_dataset()
        self.dev_dataset = None
        if args.dev_dataset_path:
            try:
                self.dev_dataset = Dataset(args.dev_dataset_path)
            except DataError as e:
                raise DataError(f"--dev_dataset_path: {e}") from None
            dev_eval.check_fits(self.dev_dataset.manifest, self.manifest, args.dev_dataset_path, args.dataset_path)
        vocab_size = self.manifest["vocab"]["size"]
        self.config = self.config.replace(vocab_size=vocab_size)
        made_with = self.manifest.get("tokenizer")
        if made_with and made_with != self.config.tokenizer:  # the token ids are the dataset's tokenizer's
            if self.info.is_main:
                logger.info("config tokenizer %r, dataset tokenized with %r: the model (and its saved config) "
                            "takes the dataset's", self.config.tokenizer, made_with)
            self.config = self.config.replace(tokenizer=made_with)
        # every rank builds its own model from the config, with the same seed, so all ranks start from the
        # same weights (FSDP shards them where they are; nothing is passed between processes)
        torch.manual_seed(args.seed)
        self.model = Model(self.config, vocab_size)
        torch.manual_seed(args.seed + 1000003 * self.info.rank)  # dropout differs between ranks
        if args.pretrained_model_path:
            self._load_pretrained(args.pretrained_model_path, vocab_size, pre)
        self.model.to(self.info.device)
        if self.info.is_main:
            self._check_outputs()

        self.world = self.info.world_size
        if args.global_batch_size:
            per_step = args.batch_size * self.world
            if args.global_batch_size % per_step:
                raise ConfigError(f"--global_batch_size {args.global_batch_size} is not divisible by --batch_size "
                                  f"{args.batch_size} x world size {self.world} = {per_step}")
            args.accumulation_steps = args.global_batch_size // per_step
        self.global_batch = args.batch_size * self.world * args.accumulation_steps
        self.step = 0
        self.skipped_steps = 0  # optimizer steps skipped for a non-finite loss or gradient norm (all time)
        self.nonfinite_streak = 0  # ... in a row, up to now (checkpoints are only written when it is 0)
        self.last_checkpoint = None
        self.checkpoints = CheckpointManager(args.checkpoint_dir, args.keep_checkpoints, self.info, self._reduce)
        self.optimizer = build_optimizer(args.optimizer, self.model, args.learning_rate, args.weight_decay)
        self.precision, why = resolve_precision(args.precision, self.info.device)
        if self.info.is_main:
            logger.info("precision %s (%s)", self.precision, why)
            slow = precision_warning(self.precision, self.info.device)
            if slow:
                logger.warning(slow)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16" and self.info.device.type == "cuda")
        self._saved_dev = None  # (path, dev_split, dev_best) of the checkpoint resumed from
        self._resume()
        self._set_up_dev()

    def _set_up_dev(self):
        """The held-out split (--dev_fraction, or the resumed checkpoint's), the sample order over the training
        instances, and the dev set evaluated (training/evaluation.py)."""
        a, n = self.args, len(self.dataset)
        fraction, seed = self._dev_split()
        dev_ids, train_ids = dev_eval.held_out(n, fraction, seed) if fraction else (None, None)
        saved = self._saved_dev[1] if self._saved_dev else None
        if fraction and saved and saved["fraction"] == fraction and saved["sha256"] != dev_eval.ids_digest(dev_ids) \
                and not a.allow_dataset_change:
            raise DataError(f"{self._saved_dev[0]}: its held-out split ({saved['instances']} instances) is not the one "
                            f"drawn now from {a.dataset_path} with --dev_fraction {fraction}; resume on the same dataset")
        self.dev_split = dev_eval.split_record(fraction, seed, dev_ids)
        if fraction and len(train_ids) < self.global_batch:
            raise DataError(f"--dev_fraction {fraction} holds out {len(dev_ids)} of the {n} instances of "
                            f"{a.dataset_path}, leaving {len(train_ids)}, fewer than one global batch of "
                            f"{self.global_batch}; hold out less")
        self.order = SampleOrder(len(train_ids) if fraction else n, self.global_batch, a.seed, ids=train_ids)
        self.dev, self.dev_best = None, None
        if self.dev_dataset is not None:
            m = self.dev_dataset.manifest
            collate = Collator(self.dev_dataset, self.config.target, dev_eval.DEV_MASK_SEED,
                               encoder=self.config.encoder, resources=self._field_resources(),
                               decoder=self.config.decoder)
            self.dev = dev_eval.DevSet(collate, np.arange(len(self.dev_dataset)), a.batch_size, a.eval_batches,
                                       a.dev_dataset_path, "dataset:" + (m.get("header_sha256") or
                                                                        os.path.abspath(a.dev_dataset_path))[:24])
        elif fraction:
            collate = Collator(self.dataset, self.config.target, dev_eval.DEV_MASK_SEED,
                               encoder=self.config.encoder, resources=self._field_resources(),
                               decoder=self.config.decoder)
            self.dev = dev_eval.DevSet(collate, dev_ids, a.batch_size, a.eval_batches,
                                       f"{a.dataset_path} (--dev_fraction {fraction})",
                                       "split:" + self.dev_split["sha256"][:16])
        if self.dev is None and a.eval_steps is not None:
            raise ConfigError(f"--eval_steps {a.eval_steps} needs a dev set: --dev_dataset_path (a dataset made by "
                              "preprocess.py from held-out text) or --dev_fraction")
        best = self._saved_dev[2] if self._saved_dev else None
        if self.dev is not None and best:
            if best.get("dev") == self.dev.identity:
                self.dev_best = best
            elif self.info.is_main:
                logger.info("%s: its best dev loss (step %d) was measured on another dev set; the best checkpoint "
                            "is chosen afresh", self._saved_dev[0], best["step"])
        if self.dev is not None and self.info.is_main:
            logger.info("dev set: %d instances of %s, evaluated every %d steps and at the end (%s)", len(self.dev.ids),
                        self.dev.source, self.eval_steps, os.path.join(a.checkpoint_dir, dev_eval.DEV_LOG))

    @property
    def eval_steps(self):
        return self.args.eval_steps or self.args.save_checkpoint_steps

    def _dev_split(self):
        """(fraction, seed) of the held-out split: --dev_fraction on a fresh start; the checkpoint's when resuming
        (a different --dev_fraction is refused unless --allow_dev_split_change: it would train on held-out
        instances, or evaluate on trained ones)."""
        a = self.args
        if self._saved_dev is None:
            return a.dev_fraction or 0.0, a.seed
        path, split, _ = self._saved_dev
        had = split["fraction"] if split else 0.0
        if a.dev_fraction is None or a.dev_fraction == had:
            if split and a.dev_fraction is None and self.info.is_main:
                logger.info("%s: keeping its held-out split (--dev_fraction %g: %d instances never trained on)",
                            path, had, split["instances"])
            return had, (split["seed"] if split else a.seed)
        if a.allow_dev_split_change:
            if self.info.is_main:
                logger.warning("%s was trained with --dev_fraction %g; continuing with %g as --allow_dev_split_change "
                               "asks: the split and the data order change from here", path, had, a.dev_fraction)
            return a.dev_fraction, a.seed
        raise ConfigError(f"{path} was trained with --dev_fraction {had:g}, now {a.dev_fraction:g}: another split "
                          "would train on held-out instances or evaluate on trained ones; resume with --dev_fraction "
                          f"{had:g} (or without the flag), pass --allow_dev_split_change to change it on purpose, or "
                          "start afresh with another --output_model_path or --resume never")

    # ------------------------------------------------------------------ set-up
    def _check_dataset(self):
        m, cfg, a = self.manifest, self.config, self.args
        if cfg.position_limit is not None and m["seq_length"] > cfg.position_limit:
            raise ConfigError(f"{a.dataset_path}: seq_length {m['seq_length']} exceeds the model's max_seq_length "
                              f"{cfg.max_seq_length}; preprocess with --seq_length <= {cfg.max_seq_length}")
        if m.get("tgt_seq_length") and cfg.position_limit is not None and m["tgt_seq_length"] > cfg.position_limit:
            raise ConfigError(f"{a.dataset_path}: its targets reach tgt_seq_length {m['tgt_seq_length']} tokens, beyond "
                              f"the model's max_seq_length {cfg.max_seq_length}; preprocess with --tgt_seq_length <= "
                              f"{cfg.max_seq_length}")
        if "lm" in cfg.target and cfg.encoder == "transformer" and cfg.mask != "causal" and cfg.decoder is None:
            raise ConfigError(f"{a.config}: the target 'lm' predicts the next token, which a {cfg.mask!r} mask lets "
                              "every token see; set mask 'causal' (for XLNet: its attn_type 'uni'; the two-stream "
                              "permutation LM is not implemented)")
        for flag, path in (("--vocab_path", a.vocab_path), ("--spm_model_path", a.spm_model_path)):
            if not path:
                continue
            from ..tokenizers import Vocab
            from ..tokenizers.spm import load_processor, spm_vocab

            v = spm_vocab(load_processor(path), path) if flag == "--spm_model_path" else Vocab.load(path, required=())
            if m["vocab"]["sha256"] and v.sha256 != m["vocab"]["sha256"]:
                raise DataError(f"{a.dataset_path} was made with another vocabulary ({m['vocab']['file']}, "
                                f"{m['vocab']['size']} tokens) than {flag} {path} ({len(v)} tokens); "
                                f"re-run preprocess.py with {flag} {path}")
        # refuses a dataset whose processor cannot supply the config's targets, naming the fix
        self.collate = Collator(self.dataset, cfg.target, a.seed, encoder=cfg.encoder,
                                resources=self._field_resources(), decoder=cfg.decoder)
        check_dataset_strategy(cfg, m, a.dataset_path)  # and one masked otherwise than the config says
        if cfg.data_processor != m["data_processor"] and cfg.data_processor in SEQ2SEQ_PROCESSOR_NAMES:
            raise DataError(f"{a.dataset_path}: made with data_processor {m['data_processor']!r}, but the config "
                            f"{a.config} pretrains with {cfg.data_processor!r}; re-run preprocess.py with "
                            f"--data_processor {cfg.data_processor}")
        if cfg.data_processor != m["data_processor"]:
            logger.info("config data_processor %r, dataset made with %r, which supplies the config's targets (%s): "
                        "training on the dataset's instances", cfg.data_processor, m["data_processor"],
                        ", ".join(cfg.target))

    def _field_resources(self):
        """The runtime objects the batch-field builders read (data/fields.py): the zen encoder's n-grams from
        --ngram_path ({"ngram_inputs": ...}), or none."""
        if getattr(self, "_resources", None) is None:
            self._resources = self._load_field_resources()
        return self._resources

    def _load_field_resources(self):
        from ..data.ngram import INPUT_KEYS, NgramLexicon, input_builder
        from ..registry import ENCODERS

        cfg, a, m = self.config, self.args, self.manifest
        if not set(getattr(ENCODERS.get(cfg.encoder, key="encoder"), "input_keys", ())) & set(INPUT_KEYS):
            if a.ngram_path:
                raise ConfigError(f"--ngram_path is for encoder 'zen'; the config's encoder is '{cfg.encoder}'")
            return {}
        if not a.ngram_path:
            raise ConfigError(f"{a.config}: encoder 'zen' adds the n-grams of a lexicon matched in every batch: pass "
                              "--ngram_path (ZEN's ngram.txt)")
        if not a.vocab_path:  # checked against the dataset's vocabulary by _check_dataset
            raise ConfigError(f"--ngram_path: the n-gram lexicon is tokenised with the dataset's vocabulary: pass "
                              f"--vocab_path (the dataset was made with {m['vocab'].get('file')})")
        lexicon = NgramLexicon.load(a.ngram_path, a.vocab_path).check_rows(cfg.ngram_vocab_size, "the config")
        return {"ngram_inputs": input_builder(lexicon, cfg.max_ngrams)}

    def _check_outputs(self):
        """Every location the run writes is writable and has room, before any training (not at the first
        save, hours later)."""
        a = self.args
        n = sum(p.numel() for p in self.model.parameters())
        final = a.final_weights_path()
        if a.output_format == "hf" and os.path.isfile(final):
            raise TrainingError(f"--output_model_path {final}: --output_format hf writes a directory there, but it is "
                                "an existing file; give another path")
        if a.output_format != "hf" and os.path.isdir(final):
            raise TrainingError(f"--output_model_path {final} is an existing directory; the final weights "
                                f"({a.output_format}) are a file: give a file name (e.g. {os.path.join(final, 'model.bin')})")
        check_writable(a.checkpoint_dir, "--checkpoint_dir", need_bytes=12 * n, error=TrainingError)  # + Adam
        check_writable(os.path.dirname(os.path.abspath(final)), "the directory of --output_model_path",
                       need_bytes=4 * n, error=TrainingError)
        if a.tensorboard_dir:
            check_writable(a.tensorboard_dir, "--tensorboard_dir", error=TrainingError)
        if a.trace_path:
            if os.path.isdir(a.trace_path):
                raise TrainingError(f"--trace_path {a.trace_path} is a directory; give a file (JSON lines)")
            check_writable(os.path.dirname(os.path.abspath(a.trace_path)), "the directory of --trace_path",
                           error=TrainingError)

    def _pretrained_defining_config(self):
        """A UER checkpoint under a config that names no embedding/encoder/target (UER-py before 2021, flags
        not given either): the model loaded with the components read off its tensor names, else None."""
        from ..config import read_config_dict
        from ..legacy_config import has_module_keys

        a = self.args
        if not a.pretrained_model_path or isinstance(a.config, ModelConfig) or \
                detect_format(a.pretrained_model_path) in ("hf", "tf"):
            return None
        raw, _ = read_config_dict(a.config)
        raw.update(a.config_overrides)
        if has_module_keys(raw):
            return None
        return load_model(a.pretrained_model_path, config=a.config, config_overrides=a.config_overrides,
                          strict=False)

    def _load_pretrained(self, path, vocab_size, pre=None):
        """Initialise from released weights in any format load_model reads (UER, safetensors, Hugging Face,
        Google TF). Heads the checkpoint lacks stay initialised; each difference is logged by name."""
        fmt = detect_format(path)
        if pre is None:
            pre = load_model(path, config=None if fmt in ("hf", "tf") else self.config, strict=False)
        arch = {k: v for k, v in pre.config.diff(self.config).items()
                if k not in ("target", "dropout", "vocab_size", "data_processor", "tokenizer")}
        if arch:
            logger.warning("%s: the checkpoint's architecture differs from --config %s in %s; training the "
                           "--config architecture", path, self.args.config,
                           ", ".join(f"{k} ({a!r} vs {b!r})" for k, (a, b) in sorted(arch.items())))
        if pre.vocab_size != vocab_size:
            raise CheckpointError(f"{path}: the checkpoint's vocabulary has {pre.vocab_size} tokens but the dataset "
                                  f"{self.args.dataset_path} was made with {vocab_size}; preprocess with the "
                                  "checkpoint's vocab.txt")
        load_into(self.model, pre.state_dict(), strict=False, source=path)

    def _wrap(self, model):
        a = self.args

        def on_shard(sharded):  # the optimizer over the sharded parameters, with the resumed state
            self.optimizer = build_optimizer(a.optimizer, sharded, a.learning_rate, a.weight_decay)
            if self._resume_optim is not None:
                from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

                set_optimizer_state_dict(sharded, (self.optimizer,), self._resume_optim,
                                         options=StateDictOptions(full_state_dict=True))

        return parallel.wrap(model, self.info, fsdp=a.fsdp, compile=a.compile, on_shard=on_shard)

    def _resume(self):
        a = self.args
        self._resume_optim = None
        found = self.checkpoints.resume(a.resume)
        if found is None:
            return
        path, ckpt = found
        saved = load_config(ckpt["config"])
        diff = saved.diff(self.config)
        if diff:
            desc = "; ".join(f"{k}: checkpoint {v[0]!r} vs now {v[1]!r}" for k, v in sorted(diff.items()))
            raise ConfigError(f"{path}: the checkpoint was trained with another model config ({desc}); "
                              f"use the same config, or a new --output_model_path / --resume never to start afresh")
        self._check_same_dataset(path, ckpt.get("dataset") or {})
        if ckpt["global_batch"] != self.global_batch:
            logger.warning("%s: global batch was %d, now %d: the data order changes from here",
                           path, ckpt["global_batch"], self.global_batch)
        load_into(self.model, ckpt["model"], strict=True, source=path)
        if self.args.fsdp and self.info.enabled:
            self._resume_optim = ckpt["optimizer"]
        else:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        states = ckpt["rng"]
        set_rng_state(states[self.info.rank] if self.info.rank < len(states) else states[0])
        self.step = ckpt["step"]
        self.skipped_steps = ckpt.get("skipped_steps", 0)
        self.last_checkpoint = path
        self._saved_dev = (path, ckpt.get("dev_split"), ckpt.get("dev_best"))
        if self.info.is_main:
            logger.info("resumed from %s at step %d", path, self.step)

    def _dataset_identity(self):
        m = self.manifest
        return {"data_processor": m["data_processor"], "instances": m["instances"], "tokens": m["tokens"],
                "seq_length": m["seq_length"], "header_sha256": m.get("header_sha256"),
                "path": os.path.abspath(self.args.dataset_path)}

    def _check_same_dataset(self, path, saved):
        """A checkpoint resumes on the dataset it was trained on: the data order is a function of the step, so
        on another dataset (regenerated at the same path, or another --dataset_path) the run would go on
        silently with other samples. The header checksum identifies a dataset (copies and moves included);
        checkpoints without it compare the counts."""
        now = self._dataset_identity()
        keys = ("header_sha256",) if saved.get("header_sha256") and now["header_sha256"] else \
            ("data_processor", "instances", "tokens", "seq_length")
        diff = [k for k in keys if k in saved and saved[k] != now[k]]
        if not diff:
            if saved.get("path") and saved["path"] != now["path"] and self.info.is_main:
                logger.info("%s: the same dataset as the checkpoint's (%s), now at %s", path, saved["path"],
                            now["path"])
            return
        def desc(d):
            return (f"{d.get('path', 'path not recorded')}: {d.get('data_processor')}, {d.get('instances')} "
                    f"instances, {d.get('tokens')} tokens, seq_length {d.get('seq_length', '?')}")
        if self.args.allow_dataset_change:
            if self.info.is_main:
                logger.warning("%s was trained on another dataset (%s); continuing on %s as "
                               "--allow_dataset_change asks: the data order restarts from this dataset's",
                               path, desc(saved), desc(now))
            return
        raise DataError(f"{path} was trained on another dataset ({desc(saved)}) than --dataset_path ({desc(now)}); "
                        "resume on the same dataset, pass --allow_dataset_change to continue on this one on "
                        "purpose, or start afresh with another --output_model_path or --resume never")

    # ------------------------------------------------------------------ checkpoints
    def _state_dicts(self):
        if self.args.fsdp and self.info.enabled:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

            return get_state_dict(self.model, (self.optimizer,),
                                  options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return ({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, self.optimizer.state_dict())

    def save(self):
        """A checkpoint of the full state; never of non-finite weights (so rotation never removes the last
        finite checkpoint), and not while non-finite steps are being skipped."""
        state = None if self.nonfinite_streak else self._state_dicts()  # a collective under FSDP
        self.checkpoints.save(self.step, lambda: self._state(*state), self.model.parameters(), self.info.device,
                              self.nonfinite_streak)
        self.last_checkpoint = self.checkpoints.last

    def _state(self, model_sd, optim_sd):
        """A checkpoint's dict but for the RNG states and the step (which CheckpointManager.save adds)."""
        return {"model": model_sd, "optimizer": optim_sd, "scaler": self.scaler.state_dict(),
                "config": self.config.to_dict(), "global_batch": self.global_batch, "world_size": self.world,
                "skipped_steps": self.skipped_steps, "dataset": self._dataset_identity(),
                "dev_split": self.dev_split, "dev_best": self.dev_best}

    def _payload(self):
        """The full training state (collectives: every rank calls it); a function building the checkpoint's dict
        on rank 0."""
        rngs = dist_utils.all_gather_object(self.info, rng_state())
        state = self._state_dicts()
        return lambda: dict(self._state(*state), step=self.step, rng=rngs)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self):
        """The dev figures of the current weights (every rank evaluates its shard; all get the sums): see
        training/evaluation.py. Deterministic, and without effect on training's random stream."""
        if self.dev is None:
            raise ConfigError("no dev set: give --dev_dataset_path or --dev_fraction")
        return dev_eval.evaluate(self.model, self.dev, self.info, self.model.loss_names, self.config.target,
                                 autocast=self._autocast, to_device=self._to_device,
                                 same_count=self.args.fsdp and self.info.enabled)

    def _evaluate_and_keep(self, tb):
        """Evaluate, log, record, and write best.pt when the dev loss is the lowest so far (finite, and not
        while non-finite steps are being skipped, as any checkpoint)."""
        fig = self.evaluate()
        better = math.isfinite(fig["loss"]) and (self.dev_best is None or fig["loss"] < self.dev_best["loss"])
        if better and self.nonfinite_streak:
            better = False
            if self.info.is_main:
                logger.warning("step %d: the lowest dev loss so far, but no best checkpoint while steps are "
                               "non-finite", self.step)
        if better:
            self.dev_best = {"step": self.step, "loss": fig["loss"], "dev": self.dev.identity}

        def report():
            logger.info(dev_eval.format_line(self.step, fig, self.dev_best))
            dev_eval.write_record(self.args.checkpoint_dir, self.step, fig, self.dev_best)
            if tb is not None:
                dev_eval.add_scalars(tb, self.step, fig)

        self._on_main(report)
        if better:
            self._check_weights_finite("the best checkpoint")
            payload = self._payload()
            self._on_main(lambda: save_best(self.args.checkpoint_dir, dict(payload(), dev_figures=fig)))
        return fig

    def _on_main(self, fn):
        return dist_utils.on_main(self.info, fn)

    def _check_weights_finite(self, what):
        """Every rank checks its parameters (its shards under FSDP); all agree before anything is written."""
        check_weights_finite(self.model.parameters(), what, self.step,
                             f"the last finite checkpoint: {self.last_checkpoint or 'none'}", self.info.device,
                             self._reduce)

    def save_weights(self):
        """The final weights, UER format, for fine-tuning (a collective under FSDP: every rank calls it)."""
        if self.args.fsdp and self.info.enabled:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            state = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            model = Model(self.config, self.config.vocab_size) if self.info.is_main else None
            if model is not None:
                load_into(model, state, strict=True, source="FSDP state")
        else:
            model = self.model
        self._check_weights_finite("the final weights")

        def write():
            a = self.args
            path = a.final_weights_path()
            vocab = None
            if a.output_format == "hf":  # the tokenizer files: the vocabulary, or XLNet's sentencepiece model
                vocab = a.vocab_path or (a.spm_model_path if self.config.position_scheme == "xlnet" else None)
            save_model(model, path, format=a.output_format, vocab=vocab)
            logger.info("saved the final weights (%s) to %s", a.output_format, path)

        self._on_main(write)

    # ------------------------------------------------------------------ the loop
    def _autocast(self):
        return autocast(self.info.device, DTYPES[self.precision])

    def _to_device(self, batch):
        dev = self.info.device
        pin = dev.type == "cuda"
        return {k: (v.pin_memory().to(dev, non_blocking=True) if pin else v) if torch.is_tensor(v) else v
                for k, v in batch.items()}

    def _on_sigterm(self, signum, frame):
        self.stop_requested = True
        if self.info.is_main:
            logger.warning("SIGTERM: saving a checkpoint at the next step boundary, then exiting")

    def train(self):
        a, info = self.args, self.info
        old_handler = signal.signal(signal.SIGTERM, self._on_sigterm) if _main_thread() else None
        tb = _LazyWriter(a.tensorboard_dir) if info.is_main and a.tensorboard_dir else None
        first_step = self.step + 1
        trace = open(a.trace_path, "a") if (a.trace_path and info.is_main) else None
        n_params = sum(p.numel() for p in self.model.parameters())
        bar = None
        logs = contextlib.ExitStack()
        if info.is_main and self.step < a.total_steps:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            bar = tqdm(total=a.total_steps, initial=self.step, desc="pretrain", dynamic_ncols=True,
                       mininterval=1.0 if sys.stderr.isatty() else 30.0, disable=None)
            logs.enter_context(logging_redirect_tqdm())  # log lines above the bar, each printed once
        stats = _Stats(self.model.loss_names, info.device)
        t_report = time.time()
        micro = a.accumulation_steps
        self.train_model.train()
        try:
            while self.step < a.total_steps:
                lr = lr_at(self.step, a.total_steps, a.learning_rate, a.warmup, a.scheduler)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                step_loss = torch.zeros((), device=info.device)
                step_ids = []
                for k in range(micro):
                    epoch, idx = self.order.micro_batch(self.step, k * self.world + info.rank, micro * self.world)
                    step_ids.append(idx)
                    batch = self._to_device(self.collate(idx, epoch))
                    sync = k == micro - 1 or not info.enabled or a.fsdp
                    ctx = contextlib.nullcontext() if sync else self.train_model.no_sync()
                    with ctx:
                        with self._autocast():
                            out = self.train_model(batch)
                        loss = out["loss"] / micro
                        self.scaler.scale(loss).backward()
                    step_loss += loss.detach()
                    stats.add(out, batch["n_tokens"])
                self.scaler.unscale_(self.optimizer)
                gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), a.max_grad_norm)
                if hasattr(gnorm, "full_tensor"):  # FSDP: a DTensor
                    gnorm = gnorm.full_tensor()
                skipped = self._nonfinite_guard(step_loss, gnorm)
                if not skipped:
                    self.scaler.step(self.optimizer)
                self.scaler.update()  # with fp16, an overflow the scaler found lowers the scale
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1  # a skipped step still consumes its batch: the data order stays a function of step
                if self.step == first_step and info.is_main:
                    _log_first_step(self._t_created)
                if not skipped:
                    stats.add_step(gnorm)
                if a.trace_path:  # every rank joins the collectives; rank 0 writes
                    self._trace(trace, step_loss, lr, step_ids, skipped)
                if self.nonfinite_streak >= a.max_nonfinite_steps:
                    raise diverged(self.nonfinite_streak, self.step, lr, "the last finite checkpoint is "
                                   + (self.last_checkpoint or "none (none was written)"),
                                   count_nonfinite(self.model.parameters(), info.device, self._reduce))
                if bar is not None:
                    bar.update(1)
                if self.step % a.report_steps == 0 or self.step == a.total_steps:
                    t = time.time()
                    self._report(stats.reduce(info), lr, t - t_report, tb, n_params)
                    stats = _Stats(self.model.loss_names, info.device)
                    t_report = time.time()
                if self.dev is not None and (self.step % self.eval_steps == 0 or self.step == a.total_steps):
                    self._evaluate_and_keep(tb)
                stop = self._stop_agreed()
                if self.step % a.save_checkpoint_steps == 0 or self.step == a.total_steps or stop:
                    self.save()
                if stop:
                    if info.is_main:
                        logger.warning("stopped by SIGTERM at step %d of %d, checkpoint saved (exit status 143); resume "
                                       "by running the same command", self.step, a.total_steps)
                    return self.step
            self.save_weights()
            return self.step
        finally:
            self.close()
            logs.close()
            if bar is not None:
                bar.close()
            if tb is not None:
                tb.close()
            if trace is not None:
                trace.close()
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)

    def _nonfinite_guard(self, step_loss, gnorm):
        """True when this step's optimizer update must be skipped: the loss or the gradient norm is NaN/inf on
        any rank (guard.skip_step: one small all-reduce; every rank decides the same)."""
        skipped, self.nonfinite_streak = skip_step(step_loss, gnorm, self.nonfinite_streak,
                                                   self.args.max_nonfinite_steps, self.step + 1, self.scaler,
                                                   self._reduce, warn=self.info.is_main)
        self.skipped_steps += skipped
        return skipped

    def _reduce(self, t):
        dist_utils.all_reduce_sum(self.info, t)

    def _stop_agreed(self):
        if not self.info.enabled:
            return self.stop_requested
        # a host-side collective (gloo) so that the check never waits for the GPU
        flag = torch.tensor([1.0 if self.stop_requested else 0.0])
        torch.distributed.all_reduce(flag, group=self.info.cpu_group)
        return bool(flag.item() > 0)

    def _trace(self, trace, step_loss, lr, step_ids, skipped=False):
        loss = step_loss.clone()
        dist_utils.all_reduce_sum(self.info, loss)
        per_rank = dist_utils.all_gather_object(self.info, [i.tolist() for i in step_ids])
        # micro-batches in global order (micro-batch m = accumulation index x world + rank)
        ids = [per_rank[r][k] for k in range(len(step_ids)) for r in range(self.world)]
        if trace is not None:
            rec = {"step": self.step, "loss": loss.item() / self.world, "lr": lr, "ids": ids}
            if skipped:
                rec["skipped"] = True
            trace.write(json.dumps(rec) + "\n")
            trace.flush()

    def _report(self, s, lr, dt, tb, n_params):
        if not self.info.is_main:
            return
        tok_s = s["tokens"] / max(dt, 1e-9)
        losses = []
        for name in self.model.loss_names:
            if name in s["targets"]:
                t = s["targets"][name]
                base = f" (baseline {t['baseline']:.4f})" if "baseline" in t else ""
                losses.append(f"{name} loss {t['loss']:.4f} acc {t['acc']:.4f}{base}")
        mfu = self._mfu(tok_s, n_params)
        logger.info(format_report(self.step, self.args.total_steps, losses, lr, s["grad_norm"], tok_s,
                                  [f"MFU {mfu:.1%}"] if mfu is not None else ()))
        if tb is not None:
            for name, t in s["targets"].items():
                tb.add_scalar(f"loss/{name}", t["loss"], self.step)
                tb.add_scalar(f"acc/{name}", t["acc"], self.step)
                if "baseline" in t:
                    tb.add_scalar(f"baseline_acc/{name}", t["baseline"], self.step)
            tb.add_scalar("lr", lr, self.step)
            tb.add_scalar("grad_norm", s["grad_norm"], self.step)
            tb.add_scalar("tokens_per_s", tok_s, self.step)

    def _mfu(self, tok_s, n_params):
        if self.info.device.type != "cuda":
            return None
        name = torch.cuda.get_device_name(self.info.device)
        peak = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
        if peak is None or self.precision == "fp32":
            return None
        c = self.config
        flops_per_token = 6 * n_params + 12 * c.layers_num * c.hidden_size * self.manifest["seq_length"]
        return tok_s * flops_per_token / (peak * self.world)


class _LazyWriter:
    """A tensorboard SummaryWriter created (and tensorboard imported, about a second) at the first scalar."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.writer = None

    def add_scalar(self, *a, **kw):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(self.log_dir)
        self.writer.add_scalar(*a, **kw)

    def close(self):
        if self.writer is not None:
            self.writer.close()


def _process_age():
    """Seconds since this process started (Linux /proc), or None."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return time.time() - (btime + start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _log_first_step(t_created):
    age = _process_age()
    since = f"{age:.1f} s after the process started, " if age is not None else ""
    logger.info("first step done %s%.1f s after the trainer was created", since, time.time() - t_created)


class _Stats:
    """Accumulates on the device; synchronised only at report time."""

    def __init__(self, targets, device):
        self.device = device
        # per target: loss, correct, count, and `baseline` (what a trivial predictor gets right, for targets that
        # report one: ELECTRA's discriminator, against predicting "original" everywhere; 0 for the others, which
        # `has_baseline` leaves out of the report)
        self.sums = {t: torch.zeros(4, device=device, dtype=torch.float64) for t in targets}
        self.has_baseline = set()
        self.tokens = 0
        self.gnorm = torch.zeros((), device=device, dtype=torch.float64)
        self.steps = 0
        self.micro = 0

    def add(self, out, n_tokens):
        self.tokens += n_tokens
        for name, acc in self.sums.items():
            if name in out:
                r = out[name]
                base = r.get("baseline")
                if base is not None:
                    self.has_baseline.add(name)
                base = r["count"].new_zeros(()) if base is None else base
                acc += torch.stack([r["loss"].detach().double(), r["correct"].double(), r["count"].double(),
                                    base.double()])
        self.micro += 1

    def add_step(self, gnorm):
        self.gnorm += gnorm.detach().double()
        self.steps += 1

    def reduce(self, info):
        names = list(self.sums)
        flat = torch.stack([self.sums[n] for n in names]) if names else torch.zeros(0, 4)
        extra = torch.tensor([float(self.tokens), float(self.micro)], dtype=torch.float64,
                             device=self.device)
        dist_utils.all_reduce_sum(info, flat)
        dist_utils.all_reduce_sum(info, extra)
        flat, extra = flat.cpu(), extra.cpu()
        micro = max(extra[1].item(), 1.0)
        targets = {}
        for i, n in enumerate(names):
            loss_sum, correct, count, base = flat[i].tolist()
            targets[n] = {"loss": loss_sum / micro, "acc": correct / max(count, 1.0)}
            if n in self.has_baseline:
                targets[n]["baseline"] = base / max(count, 1.0)
        return {"targets": targets, "tokens": extra[0].item(),
                "grad_norm": self.gnorm.item() / max(self.steps, 1)}


def _main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()


def train(args: TrainArgs):
    trainer = Trainer(args)
    finished = False
    try:
        result = trainer.train()
        finished = True
        return result
    except RuntimeError as e:
        failure = dist_utils.collective_failure(trainer.info, e)
        if failure is None:
            raise
        raise failure from e
    finally:
        dist_utils.teardown(trainer.info, finished=finished)
