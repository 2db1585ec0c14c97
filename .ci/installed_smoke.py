"""Run by .ci/run in an environment where uer_like is installed from a wheel, from a directory outside the
checkout: the shipped configs and vocabulary resolve, the native extension is there, and a tiny
preprocess > pretrain > load round works through the library alone."""
import os
import sys
import sysconfig

import uer_like
from uer_like.config import list_configs
from uer_like.data import native
from uer_like.data.preprocess import run_preprocess
from uer_like.resources import DEFAULT_VOCAB
from uer_like.training.trainer import TrainArgs, train

site = sysconfig.get_paths()["purelib"]
assert uer_like.__file__.startswith(site), f"uer_like imported from {uer_like.__file__}, not the wheel in {site}"
assert DEFAULT_VOCAB.startswith(site) and os.path.isfile(DEFAULT_VOCAB), DEFAULT_VOCAB
assert len(list_configs()) >= 20 and uer_like.load_config("bert/base_config.json").hidden_size == 768
assert native.AVAILABLE, "the wheel lacks uer_like._native"

lines = [l for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if len(l) > 20][:64]
with open("corpus.txt", "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
run_preprocess(corpus_path="corpus.txt", vocab_path="models/google_zh_vocab.txt", dataset_path="ds.bin",
               data_processor="mlm", seq_length=32, dynamic_masking=True, corpus_format="line", progress=False)
train(TrainArgs(dataset_path="ds.bin", config="roberta/tiny_config.json", total_steps=2, batch_size=4,
                report_steps=1, output_model_path="out/model.bin", tensorboard_dir=None))
model = uer_like.load_model("out/model.bin", config="roberta/tiny_config.json")
print(f"installed wheel OK: {uer_like.__file__}, {sum(p.numel() for p in model.parameters())} parameters")
