import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
DATA = os.path.join(SHARED, "data")
FIXTURES = os.path.join(SHARED, "fixtures")
VOCAB = os.path.join(ROOT, "models", "google_zh_vocab.txt")
SAMPLE_CORPUS = os.path.join(ROOT, "corpora", "CLUECorpusSmall_bert_sampled.txt")

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

torch.set_num_threads(min(2, torch.get_num_threads()))


def need(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} is not here (../shared is beside the checkout on the team's machines)")
    return path
