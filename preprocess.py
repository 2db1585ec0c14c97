#!/usr/bin/env python
"""Turn a raw corpus into a memory-mapped training dataset. Flags follow UER-py's preprocess.py.

    python preprocess.py --corpus_path corpora/CLUECorpusSmall_bert_sampled.txt \
        --vocab_path models/google_zh_vocab.txt --dataset_path dataset.bin --data_processor bert
"""
from uer_like.cli import add_preprocess_args, run_main, setup_logging
from uer_like.flags import Parser
from uer_like.resources import DEFAULT_VOCAB, SENTINEL_VOCAB



def build_parser():
    p = Parser(description=__doc__)
    add_preprocess_args(p)
    return p


def main():
    args = build_parser().parse_args()
    setup_logging()
    from uer_like.data.preprocess import run_preprocess

    opts = vars(args)
    if opts["vocab_path"] is None and opts["tokenizer"] != "sentencepiece" and not opts.get("spm_model_path"):
        # t5 hides spans behind sentinels: the Chinese BERT vocabulary with UER-py's 100 <extra_id_*> appended
        opts["vocab_path"] = SENTINEL_VOCAB if opts["data_processor"] == "t5" else DEFAULT_VOCAB
    run_preprocess(**opts)


if __name__ == "__main__":
    run_main(main)
