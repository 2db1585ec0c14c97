"""XLM-RoBERTa (model_type 'xlm-roberta'; XLM-R and HFL's CINO): RoBERTa's weights, names, heads and position
offset (padding_idx + 1) under its own model_type and class names (XLMRoberta*). The tokenizer is a sentencepiece
model, sentencepiece.bpe.model, which a release's directory records as its vocabulary (LoadInfo.vocab_path) and
an export carries; fairseq's dictionary puts <s> <pad> </s> <unk> before its pieces and <mask> after them, so a
model has two rows more than the sentencepiece model has pieces."""
import json
import os
import shutil

from .roberta import roberta_family

SPM_FILE = "sentencepiece.bpe.model"


def write_tokenizer(out_dir, vocab_path):
    if vocab_path is None or not vocab_path.endswith(".model"):
        return []
    shutil.copyfile(vocab_path, os.path.join(out_dir, SPM_FILE))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "XLMRobertaTokenizer"}, f, indent=2)
    return [SPM_FILE, "tokenizer_config.json"]


roberta_family("xlm-roberta", "XLMRoberta", default_export=False, vocab_files=(SPM_FILE, "vocab.txt"),
               spm_file=SPM_FILE, spm_rows=lambda pieces: pieces + 2, write_tokenizer=write_tokenizer)
