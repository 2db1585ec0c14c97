"""From dataset instances to training batches: the global sample order, dynamic masking and collation.

The order is a pure function of (seed, optimizer step): optimizer step t uses the global batch
perm_epoch[k*G:(k+1)*G] (G = batch_size x world_size x accumulation), and micro-batch m = a*world + rank
of it. So a run resumed at step t reads exactly what an uninterrupted run reads, whatever the number
of processes, as long as the global batch is kept. Dynamic masks are keyed by (seed, epoch, instance).
With a held-out dev split (training/evaluation.py), the order permutes the training ids only.
"""
import numpy as np
import torch

from .. import modules  # noqa: F401  (registers the targets and encoders whose fields a collator builds)
from ..data import native
from ..data import ngram  # noqa: F401  (registers the zen encoder's input fields)
from ..data.fields import BASE_FIELDS, BATCH_FIELDS, MicroBatch
from ..data.masking import SimilarWords, mask_with, options_from_manifest
from ..data.options import MASKING_PROCESSORS
from ..data.processors import INSTANCE_SHAPES, PROCESSOR_SOURCES, PURPOSE_DYNAMIC_MASK
from ..data.rng import SplitMix64
from ..data.seq2seq import PAIR_MAKERS
from ..errors import ConfigError, DataError
from ..registry import DECODERS, ENCODERS, TARGETS


class SampleOrder:
    def __init__(self, n_instances, global_batch, seed, ids=None):
        """ids: the dataset's instance ids to draw from (n_instances of them; None: 0..n_instances-1)."""
        if n_instances < global_batch:
            raise DataError(f"the dataset has {n_instances} instances, fewer than one global batch of {global_batch} "
                            "(batch_size x world size x accumulation steps): use a smaller batch or more data")
        self.n = n_instances
        self.global_batch = global_batch
        self.seed = seed
        self.ids = None if ids is None else np.asarray(ids, np.int64)
        if self.ids is not None and len(self.ids) != n_instances:
            raise ValueError(f"SampleOrder: {len(self.ids)} ids for {n_instances} instances")
        self.steps_per_epoch = n_instances // global_batch
        self._epoch, self._perm = None, None

    def permutation(self, epoch):
        if epoch != self._epoch:
            self._perm = np.random.Generator(np.random.PCG64([self.seed, epoch])).permutation(self.n)
            self._epoch = epoch
        return self._perm

    def position(self, step):
        return step // self.steps_per_epoch, step % self.steps_per_epoch

    def micro_batch(self, step, micro_index, micro_count):
        """Instance ids of micro-batch `micro_index` (of `micro_count`) of optimizer step `step`."""
        epoch, k = self.position(step)
        perm = self.permutation(epoch)
        g = perm[k * self.global_batch:(k + 1) * self.global_batch]
        size = self.global_batch // micro_count
        part = g[micro_index * size:(micro_index + 1) * size]
        return epoch, part if self.ids is None else self.ids[part]


def declared_fields(targets, encoder=None, decoder=None):
    """{field: who declares it} for target names (their `batch_keys`; a target that only serves inference
    declares `inference_only`), an encoder name (its `input_keys`) and a decoder name: an encoder-decoder model
    trains on its decoder's `batch_keys` (the target tokens), which stand for its lm target's."""
    owners = {}
    if decoder is not None:
        for k in DECODERS.get(decoder, key="decoder").batch_keys:
            owners.setdefault(k, f"decoder '{decoder}'")
        targets = ()
    for t in targets:
        cls = TARGETS.get(t, key="target")
        for k in () if getattr(cls, "inference_only", False) else cls.batch_keys:
            owners.setdefault(k, f"target '{t}'")
    if encoder is not None:
        for k in getattr(ENCODERS.get(encoder, key="encoder"), "input_keys", ()):
            owners.setdefault(k, f"encoder '{encoder}'")
    return owners


def check_lm_mask(config, manifest, config_path, dataset_path):
    """The lm target predicts each token's next one, so the mask must hide it: 'causal' always does;
    'causal_with_prefix' (the prefix LM) only when segment 1 is a source that predicts nothing, as in a dataset
    of a processor whose instance shape says `prefix` (prefixlm). A one-line ConfigError otherwise."""
    if ("lm" not in config.target or config.encoder != "transformer" or config.mask == "causal"
            or config.decoder is not None):  # an encoder-decoder's lm target is its decoder's, causal by build
        return
    if config.mask == "causal_with_prefix":
        processor = manifest["data_processor"]
        if INSTANCE_SHAPES[processor].prefix or "next_tokens" not in PROCESSOR_SOURCES[processor]:
            return  # a prefix dataset; or one without next tokens, which the collator refuses naming the field
        raise ConfigError(f"{config_path}: mask 'causal_with_prefix' lets segment 1 attend both ways, and "
                          f"{dataset_path} (data_processor '{processor}') predicts the next token in segment 1, "
                          "which every token would then see; preprocess `source<TAB>target` lines with "
                          "--data_processor prefixlm, or set mask 'causal'")
    raise ConfigError(f"{config_path}: the target 'lm' predicts the next token, which a {config.mask!r} mask lets "
                      "every token see; set mask 'causal' (or 'causal_with_prefix' with a prefixlm dataset; for XLNet: "
                      "its attn_type 'uni'; the two-stream permutation LM is not implemented)")


class Collator:
    """Builds exactly the batch fields that the targets (their `batch_keys`) and the encoder (its `input_keys`)
    declare, through the field registry (data/fields.py), from instance ids of one micro-batch; src, seg and
    n_tokens always. A declared field without a builder, one the dataset's processor cannot supply, or one
    whose builder needs a resource not given, is refused here, at start, in one line naming both.
    resources: runtime objects builders read ({"ngram_inputs": data/ngram.input_builder(...)} for zen).
    decoder: an encoder-decoder model's decoder name: batches of sources (src, seg) and targets (its fields),
    made from the instances by the processor's data/seq2seq.PAIR_MAKERS entry."""

    def __init__(self, dataset, targets, seed, pad_to_multiple=8, encoder=None, resources=None, decoder=None):
        m = dataset.manifest
        self.ds = dataset
        self.processor = m["data_processor"]
        self.resources = dict(resources or {})
        supplied = set(PROCESSOR_SOURCES[self.processor])
        self.builders = {}
        for name, owner in declared_fields(targets, encoder, decoder).items():
            if name in BASE_FIELDS:
                continue
            if name not in BATCH_FIELDS:
                raise ConfigError(f"{owner} declares batch field '{name}', which has no builder; register one "
                                  "(uer_like.data.fields.register_field)")
            b = BATCH_FIELDS.get(name)
            lacking = [s for s in b.sources if s not in supplied]
            if lacking:
                raise DataError(f"{dataset.path}: {owner} needs batch field '{name}', which a dataset made with "
                                f"data_processor '{self.processor}' cannot supply (no {', '.join(lacking)}); "
                                "re-run preprocess.py with a matching --data_processor or change the config's target")
            missing = [r for r in b.resources if r not in self.resources]
            if missing:
                raise ConfigError(f"{owner} needs batch field '{name}', built from {', '.join(missing)}, "
                                  "which the collator was not given")
            self.builders[name] = b
        self.targets = targets
        self.fields = set(self.builders)
        # an encoder-decoder batch: sources and targets made by the processor (masked first where it masks)
        self.pair = PAIR_MAKERS[self.processor] if any("seq2seq" in b.sources for b in self.builders.values()) \
            else None
        self.masked = any(b.masks for b in self.builders.values()) or \
            (self.pair is not None and self.processor in MASKING_PROCESSORS)
        self.seed = seed
        self.pad_to = pad_to_multiple
        sp = m["special_ids"]
        self.pad_id, self.mask_id = sp["pad"], sp["mask"]
        self.special = {sp["pad"], sp["cls"], sp["sep"]}
        self.cls_id, self.sep_id = sp["cls"], sp["sep"]
        self.sentinels = sp.get("sentinels")  # t5
        self.tgt_seq_length = m.get("tgt_seq_length", 0)  # bart, gsg: the longest target an instance holds
        self.shape = INSTANCE_SHAPES[self.processor]
        self.seq_length = m["seq_length"]
        self.vocab_size = m["vocab"]["size"]
        self.whole_word = m["whole_word_masking"]
        self.prob = m["mask_prob"]
        self.per_word = m["mask_decision"] == "word"
        self.dynamic = m["dynamic_masking"]
        s = m.get("masking") or {}
        similar = SimilarWords.from_json(s["similar_table"], s.get("similar_words")) if "similar_table" in s else None
        self.masking = options_from_manifest(m, similar)
        if self.masking.strategy == "macbert" and self.dynamic and similar is None:
            raise DataError(f"{dataset.path}: a dynamic MacBERT dataset without its similar-word table; re-run "
                            "preprocess.py")

    def mask(self, idx, epoch, ids):
        if self.ds.static_masks:
            pos, labels = self.ds.instance_masks(idx)
            return ids, pos, labels
        rng = SplitMix64(self.seed, PURPOSE_DYNAMIC_MASK, epoch, int(idx))
        bits = self.ds.instance_bits(idx)[:len(ids)]  # ids: the instance, or the source that is masked alone
        masked, pos, labels = mask_with(ids.tolist(), bits.tolist(), self.special, rng,
                                        self.vocab_size, self.mask_id, self.masking)
        return np.asarray(masked, np.int64), np.asarray(pos, np.int64), np.asarray(labels, np.int64)

    def mask_batch(self, indices, epoch, rows):
        """mask() of every row of a micro-batch; dynamic masks are drawn in one native call when
        uer_like._native is built (identical to the Python mask_instance, which stays the reference)."""
        if self.ds.static_masks or not native.AVAILABLE or not len(rows) or \
                (self.masking.strategy != "mlm" and not native.has_strategies()):
            return [self.mask(i, epoch, ids) for i, ids in zip(indices, rows)]
        lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
        bits = np.concatenate([self.ds.instance_bits(int(i))[:len(r)] for i, r in zip(indices, rows)])
        M = (1 << 64) - 1  # SplitMix64(seed, PURPOSE_DYNAMIC_MASK, epoch, idx), as mask()
        keys = np.array([[self.seed & M, PURPOSE_DYNAMIC_MASK, int(epoch) & M, int(i) & M] for i in indices],
                        np.uint64)
        out, mlen, pos, lab = native.mask_instances(np.concatenate(rows), lengths, bits, keys, self.special,
                                                    self.vocab_size, self.mask_id, options=self.masking)
        ends, mends = np.cumsum(lengths), np.cumsum(mlen)
        return [(out[e - n:e], pos[m - k:m], lab[m - k:m]) for e, n, m, k in zip(ends, lengths, mends, mlen)]

    def _check_instances(self, rows, indices):
        """Cheap checks of every instance of a batch (opening a dataset checks only its header): a token id
        outside the vocabulary, a length outside 2..seq_length, a framed instance that does not run [CLS] ...
        [SEP] (offsets out of order or shifted), a bad segment length. A DataError naming the dataset and the
        instance, not an IndexError inside the embedding or silent training on misaligned tokens."""
        for r, i in zip(rows, indices):
            i = int(i)
            if r.size and int(r.max()) >= self.vocab_size:
                what = f"has token id {int(r.max())}, outside the vocabulary (size {self.vocab_size})"
            else:
                what = self.shape.problem(r, int(self.ds.seg_a_len[i]), self.seq_length, self.cls_id, self.sep_id,
                                          self.tgt_seq_length)
                what = what and f"is malformed ({what})"
            if what:
                raise DataError(f"{self.ds.path}: instance {i} {what}: the dataset is corrupt (pretrain.py "
                                "--verify_dataset checks it whole); re-run preprocess.py")

    def _padded(self, lengths):
        L = max(lengths)
        L = (L + self.pad_to - 1) // self.pad_to * self.pad_to
        return np.full((len(lengths), L), self.pad_id, np.int64), np.zeros((len(lengths), L), np.int64)

    def _seq2seq(self, indices, epoch, rows):
        """Sources (src, seg 1) and targets (MicroBatch.targets) of an encoder-decoder batch."""
        a_lens = [int(self.ds.seg_a_len[int(i)]) for i in indices]
        masks = [None] * len(rows)
        if self.masked:  # the maskable part of each row (a bart instance: its source) is masked alone
            parts = [r[:self.shape.maskable(len(r), a)] for r, a in zip(rows, a_lens)]
            masks = [tuple(x.tolist() for x in m) for m in self.mask_batch(indices, epoch, parts)]
        pairs = [self.pair(self, r, a, m) for r, a, m in zip(rows, a_lens, masks)]
        lengths = [len(source) for source, _ in pairs]
        src, seg = self._padded(lengths)
        for b, (source, _) in enumerate(pairs):
            src[b, :len(source)] = source
            seg[b, :len(source)] = 1
        targets = [t for _, t in pairs]
        mb = MicroBatch(self, indices, epoch, rows, lengths, src, seg, None, self.resources, targets=targets)
        return mb, sum(lengths) + sum(len(t) - 1 for t in targets)

    def __call__(self, indices, epoch):
        lm = self.processor == "lm"  # an lm piece holds seq_length + 1 tokens: the model reads all but the last
        rows = [self.ds.instance_ids(int(i)) for i in indices]
        self._check_instances(rows, indices)
        if self.pair is not None:
            mb, n_tokens = self._seq2seq(indices, epoch, rows)
            return self._fields(mb, n_tokens)
        # the tokens each row gives the model (a prefixlm instance cut at seq_length holds one more: a label)
        lengths = [len(r) - 1 if lm else min(len(r), self.seq_length) for r in rows]
        src, seg = self._padded(lengths)
        masks = self.mask_batch(indices, epoch, rows) if self.masked else None
        for b, (i, ids) in enumerate(zip(indices, rows)):
            n = lengths[b]
            a = int(self.ds.seg_a_len[i])
            if lm:
                src[b, :n] = ids[:-1]
                seg[b, :n] = 1
                continue
            if masks is not None:  # the row as the model sees it, masked; the builders read (positions, labels)
                ids, pos, labels = masks[b]
                masks[b] = (pos, labels)
            src[b, :n] = ids[:n]
            seg[b, :a] = 1
            seg[b, a:n] = 2
        mb = MicroBatch(self, indices, epoch, rows, lengths, src, seg, masks, self.resources)
        return self._fields(mb, sum(lengths))

    def _fields(self, mb, n_tokens):
        batch = {"src": torch.from_numpy(mb.src), "seg": torch.from_numpy(mb.seg)}
        for name, b in self.builders.items():
            value = b.build(mb)
            batch[name] = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
        batch["n_tokens"] = int(n_tokens)
        return batch
