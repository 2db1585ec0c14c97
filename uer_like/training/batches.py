"""From dataset instances to training batches: the global sample order, dynamic masking and collation.

The order is a pure function of (seed, optimizer step): optimizer step t uses the global batch
perm_epoch[k*G:(k+1)*G] (G = batch_size x world_size x accumulation), and micro-batch m = a*world + rank
of it. So a run resumed at step t reads exactly what an uninterrupted run reads, whatever the number
of processes, as long as the global batch is kept. Dynamic masks are keyed by (seed, epoch, instance).
With a held-out dev split (training/evaluation.py), the order permutes the training ids only.
"""
import numpy as np
import torch

from ..data.masking import SimilarWords, mask_with, options_from_manifest
from ..data.processors import INSTANCE_SHAPES, PROCESSOR_TARGETS, PURPOSE_DYNAMIC_MASK, PURPOSE_ELECTRA_SAMPLE
from ..data.rng import SplitMix64, derive
from ..errors import DataError
from ..registry import TARGETS


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


class Collator:
    """Builds the batch fields a model's targets declare (their `batch_keys`) from instance ids of one
    micro-batch. extra_inputs: a function (the rows' token ids as the model sees them, masked) -> {field: int64
    array [batch, n]}, the encoder's own fields (the zen encoder's n-grams, data/ngram.py), or None."""

    def __init__(self, dataset, targets, seed, pad_to_multiple=8, extra_inputs=None):
        m = dataset.manifest
        self.extra_inputs = extra_inputs
        self.ds = dataset
        self.processor = m["data_processor"]
        missing = [t for t in targets if t not in PROCESSOR_TARGETS[self.processor]]
        if missing:
            raise DataError(f"{dataset.path}: made with data_processor '{self.processor}', which provides targets "
                            f"{list(PROCESSOR_TARGETS[self.processor])}, but the model config asks for {missing}; "
                            f"re-run preprocess.py with a matching --data_processor or change the config's target")
        self.targets = targets
        from .. import modules  # noqa: F401  (registration)

        self.fields = {k for t in targets for k in TARGETS.get(t, key="target").batch_keys}
        self.seed = seed
        self.pad_to = pad_to_multiple
        sp = m["special_ids"]
        self.pad_id, self.mask_id = sp["pad"], sp["mask"]
        self.special = {sp["pad"], sp["cls"], sp["sep"]}
        self.cls_id, self.sep_id = sp["cls"], sp["sep"]
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
        masked, pos, labels = mask_with(ids.tolist(), self.ds.instance_bits(idx).tolist(), self.special, rng,
                                        self.vocab_size, self.mask_id, self.masking)
        return np.asarray(masked, np.int64), np.asarray(pos, np.int64), np.asarray(labels, np.int64)

    def mask_batch(self, indices, epoch, rows):
        """mask() of every row of a micro-batch; dynamic masks are drawn in one native call when
        uer_like._native is built (identical to the Python mask_instance, which stays the reference)."""
        from ..data import native

        if self.ds.static_masks or not native.AVAILABLE or not len(rows) or \
                (self.masking.strategy != "mlm" and not native.has_strategies()):
            return [self.mask(i, epoch, ids) for i, ids in zip(indices, rows)]
        lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
        bits = np.concatenate([self.ds.instance_bits(int(i)) for i in indices])
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
                what = self.shape.problem(r, int(self.ds.seg_a_len[i]), self.seq_length, self.cls_id, self.sep_id)
                what = what and f"is malformed ({what})"
            if what:
                raise DataError(f"{self.ds.path}: instance {i} {what}: the dataset is corrupt (pretrain.py "
                                "--verify_dataset checks it whole); re-run preprocess.py")

    def __call__(self, indices, epoch):
        lm = self.processor == "lm"
        rows = [self.ds.instance_ids(int(i)) for i in indices]
        self._check_instances(rows, indices)
        lengths = [len(r) - 1 if lm else len(r) for r in rows]
        L = max(lengths)
        L = (L + self.pad_to - 1) // self.pad_to * self.pad_to
        B = len(rows)
        src = np.full((B, L), self.pad_id, np.int64)
        seg = np.zeros((B, L), np.int64)
        batch = {}
        mlm_pos, mlm_labels = [], []
        tgt_lm = np.zeros((B, L), np.int64) if lm else None
        tgt_backward = np.zeros((B, L), np.int64) if "tgt_backward" in self.fields else None
        masked = "mlm_pos" in self.fields and not lm
        masks = self.mask_batch(indices, epoch, rows) if masked else None
        for b, (i, ids) in enumerate(zip(indices, rows)):
            n = lengths[b]
            a = int(self.ds.seg_a_len[i])
            if lm:
                src[b, :n] = ids[:-1]
                tgt_lm[b, :n] = ids[1:]
                seg[b, :n] = 1
                if tgt_backward is not None:  # the backward LM predicts the previous token
                    tgt_backward[b, 1:n] = ids[:n - 1]
                continue
            if masked:
                ids, pos, labels = masks[b]
                mlm_pos.append(pos + b * L)
                mlm_labels.append(labels)
            src[b, :n] = ids
            seg[b, :a] = 1
            seg[b, a:n] = 2
        batch["src"] = torch.from_numpy(src)
        batch["seg"] = torch.from_numpy(seg)
        if lm:
            batch["tgt_lm"] = torch.from_numpy(tgt_lm)
            batch["lm_pos"] = torch.from_numpy(np.flatnonzero(tgt_lm.reshape(-1) > 0))
        if tgt_backward is not None:
            batch["tgt_forward"] = batch["tgt_lm"]
            batch["tgt_backward"] = torch.from_numpy(tgt_backward)
        if masked:
            batch["mlm_pos"] = torch.from_numpy(np.concatenate(mlm_pos).astype(np.int64))
            batch["mlm_labels"] = torch.from_numpy(np.concatenate(mlm_labels).astype(np.int64))
        labels = torch.from_numpy(np.asarray(self.ds.labels[np.asarray(indices)], np.int64))
        if "tgt_sp" in self.fields:
            batch["tgt_sp"] = labels
        if "tgt_cls" in self.fields:
            batch["tgt_cls"] = labels
        if "electra_seed" in self.fields:  # ELECTRA's sampling noise: a function of the step (resume draws the same)
            batch["electra_seed"] = derive(self.seed, PURPOSE_ELECTRA_SAMPLE, int(epoch), int(indices[0])) >> 1
        if self.extra_inputs is not None:
            extra = self.extra_inputs([src[b, :n] for b, n in enumerate(lengths)])
            batch.update({k: torch.from_numpy(v) for k, v in extra.items()})
        batch["n_tokens"] = int(sum(lengths))
        return batch
