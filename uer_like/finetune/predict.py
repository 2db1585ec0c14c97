"""Batch inference from Python with a model fine-tuned by run_classifier.py (classification, regression,
multi_label): texts in, predictions out, computed as `run_classifier.py --load_model_path M --test_path T`
computes them (the task's encoding with the model's tokenizer and seq_length, length-sorted batches, the
precision `--precision auto` picks, the task's decoding).

    from uer_like.finetune.predict import Predictor
    p = Predictor("models/book_review_classifier.bin")
    p.predict(["这本书很好看", "太无聊了"])            # -> [1, 0] (class ids; regression: floats;
                                                       #    multi_label: lists of class ids)
    p.logits(["这本书很好看"])                         # -> [tensor([...])], one per text
"""
import torch

from ..errors import ConfigError
from . import core
from . import data as D
from .tasks import get_task, set_quiet

SENTENCE_TASKS = ("classification", "regression", "multi_label")


class Predictor:
    """A fine-tuned sentence(-pair) model loaded for inference.

    model_path: a model written by run_classifier.py (MODEL_finetune.json and MODEL_config.json beside it);
    batch_size: texts per forward; device: auto (a GPU when there is one), cpu, cuda[:N]; precision: auto | fp32 |
    bf16 | fp16 (auto: bf16 autocast where the device computes bf16 natively); vocab_path, tokenizer: as
    run_classifier.py's flags (default: the model's); quiet: no log line on loading.
    """

    def __init__(self, model_path, batch_size=64, device="auto", precision="auto", vocab_path=None, tokenizer=None,
                 quiet=True):
        from . import cli
        from ..training.precision import DTYPES, resolve_precision

        task_name = core.read_finetune_meta(model_path).get("task")
        if task_name not in SENTENCE_TASKS:
            raise ConfigError(f"{model_path}: Predictor runs models fine-tuned by run_classifier.py "
                              f"({', '.join(SENTENCE_TASKS)}); this one is "
                              + (f"a {task_name} model" if task_name else "not one (no _finetune.json beside it)"))
        argv = ["--load_model_path", model_path, "--batch_size", str(batch_size), "--precision", precision,
                "--device", device, "--no_progress"]
        argv += ["--vocab_path", vocab_path] if vocab_path else []
        argv += ["--tokenizer", tokenizer] if tokenizer else []
        args = cli.build_parser(task_name).parse_args(argv)
        state = cli.check_finetuned_model(model_path, get_task(task_name).script)
        meta = core.read_finetune_meta(model_path)
        tok = cli._build_tokenizer(args, meta)
        args.seq_length = meta.get("seq_length", 128)
        self.task = cli.make_task(task_name, args, D.Encoder(tok), meta)
        old = set_quiet(quiet)
        try:
            model = cli.load_finetuned_model(self.task, args, tok, state)
            if model.input_keys:
                cli._feed_encoder_inputs(self.task, model, args, meta, tok.vocab, get_task(task_name), task_name)
        finally:
            set_quiet(old)
        self.device = core.get_device(device)
        self.precision = resolve_precision(precision, self.device)[0]
        self.dtype = DTYPES[self.precision]
        self.model = model.to(self.device).eval()
        self.args = args
        self.pair = self.task.text_pair

    def _examples(self, texts, texts_b):
        if isinstance(texts, str):
            raise TypeError("Predictor takes a list of texts (got one string)")
        if texts_b is not None and len(texts_b) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(texts_b)} second texts")
        if self.pair is not None and (texts_b is not None) != self.pair:
            raise ConfigError("the model reads " + ("sentence pairs: give texts_b" if self.pair else
                                                    "single sentences: give no texts_b"))
        return [{"text_a": t, "text_b": None if texts_b is None else texts_b[i], "label": None, "where": f"text {i}"}
                for i, t in enumerate(texts)]

    def _run(self, texts, texts_b):
        examples = self._examples(texts, texts_b)
        if not examples:
            return examples, [], []
        feats = self.task.encode(examples)
        outputs, preds = core.evaluate(self.task, self.model, examples, feats, self.args, self.device, self.dtype,
                                       desc="predict")
        return examples, outputs, preds

    def predict(self, texts, texts_b=None):
        """-> one prediction per text, in order (what run_classifier.py writes in the label column)."""
        return self._run(texts, texts_b)[2]

    def logits(self, texts, texts_b=None):
        """-> the model's outputs per text, in order (float tensors on the CPU)."""
        return [torch.as_tensor(o) for o in self._run(texts, texts_b)[1]]
