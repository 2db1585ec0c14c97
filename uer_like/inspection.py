"""Looking into a trained model: what its masked-LM head predicts (cloze), which words its embedding or its
encoder puts near a word, and its word-embedding matrix.

    from uer_like import load_model
    from uer_like.io.tokenizer import model_tokenizer
    from uer_like.inspection import cloze, nearest_words, nearest_words_in_context

    model = load_model("hf_dir")
    tok = model_tokenizer(model)  # the model directory's own
    cloze(model, tok, ["北京是中[MASK]的首都"], k=5)   # [[[("国", 0.93), ...]]]: per text, per [MASK], top k
    nearest_words(model, tok.vocab, "北", k=10)       # [("南", 0.41), ...]: cosine of input embeddings
    nearest_words_in_context(model, tok, "京", "北京是中国的首都", k=10)
    save_word_embeddings(word_embeddings(model), tok.vocab.i2w, "emb.txt")  # word2vec text, or .npy

Sentences are laid out as the model was trained on them: [CLS] tokens [SEP] (when the vocabulary has them),
segment 1. A word is one token of the vocabulary. Errors on bad input (no [MASK], a word outside the
vocabulary, k above the candidates) are DataError/ConfigError naming the text and the fix.
"""
import torch
import torch.nn.functional as F

from .errors import ConfigError, DataError
from .flags import COUNT, check_value


# ------------------------------------------------------------------------------------------------ tokenizers
def encode_sentence(tokenizer, text, keep_mask=False):
    """text -> token ids laid out as [CLS] tokens [SEP] (those the vocabulary has). keep_mask: the mask
    token's spelling ([MASK]) in the text is that token, never split by the tokenizer."""
    vocab = tokenizer.vocab
    mask = vocab.specials["mask"]
    if keep_mask and mask not in vocab:
        raise ConfigError(f"the vocabulary {vocab.path or ''} has no mask token {mask}: cloze needs one")
    parts = text.split(mask) if keep_mask else [text]
    ids = []
    for i, part in enumerate(parts):
        if i:
            ids.append(vocab.mask_id)
        ids += vocab.convert_tokens_to_ids(tokenizer.tokenize(part))
    cls_id, sep_id = vocab.get(vocab.specials["cls"]), vocab.get(vocab.specials["sep"])
    if cls_id is not None and sep_id is not None:
        ids = [cls_id] + ids + [sep_id]
    return ids


def _batch(rows):
    """id lists -> (src, seg) [batch, longest], padding 0 with segment 0."""
    n = max(len(r) for r in rows)
    src = torch.zeros(len(rows), n, dtype=torch.long)
    seg = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        src[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        seg[i, :len(r)] = 1
    return src, seg


def _device(model):
    return next(model.parameters()).device


def _check_length(ids, seq_length, model, where):
    limit = min(seq_length or model.config.max_seq_length, model.config.max_seq_length)
    if len(ids) > limit:
        raise DataError(f"{where}: {len(ids)} tokens with [CLS]/[SEP], more than {limit} (--seq_length, the "
                        "model's position embedding): shorten it")


# ---------------------------------------------------------------------------------------------------- cloze
def masked_lm_head(model):
    """The name of the model's masked-LM target (a target that declares `masked_lm`), or a ConfigError."""
    for name in model.config.target:
        if getattr(getattr(model.target, name), "masked_lm", False):
            return name
    raise ConfigError(f"the model has no masked-LM head (targets: {', '.join(model.config.target) or 'none'}); "
                      "cloze needs one: load the checkpoint with its MLM head (a *ForMaskedLM / pretraining model)")


@torch.no_grad()
def cloze(model, tokenizer, texts, k=10, seq_length=None, batch_size=32, where="text"):
    """What the masked-LM head predicts at each [MASK] of each text: per text, per [MASK] (left to right),
    the k most probable tokens with their softmax probabilities, [(token, prob), ...]. A text without
    [MASK] or longer than seq_length is an error naming it (`where`:LINE)."""
    head = getattr(model.target, masked_lm_head(model))
    vocab = tokenizer.vocab
    k = check_value(k, COUNT, "k")
    batch_size = check_value(batch_size, COUNT, "batch_size")
    if k > len(vocab):
        raise ConfigError(f"k (--topn) is {k} but the vocabulary has {len(vocab)} tokens: give at most {len(vocab)}")
    rows = []
    for i, text in enumerate(texts, 1):
        ids = encode_sentence(tokenizer, text, keep_mask=True)
        if vocab.mask_id not in ids:
            raise DataError(f"{where}:{i}: no {vocab.specials['mask']} in {text[:60]!r}: mark each word to "
                            f"predict with {vocab.specials['mask']}")
        _check_length(ids, seq_length, model, f"{where}:{i}")
        rows.append(ids)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            src, seg = _batch(chunk)
            src, seg = src.to(_device(model)), seg.to(_device(model))
            hidden = model.encode(src, seg)
            for r, ids in enumerate(chunk):
                pos = [j for j, t in enumerate(ids) if t == vocab.mask_id]
                probs = head.logits(hidden[r, pos]).float().softmax(-1)
                top = probs.topk(k, dim=-1)
                out.append([[(vocab.i2w[t], p) for t, p in zip(ids_.tolist(), ps.tolist())]
                            for ps, ids_ in zip(top.values, top.indices)])
    finally:
        model.train(was_training)
    return out


# ------------------------------------------------------------------------------------------- nearest words
def _word_id(vocab, word, where=None, what="word"):
    i = vocab.get(word)
    if i is None:
        raise DataError(f"{where + ': ' if where else ''}the {what} {word!r} is not in the vocabulary"
                        f"{' ' + vocab.path if vocab.path else ''}: give a word of it (one token)")
    return i


def _candidates(vocab, candidates):
    """candidate words -> their ids (all of the vocabulary when None); a word outside it is an error."""
    if candidates is None:
        return list(range(len(vocab)))
    return [_word_id(vocab, w, what="candidate word") for w in candidates]


def _top(sims, ids, vocab, exclude, k):
    keep = [j for j, t in enumerate(ids) if t != exclude]
    if k > len(keep):
        raise ConfigError(f"k (--topn) is {k} but there are {len(keep)} candidate words besides the word itself: "
                          f"give at most {len(keep)}")
    sims = sims[keep]
    order = torch.argsort(sims, descending=True, stable=True)[:k]
    return [(vocab.i2w[ids[keep[j]]], sims[j].item()) for j in order.tolist()]


@torch.no_grad()
def nearest_words(model, vocab, word, k=10, candidates=None):
    """The k words whose input (word) embeddings are nearest to `word`'s by cosine, the word itself left out,
    best first: [(word, cosine), ...]. candidates: the words to rank (default: the whole vocabulary)."""
    k = check_value(k, COUNT, "k")
    emb = model.embedding.word.embedding.weight.detach().float()
    if emb.shape[0] != len(vocab):
        raise ConfigError(f"the vocabulary has {len(vocab)} tokens but the word embedding {emb.shape[0]} rows: "
                          "pass the vocabulary the model was trained with")
    i = _word_id(vocab, word)
    ids = _candidates(vocab, candidates)
    sims = F.cosine_similarity(emb[i].unsqueeze(0), emb[ids], dim=-1)
    return _top(sims, ids, vocab, i, k)


@torch.no_grad()
def nearest_words_in_context(model, tokenizer, word, sentence, k=10, candidates=None, batch_size=64,
                             seq_length=None, where="sentence"):
    """Context-dependent nearest words (UER-py's topn_words_dep): the encoder's output at `word`'s first
    position in `sentence` is compared by cosine with the output at that position when each candidate
    replaces the word there; the k nearest, the word itself left out, best first: [(word, cosine), ...]."""
    k = check_value(k, COUNT, "k")
    batch_size = check_value(batch_size, COUNT, "batch_size")
    vocab = tokenizer.vocab
    wid = _word_id(vocab, word, where)
    ids = encode_sentence(tokenizer, sentence)
    _check_length(ids, seq_length, model, where)
    if wid not in ids:
        raise DataError(f"{where}: the word {word!r} is not a token of the sentence {sentence[:60]!r} (its tokens: "
                        f"{' '.join(vocab.i2w[t] for t in ids[:20])}): give a sentence holding it")
    position = ids.index(wid)
    cands = _candidates(vocab, candidates)
    was_training = model.training
    model.eval()
    try:
        device = _device(model)
        src, seg = _batch([ids])
        target = model.encode(src.to(device), seg.to(device))[0, position].float()
        outs = []
        for start in range(0, len(cands), batch_size):
            chunk = torch.tensor(cands[start:start + batch_size], dtype=torch.long)
            s = src.repeat(len(chunk), 1)
            s[:, position] = chunk
            outs.append(model.encode(s.to(device), seg.repeat(len(chunk), 1).to(device))[:, position].float())
    finally:
        model.train(was_training)
    sims = F.cosine_similarity(target.unsqueeze(0), torch.cat(outs), dim=-1).cpu()
    return _top(sims, cands, vocab, wid, k)


def word_embeddings(model):
    """The word-embedding matrix [vocab, emb_size] as a float tensor on the CPU (a copy)."""
    return model.embedding.word.embedding.weight.detach().float().cpu().clone()


def save_word_embeddings(matrix, tokens, path, error=DataError):
    """Write an embedding matrix [rows, dim] (tensor or array) with its tokens (row i: tokens[i]): a path
    ending .npy gets the float32 matrix and NAME.vocab.txt beside it (one token per line); any other path
    word2vec's text format (`rows dim`, then `token v1 ... vdim` per row, 9 significant digits, so float32
    values read back exactly; a token holding whitespace is an error). Each file is written at once.
    Returns the paths written."""
    import numpy as np

    from .outputs import atomic_write

    matrix = np.asarray(matrix.detach().cpu() if torch.is_tensor(matrix) else matrix, dtype=np.float32)
    tokens = list(tokens)
    if matrix.ndim != 2 or len(tokens) > matrix.shape[0]:
        raise error(f"{len(tokens)} tokens for an embedding matrix of shape {list(matrix.shape)}: give one token "
                    "per row")
    if path.endswith(".npy"):
        vocab_path = path[:-len(".npy")] + ".vocab.txt"
        atomic_write(path, lambda f: np.save(f, matrix), error=error, what="the embeddings")
        data = "".join(t + "\n" for t in tokens).encode("utf-8")
        atomic_write(vocab_path, lambda f: f.write(data), error=error, what="the vocabulary")
        return [path, vocab_path]
    bad = next((t for t in tokens if not t or any(c.isspace() for c in t)), None)
    if bad is not None:
        raise error(f"the token {bad!r} is empty or holds whitespace, which word2vec's text format cannot hold: "
                    "write .npy instead")

    def write(f):
        f.write(f"{len(tokens)} {matrix.shape[1]}\n".encode())
        for t, row in zip(tokens, matrix):
            f.write((t + " " + " ".join(f"{v:.9g}" for v in row.tolist()) + "\n").encode("utf-8"))

    atomic_write(path, write, error=error, what="the embeddings")
    return [path]
