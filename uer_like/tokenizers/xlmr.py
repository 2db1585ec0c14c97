"""XLM-RoBERTa's sentencepiece tokenizer (sentencepiece.bpe.model) with fairseq's ids, as transformers'
XLMRobertaTokenizer: <s>=0 <pad>=1 </s>=2 <unk>=3, then every other piece at its sentencepiece id + 1,
and <mask> last (250,002 ids for the XLM-R releases). The text goes to sentencepiece as it is (its own
normalisation); decoding joins the pieces with "▁" read as a space."""
import os

from ..errors import DataError
from ..registry import TOKENIZERS
from .spm import UNDERLINE, load_processor
from .vocab import Vocab

SPM_FILE = "sentencepiece.bpe.model"
FAIRSEQ = ("<s>", "<pad>", "</s>", "<unk>")
XLMR_SPECIALS = {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}


@TOKENIZERS.register("xlmr")
class XLMRTokenizer:
    hf_tokenizer_classes = ("XLMRobertaTokenizer", "XLMRobertaTokenizerFast")
    hf_model_types = ("xlm-roberta",)
    lm_start_token, lm_end_token = "<s>", "</s>"
    layout = "roberta"  # XLMRobertaTokenizer's pair template: <s> a </s></s> b </s>

    def __init__(self, spm_model_path=None, **kwargs):
        if not spm_model_path or not os.path.isfile(spm_model_path):
            raise DataError(f"XLM-R: no sentencepiece model at {spm_model_path} (the release's {SPM_FILE}; pass "
                            "--spm_model_path)")
        self.sp = load_processor(spm_model_path)
        n = self.sp.GetPieceSize()
        # fairseq's dictionary: its 4 specials, then spm pieces 3.. (spm's own <unk> <s> </s> are 0-2) shifted by 1
        tokens = list(FAIRSEQ) + [self.sp.IdToPiece(i) for i in range(3, n)] + ["<mask>"]
        self.vocab = Vocab(tokens, spm_model_path, specials=XLMR_SPECIALS)

    @classmethod
    def build(cls, vocab_path=None, spm_model_path=None, do_lower_case=True, **kwargs):
        return cls(spm_model_path or vocab_path)

    @classmethod
    def files_in(cls, directory):
        p = os.path.join(directory, SPM_FILE)
        return p if os.path.isfile(p) else None

    def tokenize(self, text):
        return self.sp.encode(text, out_type=str)

    def tokenize_with_starts(self, text):
        pieces = self.tokenize(text)
        return pieces, [0 if p.startswith(UNDERLINE) else -1 for p in pieces]

    def convert_tokens_to_ids(self, tokens):
        return self.vocab.convert_tokens_to_ids(tokens)

    def encode(self, text):
        return self.convert_tokens_to_ids(self.tokenize(text))

    def decode(self, ids):
        return "".join(self.vocab.i2w[int(i)] for i in ids).replace(UNDERLINE, " ").strip()
