"""Pretraining: the set-up of a run (dataset, model, optimizer, precision, dev set), its resume, and its wiring
onto the training loop that fine-tuning (finetune/core.py) runs on too: single process or torchrun (DDP /
FSDP), mixed precision, gradient accumulation, exact resume, held-out evaluation, throughput logs.

The pieces: the step loop (loop.py), the DDP/FSDP wrap (parallel.py), the checkpoint manager
(checkpoint.CheckpointManager: save, rotate, resume, never non-finite), precision (precision.py), the
non-finite guard (guard.py), the report (metrics.py), rank-0 writes (distributed.on_main) and the arguments
(args.TrainArgs, which pretrain.py's flags are made from)."""
import json
import logging
import math
import os
import time
import weakref

import numpy as np
import torch

from ..config import ModelConfig, load_config, read_config_dict
from ..data.dataset import Dataset
from ..data.masking import check_dataset_strategy
from ..data.ngram import INPUT_KEYS, NgramLexicon, input_builder
from ..data.processors import SEQ2SEQ_PROCESSOR_NAMES
from ..errors import CheckpointError, ConfigError, DataError, TrainingError
from ..legacy_config import has_module_keys
from ..outputs import OutputLock, check_writable
from ..io.checkpoint import detect_format, load_into, load_model, save_model
from ..io.hf import hf_family_for
from ..model import Model
from ..modules import check_config as check_components
from ..registry import ENCODERS
from ..targets.electra import discriminator_config, generator_config
from ..tokenizers import Vocab
from ..tokenizers.spm import load_processor, spm_vocab
from . import distributed as dist_utils
from . import parallel
from .args import TrainArgs
from .batches import Collator, SampleOrder, check_lm_mask
from .checkpoint import CheckpointManager, rng_state, save_best
from . import evaluation as dev_eval
from .memory import cap_shape_caches
from .guard import NonfiniteGuard, check_weights_finite
from .loop import Micro, StepLoop
from .metrics import Report
from .optim import build_optimizer, lr_at
from .precision import DTYPES, autocast, choose_precision, grad_scaler

logger = logging.getLogger("uer_like")


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
            self.train_model = self.loop.module = self._wrap(self.model)
        except BaseException:
            self.close()
            raise

    def close(self):
        """Release the checkpoint directory's lock (train() does at its end; so does garbage collection)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @property
    def step(self):
        """The optimizer steps done (the resumed checkpoint's included)."""
        return self.loop.step

    @property
    def skipped_steps(self):
        """Optimizer steps skipped for a NaN/inf loss or gradient norm (all time: checkpoints record them)."""
        return self.loop.guard.skipped

    @property
    def nonfinite_streak(self):
        """Optimizer steps skipped in a row, up to now, for a NaN/inf loss or gradient norm (checkpoints are only
        written when it is 0)."""
        return self.loop.guard.streak

    def _set_up(self, args):
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
            try:
                if "electra" in self.config.target:  # written as its two halves (io/checkpoint.py save_model)
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
        self.last_checkpoint = None
        self.checkpoints = CheckpointManager(args.checkpoint_dir, args.keep_checkpoints, self.info, self._reduce)
        self.optimizer = build_optimizer(args.optimizer, self.model, args.learning_rate, args.weight_decay)
        self.precision, dtype = choose_precision(args.precision, self.info.device,
                                                 *((logger.info, logger.warning) if self.info.is_main else ()))
        self.scaler = grad_scaler(self.info.device, dtype)
        self.loop = StepLoop(self.model, self.optimizer, self.scaler, self.info, dtype=dtype,
                             schedule=lambda step: lr_at(step, args.total_steps, args.learning_rate, args.warmup,
                                                         args.scheduler),
                             total_steps=args.total_steps, max_grad_norm=args.max_grad_norm,
                             guard=NonfiniteGuard(args.max_nonfinite_steps, self.scaler, self._reduce,
                                                  warn=self.info.is_main),
                             kept=lambda: "the last finite checkpoint is " + (self.last_checkpoint or
                                                                              "none (none was written)"))
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
        check_lm_mask(cfg, m, a.config, a.dataset_path)
        for flag, path in (("--vocab_path", a.vocab_path), ("--spm_model_path", a.spm_model_path)):
            if not path:
                continue
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
            self.optimizer = self.loop.optimizer = build_optimizer(a.optimizer, sharded, a.learning_rate,
                                                                   a.weight_decay)
            if self._resume_optim is not None:
                # FSDP only: torch.distributed.checkpoint takes a while to import
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
        sharded = self.args.fsdp and self.info.enabled  # (its optimizer state goes into the shards: _wrap)
        self.loop.step = self.checkpoints.restore(path, ckpt, self.model, None if sharded else self.optimizer,
                                                  self.scaler)
        if sharded:
            self._resume_optim = ckpt["optimizer"]
        self.loop.guard.skipped = ckpt.get("skipped_steps", 0)  # all time (the streak is 0 at a checkpoint)
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
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict  # (FSDP only)

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
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict  # (FSDP only)

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

    def train(self):
        """Train from self.step to --total_steps (the loop: loop.py), evaluating the dev set every --eval_steps and
        writing a checkpoint every --save_checkpoint_steps, then the final weights -> the step reached (below
        --total_steps when SIGTERM stopped the run: its checkpoint is written)."""
        a, info = self.args, self.info
        report = Report(info, a.total_steps, a.report_steps, targets=self.model.loss_names, say=logger.info,
                        tensorboard_dir=a.tensorboard_dir, flops_per_token=self._flops_per_token(),
                        precision=self.precision)
        trace = open(a.trace_path, "a") if (a.trace_path and info.is_main) else None
        first_step = self.step + 1

        def after_step(loss, skipped):
            if self.step == first_step and info.is_main:
                _log_first_step(self._t_created)
            if a.trace_path:  # every rank joins the collectives; rank 0 writes
                self._trace(trace, loss, self.loop.lr, self._step_ids, skipped)

        self.train_model.train()
        try:
            stopped = self.loop.run(self._batches(), self.train_model, report, after_step=after_step,
                                    evaluate=lambda: self._evaluate_and_keep(report.writer),
                                    eval_every=self.eval_steps if self.dev is not None else 0,
                                    save=self.save, save_every=a.save_checkpoint_steps, progress={"desc": "pretrain"})
            if not stopped:
                self.save_weights()
            return self.step
        finally:
            self.close()
            report.close()
            if trace is not None:
                trace.close()

    def _batches(self):
        """The training batches from self.step on: per optimizer step, this rank's micro-batches (micro-batch m of
        a step is the order's m-th, m = accumulation index x world + rank), collated as the loop consumes them."""
        while True:
            self._step_ids = []  # the step's sample ids, for the trace
            yield self._micro_batches(self.step)

    def _micro_batches(self, step):
        micro = self.args.accumulation_steps
        for k in range(micro):
            epoch, idx = self.order.micro_batch(step, k * self.world + self.info.rank, micro * self.world)
            self._step_ids.append(idx)
            batch = self._to_device(self.collate(idx, epoch))
            yield Micro(batch, 1.0 / micro, batch["n_tokens"], len(idx))

    def _reduce(self, t):
        dist_utils.all_reduce_sum(self.info, t)

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

    def _flops_per_token(self):
        """Training FLOPs per token, the usual estimate (6 x parameters + attention's 12 x layers x hidden x
        sequence length), for the report's MFU."""
        c = self.config
        n_params = sum(p.numel() for p in self.model.parameters())
        return 6 * n_params + 12 * c.layers_num * c.hidden_size * self.manifest["seq_length"]


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
