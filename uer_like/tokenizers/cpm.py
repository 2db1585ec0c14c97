"""CPM's tokenizer (TsinghuaAI CPM-Generate, data_utils/tokenization_gpt2.py): the text is cut by jieba
(accurate mode, HMM on), spaces and newlines inside the words become U+2582 / U+2583, the words are joined
with spaces and encoded by sentencepiece (ids = sentencepiece ids). Decoding reverses it: the pieces'
text with every space dropped, then U+2582 -> space and U+2583 -> newline. Generation ends at <eod>.

transformers' CpmTokenizer does the same cut and decode (its v5 port no longer cuts with jieba before
encoding); here CPM-Generate's own code is the reference (tests/test_release_tokenizers.py)."""
import os

from ..errors import DataError
from ..registry import TOKENIZERS
from .spm import UNDERLINE, load_processor
from .vocab import Vocab

SPM_FILES = ("chinese_vocab.model", "spiece.model")  # CPM-Generate's name, the Hugging Face release's
TRANSLATE = str.maketrans(" \n", "\u2582\u2583")


@TOKENIZERS.register("cpm")
class CpmTokenizer:
    hf_tokenizer_classes = ("CpmTokenizer", "CpmTokenizerFast")
    hf_model_types = ()
    detect_files = ("chinese_vocab.model",)  # a bare spiece.model is XLNet's; the Hugging Face release says CpmTokenizer
    lm_start_token, lm_end_token = None, "<eod>"

    def __init__(self, spm_model_path=None, **kwargs):
        if not spm_model_path or not os.path.isfile(spm_model_path):
            raise DataError(f"CPM: no sentencepiece model at {spm_model_path} (the release's "
                            f"{' or '.join(SPM_FILES)}; pass --spm_model_path)")
        self.sp = load_processor(spm_model_path)
        have = {self.sp.IdToPiece(i) for i in range(self.sp.GetPieceSize())}
        specials = {"cls": "<cls>" if "<cls>" in have else "<s>", "sep": "<sep>" if "<sep>" in have else "</s>",
                    "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}
        self.vocab = Vocab([self.sp.IdToPiece(i) for i in range(self.sp.GetPieceSize())], spm_model_path,
                           specials=specials)
        if self.lm_end_token not in have:
            self.lm_end_token = "</s>"

    @classmethod
    def build(cls, vocab_path=None, spm_model_path=None, do_lower_case=True, **kwargs):
        return cls(spm_model_path or vocab_path)

    @classmethod
    def files_in(cls, directory):
        for name in SPM_FILES:
            p = os.path.join(directory, name)
            if os.path.isfile(p):
                return p
        return None

    def _text(self, text):
        from ..segmentation import segment

        return " ".join(w.translate(TRANSLATE) for w in segment(text))

    def tokenize(self, text):
        return self.sp.encode(self._text(text), out_type=str)

    def encode(self, text):
        return self.sp.encode(self._text(text))

    def tokenize_with_starts(self, text):
        pieces = self.tokenize(text)
        return pieces, [0 if p.startswith(UNDERLINE) else -1 for p in pieces]

    def convert_tokens_to_ids(self, tokens):
        return self.vocab.convert_tokens_to_ids(tokens)

    def decode(self, ids):
        text = self.sp.decode([int(i) for i in ids])
        return text.replace(" ", "").replace("\u2582", " ").replace("\u2583", "\n")
