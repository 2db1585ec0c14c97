"""How a model family lays out one or two token sequences as its input (the tokenizer's `layout`).

- "bert" (the default): `[CLS] a [SEP] (b [SEP])`, segments 1 and 2;
- "roberta" (RoBERTa, BART, XLM-R: their tokenizers' own pair template): `<s> a </s> (</s> b </s>)`, segments
  1 and 2 (`</s> b </s>` in segment 2);
- "xlnet" (HFL's Chinese XLNet): `a <sep> (b <sep>) <cls>`, the final <cls> in a segment of its own (3).

Each uses 2 special tokens for one sequence; for two, SPECIALS[layout] (3, roberta's 4). A release's layout
comes from its tokenizer.json's post-processor (`of_post_processor`), else from its tokenizer class."""
from .release_files import _read

SPECIALS = {"bert": 3, "roberta": 4, "xlnet": 3}  # special tokens of a packed pair
# Hugging Face tokenizer classes (tokenizer_config.json) and model types (config.json) whose pair template is
# RoBERTa's, for directories without a tokenizer.json to say it
ROBERTA_TEMPLATE = {"RobertaTokenizer", "RobertaTokenizerFast", "BartTokenizer", "BartTokenizerFast",
                    "XLMRobertaTokenizer", "XLMRobertaTokenizerFast", "roberta", "bart", "xlm-roberta"}


def pack(layout, cls_id, sep_id, a, b=None):
    """-> (src, seg, start of a, start of b)."""
    sep = [sep_id]
    if layout == "xlnet":
        src = a + sep + (b + sep if b is not None else []) + [cls_id]
        seg = [1] * (len(a) + 1) + ([2] * (len(b) + 1) if b is not None else []) + [3]
        return src, seg, 0, len(a) + 1
    if layout not in SPECIALS:
        raise ValueError(f"unknown input layout {layout!r} (one of {', '.join(SPECIALS)})")
    lead = sep if layout == "roberta" and b is not None else []  # RoBERTa: </s></s> between the two
    src = [cls_id] + a + sep + (lead + b + sep if b is not None else [])
    seg = [1] * (len(a) + 2) + ([2] * (len(lead) + len(b) + 1) if b is not None else [])
    return src, seg, 1, len(a) + 2 + len(lead)


def cls_index(layout, src):
    """Where the classification token of a packed src is."""
    return len(src) - 1 if layout == "xlnet" else 0


def _template_layout(items, cls, sep):
    """TemplateProcessing's pair template -> "bert" / "roberta" when it is one of theirs, else None."""
    shape = []
    for it in items or []:
        if "Sequence" in it:
            shape.append(it["Sequence"].get("id"))
        elif "SpecialToken" in it:
            t = it["SpecialToken"].get("id")
            shape.append("cls" if t == cls else "sep" if t == sep else t)
    if shape == ["cls", "A", "sep", "B", "sep"]:
        return "bert"
    if shape == ["cls", "A", "sep", "sep", "B", "sep"]:
        return "roberta"
    return None


def of_post_processor(pp, cls=None, sep=None):
    """The layout a tokenizer.json post-processor builds pairs in ("bert", "roberta"), None when it says
    none of them (GPT-2's ByteLevel: no special tokens)."""
    if not isinstance(pp, dict):
        return None
    kind = pp.get("type")
    if kind == "RobertaProcessing":
        return "roberta"
    if kind == "BertProcessing":
        return "bert"
    if kind == "TemplateProcessing":
        return _template_layout(pp.get("pair"), cls, sep)
    if kind == "Sequence":
        return next((x for x in (of_post_processor(p, cls, sep) for p in pp.get("processors", [])) if x), None)
    return None


def of_release(tokenizer_json, info, cls, sep):
    """The layout of a release: its tokenizer.json's post-processor (`tokenizer_json`: a path or None), else
    RoBERTa's for a tokenizer class or model type in ROBERTA_TEMPLATE (`info`: release_files.describe),
    else BERT's."""
    found = of_post_processor(_read(tokenizer_json).get("post_processor"), cls, sep) if tokenizer_json else None
    if found is None and (info.get("tokenizer_class") in ROBERTA_TEMPLATE or info.get("model_type") in ROBERTA_TEMPLATE):
        found = "roberta"
    return found or "bert"
