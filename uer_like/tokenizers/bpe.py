"""Byte-level BPE (GPT-2, DialoGPT, RoBERTa-English), run by the `tokenizers` library: a release's
tokenizer.json (any tokenizer the library reads: the text is tokenized exactly as the release's fast
tokenizer does), or GPT-2's vocab.json + merges.txt (byte-level pre-tokenizer without a prefix space, as
GPT2Tokenizer). Special tokens come from tokenizer_config.json / special_tokens_map.json when the
directory has them, else GPT-2's (<|endoftext|> for all) or RoBERTa's (<s> </s> <pad> <unk> <mask>) by
what the vocabulary holds; pairs are packed as the release's template says (layout.of_release: RoBERTa's
`<s> a </s></s> b </s>`, else BERT's). Decoding is the library's (byte-level: exact text back)."""
import os

from ..errors import DataError
from ..registry import TOKENIZERS
from .layout import of_release
from .release_files import describe
from .vocab import Vocab

TOKENIZER_JSON, VOCAB_JSON, MERGES = "tokenizer.json", "vocab.json", "merges.txt"
GPT2_EOT = "<|endoftext|>"


def _load(path):
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    except ImportError:  # pragma: no cover
        raise DataError(f"{path}: byte-level BPE needs the tokenizers package (pip install tokenizers)") from None
    try:
        if os.path.basename(path) == TOKENIZER_JSON:
            return Tokenizer.from_file(path)
        merges = os.path.join(os.path.dirname(path), MERGES)
        if not os.path.isfile(merges):
            raise DataError(f"{path}: no {MERGES} beside it, which byte-level BPE needs with its {VOCAB_JSON}")
        tok = Tokenizer(models.BPE.from_file(path, merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        return tok
    except DataError:
        raise
    except Exception as e:  # the library raises bare Exceptions on a bad file
        raise DataError(f"{path}: not a tokenizer file the tokenizers library reads "
                        f"({str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__})") from None


def clean_up_tokenization(text):
    """transformers' clean_up_tokenization (applied by decode when the release asks for it)."""
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                 (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text


@TOKENIZERS.register("byte_bpe")
class ByteBPETokenizer:
    """`vocab_path`: a tokenizer.json, or a vocab.json with merges.txt beside it."""

    hf_tokenizer_classes = ("GPT2Tokenizer", "GPT2TokenizerFast", "RobertaTokenizer", "RobertaTokenizerFast",
                            "BartTokenizer", "BartTokenizerFast")
    hf_model_types = ()  # Chinese GPT-2 releases (model_type gpt2) use BERT's vocab.txt: selected by files
    lm_start_token = None  # GPT-2 prompts start with their text

    def __init__(self, vocab_path=None, **kwargs):
        if not vocab_path or not os.path.isfile(vocab_path):
            raise DataError(f"byte-level BPE: no {TOKENIZER_JSON} or {VOCAB_JSON} at {vocab_path} "
                            "(pass the release directory's file as --vocab_path)")
        self.tok = _load(vocab_path)
        info = describe(os.path.dirname(os.path.abspath(vocab_path)))
        table = self.tok.get_vocab(with_added_tokens=True)
        size = max(table.values()) + 1 if table else 0
        i2w = [f"<unused{i}>" for i in range(size)]  # ids the file leaves unused (none in the releases)
        for w, i in table.items():
            i2w[i] = w
        have = set(table)

        def pick(*cands):
            return next((c for c in cands if c and c in have), None)

        roberta = "<s>" in have and "</s>" in have
        eos = pick(info.get("eos_token"), "</s>" if roberta else None, GPT2_EOT)
        specials = {"cls": pick(info.get("cls_token"), info.get("bos_token"), "<s>", GPT2_EOT),
                    "sep": pick(info.get("sep_token"), eos), "pad": pick(info.get("pad_token"), "<pad>", eos),
                    "unk": pick(info.get("unk_token"), "<unk>", eos), "mask": pick(info.get("mask_token"), "<mask>")}
        self.vocab = Vocab(i2w, vocab_path, specials={k: v for k, v in specials.items() if v})
        if os.path.basename(vocab_path) != TOKENIZER_JSON:  # GPT2Tokenizer never splits its special tokens
            from tokenizers import AddedToken

            self.tok.add_special_tokens([AddedToken(t, special=True) for t in sorted(set(specials.values()) - {None})])
        self.lm_end_token = eos
        # how pairs are packed: the release's own template (RoBERTa / BART: <s> a </s></s> b </s>)
        self.layout = of_release(vocab_path if os.path.basename(vocab_path) == TOKENIZER_JSON else None, info,
                                 specials["cls"], specials["sep"])
        self.clean_up = bool(info.get("clean_up_tokenization_spaces", False))

    @classmethod
    def build(cls, vocab_path=None, spm_model_path=None, do_lower_case=True, **kwargs):
        return cls(vocab_path)

    @classmethod
    def files_in(cls, directory):
        """The file this tokenizer reads in a release directory (None when it has none)."""
        for name in (TOKENIZER_JSON, VOCAB_JSON):
            p = os.path.join(directory, name)
            if os.path.isfile(p) and (name == TOKENIZER_JSON or os.path.isfile(os.path.join(directory, MERGES))):
                return p
        return None

    def _encode(self, text):
        return self.tok.encode(text, add_special_tokens=False)

    def tokenize(self, text):
        return self._encode(text).tokens

    def encode(self, text):
        return self._encode(text).ids

    def tokenize_with_starts(self, text):
        """-> (pieces, starts): the offset of the first piece of each pre-tokenized word, -1 inside a word."""
        enc = self._encode(text)
        starts, prev = [], None
        for w, (a, _) in zip(enc.word_ids, enc.offsets):
            starts.append(a if w is None or w != prev else -1)
            prev = w
        return enc.tokens, starts

    def convert_tokens_to_ids(self, tokens):
        return self.vocab.convert_tokens_to_ids(tokens)

    def decode(self, ids):
        """ids -> text as the release's tokenizer decodes them (special tokens kept)."""
        text = self.tok.decode([int(i) for i in ids], skip_special_tokens=False)
        return clean_up_tokenization(text) if self.clean_up else text
