"""PERT's permuted LM (the `pert` target, uer_like/targets/pert.py) on PERT-masked datasets of the bundled
corpus: its pointer loss equals a computation written out position by position, a tiny model learns to point
at the original positions (beyond the share of tokens left in place), static and dynamic; a PERT dataset and a
token-predicting target, or the pert target and another masking, are refused in one line."""
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import SAMPLE_CORPUS
from helpers import preprocess
from uer_like.errors import DataError

TEXT = open(SAMPLE_CORPUS, "rb").read()[:150000]
TEXT = TEXT[: TEXT.rfind(b"\n\n") + 2]
SMALL = {"layers_num": 1, "hidden_size": 64, "emb_size": 64, "feedforward_size": 128, "heads_num": 2}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    d = tmp_path_factory.mktemp("pert")
    common = dict(data_processor="mlm", corpus_format="bert", seq_length=64)
    static, _ = preprocess(str(d), TEXT, name="static.bin", pert_masking=True, pert_window=64, **common)
    dynamic, _ = preprocess(str(d), TEXT, name="dynamic.bin", pert_masking=True, pert_window=64,
                            dynamic_masking=True, **common)
    plain, _ = preprocess(str(d), TEXT, name="plain.bin", dynamic_masking=True, **common)
    return {"static": static, "dynamic": dynamic, "plain": plain}


def _model_and_batch(path, seed=0, rows=8):
    from uer_like.data.dataset import Dataset
    from uer_like.model import build_model
    from uer_like.training.batches import Collator

    ds = Dataset(path)
    torch.manual_seed(seed)
    model = build_model("pert/tiny_config.json", vocab_size=ds.manifest["vocab"]["size"], pert_window=64, **SMALL)
    batch = Collator(ds, model.config.target, seed=5)(list(range(rows)), 0)
    return model, batch


def test_pointer_loss_equals_a_position_by_position_computation(datasets):
    model, batch = _model_and_batch(datasets["static"])
    model.eval()
    out = model(batch)["pert"]
    head = model.target.pert
    with torch.no_grad():
        hidden = model.encode(batch["src"], batch["seg"])
        B, L, _ = hidden.shape
        losses, correct = [], 0
        for p, label in zip(batch["mlm_pos"].tolist(), batch["mlm_labels"].tolist()):
            b, i = divmod(p, L)
            real = [j for j in range(L) if batch["seg"][b, j] > 0]
            assert label in real and i in real
            q = head.layer_norm(F.gelu(head.linear_1(hidden[b, i]))) / hidden.shape[-1] ** 0.5
            scores = torch.stack([q @ hidden[b, j] for j in real])
            target = real.index(label)
            losses.append(-torch.log_softmax(scores, 0)[target])
            correct += int(scores.argmax().item() == target)
    assert out["count"].item() == len(losses) > 20
    assert abs(out["loss"].item() - torch.stack(losses).mean().item()) < 1e-5
    assert out["correct"].item() == correct
    # the whole-sequence logits agree at the permuted positions
    logits = head.logits(hidden, batch["seg"]).reshape(B * L, L).index_select(0, batch["mlm_pos"])
    assert torch.allclose(F.cross_entropy(logits, batch["mlm_labels"]), out["loss"], atol=1e-5)


# 50 different characters in a fixed order, one line each: where every token belongs is known from the token
ORDERED = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说"


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_tiny_model_learns_to_point_at_the_original_positions(tmp_path, dynamic):
    """On lines that all hold the same characters in the same order, a token's original position follows from
    the token: in 60 steps the pointer finds it for nearly every permuted position, far above the share whose
    token stayed in place (what pointing at oneself scores)."""
    from uer_like.io import load_model
    from uer_like.training.trainer import TrainArgs, Trainer

    ds, _ = preprocess(str(tmp_path), (ORDERED + "\n") * 300, data_processor="mlm", corpus_format="line",
                       seq_length=64, pert_masking=True, pert_window=64, dynamic_masking=dynamic)
    args = TrainArgs(dataset_path=ds, config="pert/tiny_config.json", total_steps=60, batch_size=16,
                     learning_rate=3e-3, warmup=0.1, save_checkpoint_steps=1000, report_steps=10, seed=3,
                     output_model_path=str(tmp_path / "m.bin"), trace_path=str(tmp_path / "trace.jsonl"),
                     config_overrides=dict(SMALL, pert_window=64))
    Trainer(args).train()
    losses = [json.loads(l)["loss"] for l in open(tmp_path / "trace.jsonl")]
    assert losses[-1] < losses[0] / 5, losses
    _, batch = _model_and_batch(ds, rows=64)
    trained = load_model(str(tmp_path / "m.bin"))
    trained.eval()
    with torch.no_grad():
        out = trained(batch)["pert"]
    L = batch["src"].shape[1]
    in_place = (batch["mlm_pos"] % L == batch["mlm_labels"]).float().mean().item()
    acc = out["correct"].item() / out["count"].item()
    assert in_place < 0.3 and acc > 0.9, (acc, in_place)


def test_pert_trains_on_the_corpus(datasets, tmp_path):
    """The real corpus, static PERT masks: the loss is finite and falls from its start."""
    from uer_like.training.trainer import TrainArgs, Trainer

    args = TrainArgs(dataset_path=datasets["static"], config="pert/tiny_config.json", total_steps=30, batch_size=16,
                     learning_rate=3e-3, warmup=0.1, save_checkpoint_steps=1000, report_steps=10, seed=3,
                     output_model_path=str(tmp_path / "m.bin"), trace_path=str(tmp_path / "trace.jsonl"),
                     config_overrides=dict(SMALL, pert_window=64))
    Trainer(args).train()
    losses = [json.loads(l)["loss"] for l in open(tmp_path / "trace.jsonl")]
    assert all(l == l and l < 1e3 for l in losses) and min(losses[-5:]) < losses[0], losses


def test_a_pert_dataset_and_a_token_target_are_refused_in_one_line(datasets, tmp_path):
    from uer_like.training.trainer import TrainArgs, Trainer

    def args(ds, config, **over):
        return TrainArgs(dataset_path=ds, config=config, total_steps=2, batch_size=4, save_checkpoint_steps=1000,
                         output_model_path=str(tmp_path / "m.bin"), config_overrides=dict(SMALL, **over))

    with pytest.raises(DataError, match=r"PERT's permuted-LM masking, whose labels are original positions: it "
                                        r"trains the 'pert' target .*not \['mlm'\]"):
        Trainer(args(datasets["static"], "roberta/tiny_config.json")).train()
    with pytest.raises(DataError, match=r"the 'pert' target predicts the original positions .* made with mlm "
                                        r"masking; re-run preprocess.py with --pert_masking"):
        Trainer(args(datasets["plain"], "pert/tiny_config.json", pert_masking=False)).train()
    with pytest.raises(DataError, match=r"would read them as token ids"):
        Trainer(args(datasets["static"], "pert/tiny_config.json", target=["pert", "mlm"], pert_window=64)).train()
    with pytest.raises(DataError, match=r"made with pert_window 64, but the model config says 16"):
        Trainer(args(datasets["static"], "pert/tiny_config.json")).train()


def test_hugging_face_export_is_the_encoder_as_bert(datasets, tmp_path):
    """save_model(format='hf') of a PERT model writes the encoder as transformers' BertModel (as HFL released
    PERT): the same hidden states (1e-5), the pointer head left out."""
    transformers = pytest.importorskip("transformers")
    from uer_like.io import save_model

    model, batch = _model_and_batch(datasets["static"])
    model = model.__class__(model.config.replace(layernorm="torch", layernorm_eps=1e-12), model.vocab_size)
    model.eval()
    save_model(model, str(tmp_path / "hf"), format="hf")
    hf = transformers.BertModel.from_pretrained(str(tmp_path / "hf")).eval()
    with torch.no_grad():
        ours = model.encode(batch["src"], batch["seg"])
        theirs = hf(input_ids=batch["src"], attention_mask=(batch["seg"] > 0).long(),
                    token_type_ids=(batch["seg"] - 1).clamp(min=0)).last_hidden_state
    real = batch["seg"] > 0
    assert (ours - theirs)[real].abs().max().item() < 1e-5
    assert not any("pert" in k for k in hf.state_dict())
