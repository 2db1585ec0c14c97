"""Feature extraction with released weights: texts in, one vector per text (or per token) out."""
import os

import numpy as np
import torch

from ..errors import ConfigError
from ..flags import FEATURE_RULES, check_value
from .checkpoint import check_seq_length
from .formats import LoadInfo, load_info_of

POOLINGS = ("first", "mean", "max", "last", "none")


def build_text_encoder(model, vocab_path=None, do_lower_case=None, spm_model_path=None):
    """A function (text_a, text_b=None) -> (ids, seg) for the model: Google BERT tokenisation over a
    vocab.txt ([CLS] a [SEP] b [SEP], segments 1/2; word-level WordPiece when the release directory calls
    for it: RoFormer / WoBERT, tokenizers/word.py), SentencePiece over a model's own pieces when
    `spm_model_path` is given (as UER-py; the word-based releases), or the release's own Hugging Face
    tokenizer when it has no vocab.txt (GPT-2 BPE), or for XLNet its spiece.model (`spm_model_path`, else
    the one beside the weights) and its layout (a <sep> b <sep> <cls>). do_lower_case None: the vocab.txt's
    directory decides (tokenizers.text_settings: a cased release's tokenizer_config.json), else True."""
    if model.config.tokenizer == "xlnet":
        return _xlnet_text_encoder(model, spm_model_path)
    info = load_info_of(model) or LoadInfo()
    own_vocab = vocab_path is None and info.vocab_path is not None
    vocab_path = vocab_path or info.vocab_path
    if spm_model_path or (vocab_path and vocab_path.endswith(".txt")):
        if spm_model_path:
            from ..tokenizers.spm import SentencePieceTokenizer

            tok = SentencePieceTokenizer(None, spm_model_path=spm_model_path)
            vocab = tok.vocab
        else:
            from ..tokenizers import text_settings
            from ..tokenizers.bert import BertTokenizer
            from ..tokenizers.vocab import Vocab

            vocab = Vocab.load(vocab_path, required=())
            settings = text_settings("bert", vocab_path, do_lower_case)
            tok = BertTokenizer(vocab, **settings)
            name = _directory_tokenizer(model) if own_vocab else None
            if name in ("word_wordpiece", "roformer_word"):  # WoBERT / RoFormer word models
                from ..registry import TOKENIZERS

                tok = TOKENIZERS.get(name)(vocab, **settings)
        causal = model.config.mask == "causal"
        cls_id, sep_id = vocab.get("[CLS]"), vocab.get("[SEP]")

        def encode(a, b=None):
            ids_a = vocab.convert_tokens_to_ids(tok.tokenize(a))
            ids_b = vocab.convert_tokens_to_ids(tok.tokenize(b)) if b is not None else None
            if cls_id is None or sep_id is None or (causal and b is None):
                ids = ids_a + (ids_b or [])
                return ids, [1] * len(ids_a) + [2] * len(ids_b or [])
            first = [cls_id] + ids_a + [sep_id]
            second = (ids_b + [sep_id]) if ids_b is not None else []
            return first + second, [1] * len(first) + [2] * len(second)

        return encode
    if info.tokenizer_dir:
        try:
            from transformers import AutoTokenizer
        except ImportError:  # pragma: no cover
            raise ConfigError("the model has no vocab.txt; its tokenizer needs transformers") from None
        hf_tok = AutoTokenizer.from_pretrained(info.tokenizer_dir)

        def encode(a, b=None):
            enc = hf_tok(a, b) if b is not None else hf_tok(a)
            ids = enc["input_ids"]
            tt = enc.get("token_type_ids") or [0] * len(ids)
            return ids, [t + 1 for t in tt]

        return encode
    raise ConfigError("no vocabulary for the model: pass vocab_path=... (a vocab.txt)")


def _directory_tokenizer(model):
    """The tokenizer the model's release directory calls for (tokenizers/select.py), or None."""
    from ..tokenizers import detect_tokenizer
    from .tokenizer import model_dir

    d = model_dir(model)
    return detect_tokenizer(d) if d else None


def _xlnet_text_encoder(model, spm_path=None):
    """XLNet: its sentencepiece model (spm_path, or spiece.model beside the weights) and its layout."""
    from ..tokenizers import build_tokenizer
    from ..tokenizers.layout import pack
    from ..tokenizers.xlnet import SPM_FILE

    if spm_path is None:
        src = (load_info_of(model) or LoadInfo()).path or "the model"
        d = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
        spm_path = os.path.join(d, SPM_FILE)
    tok = build_tokenizer("xlnet", spm_model_path=spm_path)
    vocab = tok.vocab

    def encode(a, b=None):
        ids_b = tok.encode(b) if b is not None else None
        src, seg, _, _ = pack("xlnet", vocab.cls_id, vocab.sep_id, tok.encode(a), ids_b)
        return src, seg

    return encode


@torch.no_grad()
def extract_features(model, texts, vocab_path=None, seq_length=None, pooling="mean", batch_size=32, encoder=None,
                     spm_model_path=None, ngram_path=None):
    """Encode texts (strings, or (text_a, text_b) pairs) with a loaded model in eval mode.

    A ZEN model (encoder 'zen') also gets each text's n-grams (data/ngram.py) from `ngram_path` (its
    ngram.txt; default: the one beside the weights), matched on the tokens after the cut to seq_length.

    pooling: "first" ([CLS]), "mean"/"max" over the tokens, "last" (the last token; for causal models),
    or "none" for per-token features. Returns a float32 numpy array [n, hidden_size], or for "none" a list
    of [tokens, hidden_size] arrays. Sequences longer than seq_length (default: min(128, the model's
    max_seq_length); more than the position embedding holds is an error) are cut."""
    from ..targets.cls import pool

    if pooling not in POOLINGS:
        raise ConfigError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    if seq_length is None:
        seq_length = min(128, model.config.max_seq_length)
    seq_length = check_value(seq_length, FEATURE_RULES["seq_length"], "seq_length")
    batch_size = check_value(batch_size, FEATURE_RULES["batch_size"], "batch_size")
    check_seq_length(model.config, seq_length)
    encode = encoder or build_text_encoder(model, vocab_path, spm_model_path=spm_model_path)
    extra_inputs = _extra_inputs(model, ngram_path, vocab_path)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            enc = [encode(*t) if isinstance(t, (tuple, list)) else encode(t) for t in chunk]
            enc = [(ids[:seq_length], seg[:seq_length]) for ids, seg in enc]
            n = max(1, max(len(ids) for ids, _ in enc))
            src = torch.zeros(len(enc), n, dtype=torch.long)
            seg = torch.zeros(len(enc), n, dtype=torch.long)
            for i, (ids, s) in enumerate(enc):
                src[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
                seg[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            src, seg = src.to(device), seg.to(device)
            inputs = {k: v.to(device) for k, v in extra_inputs([ids for ids, _ in enc]).items()}
            hidden = model.encode(src, seg, **inputs).float()
            if pooling == "none":
                for i, (ids, _) in enumerate(enc):
                    out.append(hidden[i, :len(ids)].cpu().numpy())
            else:
                out.append(pool(hidden, seg, pooling).cpu().numpy())
    finally:
        model.train(was_training)
    if pooling == "none":
        return out
    return np.concatenate(out, axis=0) if out else np.zeros((0, model.config.hidden_size), dtype=np.float32)


def _extra_inputs(model, ngram_path=None, vocab_path=None):
    """A function (token-id rows) -> the encoder's own batch fields as tensors ({} for most encoders; the zen
    encoder's n-grams, data/ngram.py)."""
    keys = set(getattr(model, "input_keys", ()))
    if not keys:
        return lambda rows: {}
    from ..data.ngram import INPUT_KEYS, lexicon_for, ngram_inputs

    if keys != set(INPUT_KEYS):
        raise ConfigError(f"encoder '{model.config.encoder}' takes inputs {sorted(keys)} that feature extraction does "
                          "not build")
    lexicon = lexicon_for(model, ngram_path, vocab_path)
    limit = model.config.max_ngrams
    return lambda rows: {k: torch.from_numpy(v) for k, v in ngram_inputs(rows, lexicon, limit).items()}
