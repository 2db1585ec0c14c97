"""configs/chinese_roberta: the 24 zoo sizes, exactly what scripts/make_zoo_configs.py writes."""
import importlib.util
import os

import torch

from uer_like.config import list_configs, load_config
from uer_like.model import Model
from conftest import ROOT


def generator():
    spec = importlib.util.spec_from_file_location("make_zoo_configs", os.path.join(ROOT, "scripts", "make_zoo_configs.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_zoo_configs_are_the_generators_output():
    files = generator().files()
    assert len(files) == 24
    d = os.path.join(ROOT, "configs", "chinese_roberta")
    assert sorted(os.listdir(d)) == sorted(files)
    for name, text in files.items():
        with open(os.path.join(d, name), encoding="utf-8") as f:
            assert f.read() == text, name


def test_zoo_sizes_load_by_name_and_have_the_released_shapes():
    names = [n for n in list_configs() if n.startswith("chinese_roberta/")]
    assert len(names) == 24
    c = load_config("chinese_roberta/L-4_H-256")
    assert (c.layers_num, c.hidden_size, c.heads_num, c.feedforward_size, c.target) == (4, 256, 4, 1024, ["mlm"])
    # L-12_H-768 is RoBERTa base
    with torch.device("meta"):
        a = Model(load_config("chinese_roberta/L-12_H-768"), 21128)
        b = Model(load_config("roberta/base_config.json"), 21128)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
