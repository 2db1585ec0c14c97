"""XLNet's sentencepiece tokenizer (HFL's Chinese XLNet, `spiece.model`), as transformers' XLNetTokenizer:
whitespace runs collapsed, `` and '' read as ", accents stripped (NFKD), no lower-casing, and a piece
ending in a digit and a comma split before the comma. The special tokens are XLNet's: <cls>, <sep>,
<pad>, <mask>, <unk>.

XLNet's input layout differs from BERT's: `A <sep> B <sep> <cls>`, the final <cls> in a segment of its own,
and padding on the left (`build_inputs`, `PADDING_SIDE`)."""
import os
import unicodedata

from ..errors import DataError
from ..registry import TOKENIZERS
from .spm import load_processor, spm_vocab
from .vocab import BERT_SPECIALS

XLNET_SPECIALS = {"pad": "<pad>", "unk": "<unk>", "cls": "<cls>", "sep": "<sep>", "mask": "<mask>"}
SPM_FILE = "spiece.model"


def load_spm(path, what="XLNet"):
    if not path or not os.path.isfile(path):
        raise DataError(f"{path}: no sentencepiece model, which the {what} tokenizer needs (pass --spm_model_path, "
                        f"or keep the release's {SPM_FILE} beside its weights)")
    return load_processor(path)


@TOKENIZERS.register("xlnet")
class XLNetTokenizer:
    layout = "xlnet"
    padding_side = "left"
    hf_tokenizer_classes = ("XLNetTokenizer", "XLNetTokenizerFast")
    hf_model_types = ("xlnet",)

    def __init__(self, vocab=None, spm_model_path=None, do_lower_case=False, **kwargs):
        self.sp = load_spm(spm_model_path)
        self.do_lower_case = do_lower_case
        self.vocab = spm_vocab(self.sp, spm_model_path)
        self.vocab.specials = dict(BERT_SPECIALS, **XLNET_SPECIALS)
        missing = [t for t in XLNET_SPECIALS.values() if t not in self.vocab]
        if missing:
            raise DataError(f"{spm_model_path}: not an XLNet sentencepiece model: it lacks {', '.join(missing)}")

    @classmethod
    def build(cls, vocab_path=None, spm_model_path=None, do_lower_case=False, **kwargs):
        return cls(spm_model_path=spm_model_path)

    @classmethod
    def files_in(cls, directory):
        p = os.path.join(directory, SPM_FILE)
        return p if os.path.isfile(p) else None

    def _normalize(self, text):
        text = " ".join(text.strip().split()).replace("``", '"').replace("''", '"')
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
        return text.lower() if self.do_lower_case else text

    def tokenize(self, text):
        out = []
        for piece in self.sp.EncodeAsPieces(self._normalize(text)):
            if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
                cur = self.sp.EncodeAsPieces(piece[:-1].replace("\u2581", ""))
                if piece[0] != "\u2581" and cur and cur[0][0] == "\u2581":
                    cur = [cur[0][1:]] + cur[1:] if len(cur[0]) > 1 else cur[1:]
                out.extend(cur + [piece[-1]])
            else:
                out.append(piece)
        return out

    def tokenize_with_starts(self, text):
        pieces = self.tokenize(text)
        return pieces, [0 if p.startswith("\u2581") else -1 for p in pieces]

    def encode(self, text):
        return self.vocab.convert_tokens_to_ids(self.tokenize(text))

    def convert_tokens_to_ids(self, tokens):
        return self.vocab.convert_tokens_to_ids(tokens)
