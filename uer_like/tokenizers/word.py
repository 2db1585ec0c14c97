"""Word-level WordPiece (WoBERT, RoFormer word models, WoNEZHA): jieba words first, a word kept whole when
the vocabulary has it, otherwise split by the BERT tokenizer (characters / wordpieces).

This is bert4keras's `Tokenizer(vocab, do_lower_case=True, pre_tokenize=lambda s: jieba.cut(s, HMM=False))`,
the recipe WoBERT was trained with: the whole text is lower-cased and its accents stripped first (str.lower,
NFD, combining marks dropped), then cut by jieba without its HMM (uer_like.segmentation: jieba-exact, in C),
and each jieba word is looked up as it is.

`roformer_word` is transformers' (4.x) RoFormerTokenizer: the text is cut *before* lower-casing (rjieba,
HMM off: on 3,000 corpus lines rjieba cuts exactly as jieba), a word looked up as cut, else BERT's
tokenizer on it (which lower-cases). The two differ only where a jieba word holds capitals or accents
("C语言" is one vocabulary word for WoBERT's recipe, three tokens for RoFormer's)."""
import unicodedata

from ..registry import TOKENIZERS
from .bert import BertTokenizer


def normalize(text):
    """bert4keras's lowercase_and_normalize: str.lower, NFD, combining marks (category Mn) dropped."""
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")


@TOKENIZERS.register("word_wordpiece")
class WordWordpieceTokenizer(BertTokenizer):
    """BertTokenizer behind a jieba word step (see the module docstring). `user_dict`: jieba user
    dictionaries (jieba.load_userdict format) for the segmenter."""

    # Hugging Face tokenizer classes / model types whose releases use this tokenizer (tokenizers/select.py)
    hf_tokenizer_classes = ("WoBertTokenizer",)
    hf_model_types = ()
    lower_first = True  # bert4keras: normalise the whole text, then cut

    def __init__(self, vocab, do_lower_case=True, user_dict=None, **kwargs):
        super().__init__(vocab, do_lower_case=do_lower_case, **kwargs)
        self.do_lower_case = do_lower_case
        self.user_dict = user_dict
        self._cut = None

    def _words(self, text):
        if self._cut is None:
            from ..segmentation import get_segmenter

            self._cut = get_segmenter(user_dict=self.user_dict).cut
        return self._cut(text, False)

    def _units(self, text):
        """-> (word, is_whole, start) per jieba word of the normalised text; start is the word's character
        offset in `text` (-1 where normalisation changed the length before it)."""
        norm = normalize(text) if self.do_lower_case and self.lower_first else text
        exact = len(norm) == len(text)
        pos = 0
        for w in self._words(norm):
            yield w, w in self.vocab.w2i, pos if exact else -1
            pos += len(w)

    def tokenize(self, text):
        out = []
        for w, whole, _ in self._units(text):
            if whole:
                out.append(w)
            else:
                out.extend(BertTokenizer.tokenize(self, w))
        return out

    def tokenize_with_starts(self, text):
        """-> (pieces, starts): a whole word's offset; inside a split word, as BertTokenizer (-1 for '##'
        pieces); offsets are -1 where normalisation changed the text's length."""
        pieces, starts = [], []
        for w, whole, start in self._units(text):
            if whole:
                pieces.append(w)
                starts.append(start)
                continue
            p, s = BertTokenizer.tokenize_with_starts(self, w)
            pieces.extend(p)
            starts.extend(start + x if x >= 0 and start >= 0 else -1 for x in s)
        return pieces, starts


@TOKENIZERS.register("roformer_word")
class RoFormerWordTokenizer(WordWordpieceTokenizer):
    """transformers' RoFormerTokenizer (4.x): jieba cuts the text as given; see the module docstring."""

    hf_tokenizer_classes = ("RoFormerTokenizer", "RoFormerTokenizerFast")
    hf_model_types = ("roformer",)
    disabled_by = {"use_jieba": False}  # PaddleNLP's RoFormerTokenizer: BERT's unless use_jieba (select.py)
    lower_first = False
