"""SentencePiece tokenization, as UER-py does it (`--spm_model_path`), e.g. the word-based Chinese RoBERTa
releases (cluecorpussmall_spm.model).

UER-py's BertTokenizer given --spm_model_path ignores the vocabulary file and WordPiece: the vocabulary is the
SentencePiece model's pieces (id = piece id), tokens come from `EncodeAsPieces` with no lower-casing or other
preprocessing, and a piece ending in a digit and a comma is split again (XLNet's `encode_pieces`): its text
without the comma and without "▁" is encoded anew and the comma appended. XLNet's code then drops a leading
"▁" the new pieces gained when the original piece had none; in UER-py that check compares text with bytes
and never holds on Python 3, so the "▁" stays. `uer_encode_pieces` reproduces this, quirk included.
"""
import hashlib
import os

from ..errors import DataError
from ..registry import TOKENIZERS
from .vocab import Vocab

UNDERLINE = "\u2581"


def uer_encode_pieces(sp, text):
    """UER-py's uer.utils.tokenizers.encode_pieces(sp, text) on Python 3 (see the module docstring)."""
    out = []
    for piece in sp.EncodeAsPieces(text):
        out.extend(_resplit(sp, piece) if _quirk(piece) else [piece])
    return out


def _resplit(sp, piece):
    """A piece ending in a digit and a comma, as UER-py re-encodes it (the module docstring)."""
    return sp.EncodeAsPieces(piece[:-1].replace(UNDERLINE, "")) + [piece[-1]]


def _quirk(piece):
    return len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit()


def uer_encode_with_starts(sp, text):
    """uer_encode_pieces with each piece's character offset in `text` (every piece is its own unit for
    masking, as in UER-py; an offset is where the piece's text begins, after any space its "▁" stands for)."""
    proto = sp.encode(text, out_type="proto") if hasattr(sp, "encode") else None
    if proto is None:  # pragma: no cover (sentencepiece without protos)
        pieces = uer_encode_pieces(sp, text)
        return pieces, [0] * len(pieces)
    char_at = [0] * (len(text.encode("utf-8")) + 1)
    b = 0
    for i, ch in enumerate(text):
        n = len(ch.encode("utf-8"))
        for k in range(n):
            char_at[b + k] = i
        b += n
    char_at[b] = len(text)
    pieces, starts = [], []
    for p in proto.pieces:
        surface = p.surface
        core = surface.lstrip()
        start = char_at[p.begin] + (len(surface) - len(core))
        if not _quirk(p.piece):
            pieces.append(p.piece)
            starts.append(start)
            continue
        pos = 0
        for sub in _resplit(sp, p.piece):
            bare = sub.replace(UNDERLINE, "")
            i = core.find(bare, pos) if bare else -1
            pieces.append(sub)
            starts.append(start + (i if i >= 0 else pos))
            if i >= 0:
                pos = i + len(bare)
    return pieces, starts


def load_processor(spm_model_path):
    if not spm_model_path or not os.path.isfile(spm_model_path):
        raise DataError(f"sentencepiece model not found: {spm_model_path} (pass --spm_model_path)")
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.Load(spm_model_path)
    except (RuntimeError, OSError) as e:
        raise DataError(f"{spm_model_path}: not a sentencepiece model ({str(e).strip().splitlines()[0][:120]})") from None
    return sp


def spm_vocab(sp, spm_model_path):
    """The model's pieces as a Vocab (id = piece id, as UER-py); sha256 is the model file's."""
    vocab = Vocab([sp.IdToPiece(i) for i in range(sp.GetPieceSize())], spm_model_path)
    with open(spm_model_path, "rb") as f:
        vocab.sha256 = hashlib.sha256(f.read()).hexdigest()
    return vocab


@TOKENIZERS.register("sentencepiece")
class SentencePieceTokenizer:
    """`vocab`: None for the model's own pieces (UER-py), or a vocabulary file mapping pieces to ids."""

    def __init__(self, vocab=None, spm_model_path=None, **kwargs):
        self.sp = load_processor(spm_model_path)
        if vocab is not None:
            self.vocab = vocab if isinstance(vocab, Vocab) else Vocab.load(vocab)
        else:
            self.vocab = spm_vocab(self.sp, spm_model_path)
            missing = [t for t in ("[CLS]", "[SEP]", "[MASK]", "[PAD]") if t not in self.vocab]
            if missing:
                raise DataError(f"{spm_model_path}: the sentencepiece vocabulary lacks {', '.join(missing)}; "
                                "pass a --vocab_path that has them")

    def tokenize(self, text):
        return uer_encode_pieces(self.sp, text)

    def tokenize_with_starts(self, text):
        """-> (pieces, starts): every piece is a unit of its own (as UER-py masks SentencePiece tokens), with
        the character offset where it begins (whole-word masking groups the pieces of a jieba word)."""
        return uer_encode_with_starts(self.sp, text)

    def encode(self, text):
        return self.vocab.convert_tokens_to_ids(self.tokenize(text))

    def convert_tokens_to_ids(self, tokens):
        return self.vocab.convert_tokens_to_ids(tokens)
