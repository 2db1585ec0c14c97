"""Text-to-text fine-tuning of encoder-decoder models (T5, mT5, BART, PEGASUS): finetune/run_text2text.py, with
UER-py's run_text2text.py flags and file format.

Data: a tsv whose header names `text_a` (the source), `label` (the target) and optionally `text_b` (a second
source part). A --test_path without a `label` column is predicted only. A row with a missing column is an error
naming the file and line.
Input (UER-py's): the source `[CLS] text_a [SEP] (text_b [SEP])`, cut to --seq_length tokens (the number of cut
sources is logged with the first one's file and line); the decoder reads `start + target` and learns
`target + end`, the target cut to --tgt_seq_length - 1 tokens (the decoder's positions: at most --tgt_seq_length).
start / end: the pretrained model's decoder_start_token_id / eos_token_id (its Hugging Face config.json), else
the tokenizer's [CLS] / [SEP] as UER-py; an eos equal to the padding id (uer/bart-*-chinese says 0) is not
learnable and [SEP] is used.

Model: the encoder-decoder model itself (`embedding`, `encoder`, `tgt_embedding`, `decoder`, `target.lm`: the
names of UER-py's Text2text, so fine-tuned files are UER-format and load with uer_like.load_model / export to
Hugging Face with scripts/convert.py). Loss: cross-entropy of the decoder's logits against the target, padding
ignored. Evaluation: the targets generated for the dev/test sources (uer_like.generate: greedy, or beam search
with --num_beams), compared with the gold targets as the tokenizer sees them (their tokens joined, as the
predictions are): exact match (UER-py's "Acc."), character BLEU and ROUGE-L (text_metrics.py); --metric picks the
one that selects the best epoch. Generation settings not given as flags come from the pretrained model's
generation_config.json / config.json (num_beams, length_penalty, no_repeat_ngram_size, repetition_penalty,
forced_bos/eos_token_id, min_length, ...: uer_like.generation.release_defaults and DECODING_SETTINGS).
Predictions: a tsv with header `label`, one generated target per line (UER-py's run_text2text_infer.py).
"""
from ..errors import ConfigError
from ..flags import GENERATION_RULES, Int
from ..generation import DECODING_SETTINGS, detokenize, generate, release_defaults
from . import data as D
from .tasks import TASKS, Task, logger
from .text_metrics import text_metrics

METRICS = ("exact_match", "bleu", "rouge_l")
DEFAULT_TGT_SEQ_LENGTH = 32  # UER-py's --tgt_seq_length


def read_text2text(path, labeled=True):
    """-> examples {text_a, text_b (or None), label (or None), where}."""
    rows = D.read_tsv(path, required=("text_a",) + (("label",) if labeled else ()), optional=("text_b",))
    return [{"text_a": row["text_a"], "text_b": row.get("text_b"), "label": row["label"] if labeled else None,
             "where": f"{path}:{lineno}"} for lineno, row in rows]


@TASKS.register("text2text")
class Text2TextTask(Task):
    name = "text2text"
    script = "run_text2text.py"
    description = ("text-to-text with an encoder-decoder model, T5 / BART / PEGASUS (tsv: text_a[, text_b], label; "
                   "exact match, character BLEU and ROUGE-L of the generated targets)")
    main_metric = "exact_match"
    defaults = {"seq_length": 128}

    @staticmethod
    def add_args(group):
        group.add_argument("--tgt_seq_length", type=Int(min=2, max=1 << 20), default=None,
                           help=f"target length, the decoder's start token included (default: the fine-tuned "
                                f"model's, else {DEFAULT_TGT_SEQ_LENGTH}, as UER-py)")
        group.add_argument("--num_beams", type=GENERATION_RULES["num_beams"], default=None,
                           help="beam search with this many beams when generating (default: the fine-tuned model's, "
                                "else the pretrained model's generation_config.json, else 1: greedy)")
        group.add_argument("--length_penalty", type=GENERATION_RULES["length_penalty"], default=None,
                           help="beam search: score / new_tokens ** this (default: as --num_beams, else 1.0)")
        group.add_argument("--metric", choices=METRICS, default=None,
                           help="the dev metric that selects the best epoch (default exact_match, UER-py's)")

    # a fine-tuned model's own keys: it is the whole encoder-decoder model (check_finetuned_model)
    head_keys = ("decoder.",)
    head_description = "no decoder (decoder.*): not an encoder-decoder model"

    def __init__(self, args, encoder, meta=None):
        super().__init__(args, encoder, meta)
        s = self.saved
        if args.tgt_seq_length is None:
            args.tgt_seq_length = s.get("tgt_seq_length", DEFAULT_TGT_SEQ_LENGTH)
        self.metric = args.metric or s.get("metric", "exact_match")
        self.main_metric = self.metric
        self.start_id = s.get("decoder_start_token_id")
        self.eos_id = s.get("eos_token_id")
        self.generation = {k: s[k] for k in DECODING_SETTINGS if k in s}
        if encoder.cls_id is None or encoder.sep_id is None:
            raise ConfigError("run_text2text.py lays sources out as UER-py does, [CLS] text [SEP]: the tokenizer's "
                              "vocabulary has no [CLS] / [SEP] (give a BERT-style --vocab_path)")

    def meta(self):
        return {**Task.meta(self), "tgt_seq_length": self.args.tgt_seq_length, "metric": self.metric,
                "decoder_start_token_id": self.start_id, "eos_token_id": self.eos_id, **self._generation()}

    def _generation(self):
        """generate's decoding settings (generation.DECODING_SETTINGS): num_beams and length_penalty the flags',
        else (each of them) the fine-tuned model's, else the release's, else neutral."""
        out = {**DECODING_SETTINGS, **self.generation}
        for k in ("num_beams", "length_penalty"):
            if getattr(self.args, k, None) is not None:
                out[k] = getattr(self.args, k)
        return out

    # ------------------------------------------------------------------ model
    def load_backbone(self, path, config_path, vocab_size, config_overrides=None, vocab_file=None):
        """(config, the pretrained encoder-decoder model or None, None). Random initialisation (no path) needs
        --config_path naming an encoder-decoder config; a model without a decoder is refused in one line."""
        from ..config import load_config

        if not path:
            if not config_path:
                raise ConfigError("give --pretrained_model_path (a T5 / BART / PEGASUS model) or --config_path (an "
                                  "encoder-decoder config, with decoder and tgt_embedding) to start from")
            config = load_config(config_path, **(config_overrides or {}))
            self._need_decoder(config, f"--config_path {config_path}")
            return (config if config.vocab_size == vocab_size else config.replace(vocab_size=vocab_size)), None, None
        from ..io.checkpoint import load_model
        from ..io.tokenizer import check_rows

        model = load_model(path, config=config_path, config_overrides=config_overrides)
        self._need_decoder(model.config, f"--pretrained_model_path {path}")
        check_rows(vocab_size, model.embedding.word.embedding.weight.shape[0], vocab_file or "(the vocabulary)",
                   model.load_info.path or path)
        self.release = release_defaults(model)
        return model.config, model, None

    @staticmethod
    def _need_decoder(config, what):
        if config.decoder is None:
            raise ConfigError(f"{what} has no decoder (not an encoder-decoder model): run_text2text.py fine-tunes "
                              "T5 / BART / PEGASUS-style models (config keys decoder and tgt_embedding)")

    def build_model(self, config, vocab_size, backbone=None, pooler=None):
        from ..model import Model

        self._need_decoder(config, "the model config")
        model = backbone if backbone is not None else Model(config, vocab_size)
        self._special_ids(model)
        limit = config.position_limit
        if limit is not None and self.args.tgt_seq_length > limit:
            raise ConfigError(f"--tgt_seq_length {self.args.tgt_seq_length} exceeds the decoder's position table "
                              f"(max_seq_length {limit})")
        return model

    def _special_ids(self, model):
        """The decoder's start and end ids (see the module docstring), and the release's generation settings."""
        release = getattr(self, "release", None) or {}
        if release.get("unsupported"):
            logger.warning("the pretrained model's generation settings ask for %s, which uer_like.generate does not "
                           "apply: generation runs without them", ", ".join(f"{k} {v}" for k, v in
                                                                            release["unsupported"].items()))
        for k in DECODING_SETTINGS:
            if k in release and k not in self.generation:
                self.generation[k] = release[k]
        vocab = self.enc.vocab
        if self.start_id is None:
            self.start_id = release.get("decoder_start_token_id", self.enc.cls_id)
        if self.eos_id is None:
            eos = release.get("eos_token_id")
            self.eos_id = self.enc.sep_id if eos is None or eos == self.enc.pad_id else eos
        if self.generation.get("forced_eos_token_id") == self.enc.pad_id:  # uer/bart-*-chinese: forced eos 0 too
            self.generation["forced_eos_token_id"] = self.eos_id
        rows = model.target.lm.output_layer.out_features
        for name, i in (("decoder start", self.start_id), ("end", self.eos_id)):
            if i is None or not 0 <= i < rows:
                raise ConfigError(f"the {name} token id {i} is not in the model's vocabulary [0, {rows}) (the "
                                  f"tokenizer's vocabulary {getattr(vocab, 'path', None) or ''} has no [CLS]/[SEP]?)")

    # ------------------------------------------------------------------ data
    def is_labeled(self, path):
        return "label" in D.read_tsv(path)[0][1]

    def read(self, path, labeled=True, train=False):
        return read_text2text(path, labeled)

    def encode(self, examples, train=False):
        enc, L, T = self.enc, self.args.seq_length, self.args.tgt_seq_length
        feats, cut = [], []
        for i, ex in enumerate(examples):
            src = [enc.cls_id] + enc.ids(ex["text_a"]) + [enc.sep_id]
            if ex["text_b"] is not None:
                src += enc.ids(ex["text_b"]) + [enc.sep_id]
            if len(src) > L:
                cut.append(ex["where"])
                src = src[:L]
            feat = {"src": src, "example": i}
            if ex["label"] is not None:  # the start and end ids are added per batch (known once the model is)
                feat["tgt"] = enc.ids(ex["label"])[:T - 1]
            feats.append(feat)
        if cut:
            logger.warning("%d of %d sources are longer than --seq_length %d tokens and were cut to it (the first: %s)",
                           len(cut), len(examples), L, cut[0])
        return feats

    def collate(self, feats):
        src = D.pad([f["src"] for f in feats], self.enc.pad_id)
        batch = {"src": src, "seg": D.pad([[1] * len(f["src"]) for f in feats], 0),
                 "sources": [f["src"] for f in feats]}
        if all("tgt" in f for f in feats):
            batch["tgt_in"] = D.pad([[self.start_id] + f["tgt"] for f in feats], self.enc.pad_id)
            batch["tgt_out"] = D.pad([f["tgt"] + [self.eos_id] for f in feats], 0)
            batch["tgt_seg"] = D.pad([[1] * (len(f["tgt"]) + 1) for f in feats], 0)
        return batch

    def loss(self, model, batch):
        return model(batch)["loss"]

    def outputs(self, model, batch):
        """The generated target ids of each source (without the start token; ending with eos when it stopped)."""
        return generate(model, batch["sources"], self.args.tgt_seq_length, eos_token_id=self.eos_id,
                        decoder_start_token_id=self.start_id, **self._generation())

    # ------------------------------------------------------------------ results
    def text(self, ids):
        """Token ids -> text as the predictions are written (the end token and anything after it dropped)."""
        if self.eos_id in ids:
            ids = ids[:ids.index(self.eos_id)]
        tok = self.enc.tokenizer
        ids = [i for i in ids if i < len(self.enc.vocab)]  # an embedding's padding rows have no token
        decode = getattr(tok, "decode", None)
        if decode is not None:
            return decode(ids)
        return detokenize(self.enc.vocab.convert_ids_to_tokens(ids), getattr(self.args, "tokenizer", None) or "bert")

    def decode(self, examples, feats, outputs):
        return [self.text(list(o)) for o in outputs]

    def gold(self, example):
        """The gold target as the tokenizer sees it (its tokens, cut to the target length, joined as predictions
        are), which is what a prediction can equal (UER-py compares the same)."""
        return self.text(self.enc.ids(example["label"])[:self.args.tgt_seq_length - 1])

    def has_gold(self, examples):
        return all(ex["label"] is not None for ex in examples)

    def evaluate(self, examples, preds):
        return text_metrics(preds, [self.gold(ex) for ex in examples])

    def summary(self, m):
        return (f"exact match {m['exact_match']:.4f}, BLEU {m['bleu']:.2f}, ROUGE-L {m['rouge_l']:.4f} "
                f"({m['total']} examples)")

    def write(self, path, examples, feats, outputs, preds):
        with open(path, "w", encoding="utf-8") as f:
            f.write("label\n")
            for p in preds:
                f.write(p.replace("\t", " ").replace("\n", " ") + "\n")

