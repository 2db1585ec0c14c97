"""Declared batch fields: a target names the fields it needs, the field registry builds them, the collator
refuses at start what nobody can build, and Model.forward never leaves a target out silently."""
import importlib
import os
import sys

import pytest
import torch

from uer_like.errors import ConfigError, DataError
from uer_like.registry import TARGETS
from uer_like.training.batches import Collator
from uer_like.training.trainer import TrainArgs, Trainer
from conftest import SAMPLE_CORPUS
from helpers import preprocess

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = open(SAMPLE_CORPUS, encoding="utf-8").read()[:30000]
TINY = {"layers_num": 1, "hidden_size": 32, "emb_size": 32, "feedforward_size": 64, "heads_num": 2}


@pytest.fixture(scope="module")
def mlm_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("fields")
    path, _ = preprocess(str(d), TEXT[:TEXT.rfind("\n\n") + 2], data_processor="mlm", seq_length=32,
                         corpus_format="line", dynamic_masking=True)
    return path


@pytest.fixture
def toy_target():
    """The toy target (tests/toy_target.py) and its field registered for one test, unregistered after it."""
    sys.path.insert(0, HERE)
    try:
        mod = importlib.import_module("toy_target")
        if mod.NAME not in TARGETS:
            mod.register()
        yield mod
    finally:
        mod.unregister()
        sys.path.remove(HERE)


def test_a_toy_target_in_one_file_trains_on_its_own_batch_field(toy_target, mlm_dataset, tmp_path):
    from uer_like.data.dataset import Dataset

    batch = Collator(Dataset(mlm_dataset), ["mlm", "toy_first"], seed=3)([0, 1, 2], 0)
    assert torch.equal(batch["tgt_toy_first"], batch["src"][:, 1])  # built by its builder, from src as seen
    args = TrainArgs(dataset_path=mlm_dataset, config="roberta/tiny_config.json", total_steps=2, batch_size=4,
                     learning_rate=1e-2, output_model_path=str(tmp_path / "m.bin"), seed=1,
                     config_overrides=dict(TINY, target=["mlm", "toy_first"]))
    trainer = Trainer(args)
    before = trainer.model.target.toy_first.output_layer.weight.detach().clone()
    out = trainer.model(trainer._to_device(trainer.collate([0, 1, 2, 3], 0)))
    assert set(out) >= {"loss", "mlm", "toy_first"} and torch.isfinite(out["toy_first"]["loss"])
    trainer.train()
    assert not torch.equal(before, trainer.model.target.toy_first.output_layer.weight.detach())  # it learned


def test_a_field_without_a_builder_fails_at_start_in_one_line(toy_target, mlm_dataset, tmp_path):
    from uer_like.data.fields import BATCH_FIELDS

    BATCH_FIELDS.unregister(toy_target.FIELD)
    args = TrainArgs(dataset_path=mlm_dataset, config="roberta/tiny_config.json", total_steps=2, batch_size=4,
                     output_model_path=str(tmp_path / "m.bin"), config_overrides=dict(TINY, target=["toy_first"]))
    with pytest.raises(ConfigError) as e:
        Trainer(args)
    msg = str(e.value)
    assert "\n" not in msg and "target 'toy_first'" in msg and "'tgt_toy_first'" in msg and "no builder" in msg
    assert not os.path.exists(tmp_path / "m.bin")


def test_a_field_the_processor_cannot_supply_is_refused_naming_target_and_field(mlm_dataset):
    from uer_like.data.dataset import Dataset

    with pytest.raises(DataError) as e:
        Collator(Dataset(mlm_dataset), ["mlm", "sp"], seed=1)
    msg = str(e.value)
    assert "\n" not in msg and "target 'sp'" in msg and "'tgt_sp'" in msg and "data_processor 'mlm'" in msg


def test_forward_never_leaves_a_target_out_silently(mlm_dataset):
    import uer_like
    from uer_like.data.dataset import Dataset

    model = uer_like.build_model("roberta/tiny_config.json", vocab_size=21128, target=["mlm", "pooler"], **TINY)
    batch = Collator(Dataset(mlm_dataset), ["mlm", "pooler"], seed=1)([0, 1], 0)
    out = model(batch)  # the pooler declares itself inference-only: left out, on purpose
    assert "mlm" in out and "pooler" not in out
    del batch["mlm_labels"]
    with pytest.raises(DataError, match="target 'mlm' needs batch field\\(s\\) mlm_labels"):
        model(batch)
