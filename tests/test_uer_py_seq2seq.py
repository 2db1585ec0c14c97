"""UER-py's own encoder-decoder checkpoints of every era load with their configs and give UER-py's numbers.

Fixtures made by UER-py's code (tests/data/uer_py_fixtures/make_seq2seq.py, README there): T5, BART and PEGASUS
at 7c1f731 (the last layout before July 2023: `embedding.word_embedding.weight`, `target.output_layer`,
`tgt_embedding.pe`; configs of string embeddings, no decoder_layers_num; the LM head one tensor with both word
embeddings), PEGASUS and T5 v1.1 at 5743050 (the current names; `["word", "sinusoidalpos"]`; the LM head a
weight of its own). The T5 and BART of 5743050 are tests/test_seq2seq.py's (../shared/fixtures/seq2seq_uer)."""
import os

import numpy as np
import pytest
import torch

import uer_like
from uer_like.io.checkpoint import load_state_dict_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "uer_py_fixtures")
# name: (layout detected, whether UER-py's model holds the LM head and the word embeddings as one tensor)
FIXTURES = {
    "t5_2023": ("uer_2023", True),
    "bart_2023": ("uer_2023", True),
    "pegasus_2023": ("uer_2023", True),
    "pegasus_2024": ("uer", False),
    "t5v11_2024": ("uer", False),
}
TOL = 1e-5
CLS = 2  # [CLS] in the fixtures' vocabulary (seq2seq_vocab.txt), UER-py's decoder start


def load(name):
    return uer_like.load_model(os.path.join(HERE, f"{name}.bin"), config=os.path.join(HERE, f"{name}_config.json"))


def reference(name):
    return {k: torch.from_numpy(v) for k, v in np.load(os.path.join(HERE, f"{name}_io.npz")).items()}


def run(model, z):
    with torch.no_grad():
        enc = model.encode(z["src"], z["seg"])
        dec = model.decode(z["tgt_in"], z["tgt_seg"], model.memory(enc, z["seg"]))
        return enc, dec, model.target_logits(dec)["lm"]


def masked_max(a, b, mask):
    return float(((a - b).abs() * mask[..., None]).max())


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_uer_py_seq2seq_checkpoint_gives_uer_py_numbers(name, tmp_path):
    layout, head_tied = FIXTURES[name]
    m = load(name).eval()
    z = reference(name)
    assert m.load_info.layout == layout and bool(z["head_tied"]) == head_tied
    # UER-py's tying of its era, read off the file: one tensor for the head and both embeddings, or a head of its own
    assert m.tgt_embedding.word.embedding.weight is m.embedding.word.embedding.weight
    assert (m.target.lm.output_layer.weight is m.embedding.word.embedding.weight) == head_tied
    real, tgt_real = (z["seg"] > 0).float(), (z["tgt_seg"] > 0).float()
    enc, dec, logits = run(m, z)
    assert masked_max(enc, z["encoder_output"], real) <= TOL
    assert masked_max(dec, z["decoder_output"], tgt_real) <= TOL
    assert masked_max(logits, z["logits"], tgt_real) <= TOL
    with torch.no_grad():
        loss = m({k: z[k] for k in ("src", "seg", "tgt_in", "tgt_seg", "tgt_out")})["loss"]
    assert abs(loss.item() - z["lm_loss"].item()) <= TOL

    # saved back in the layout it came in: UER-py's exact key set, and the same numbers on reload
    out = uer_like.save_model(m, str(tmp_path / f"{name}.bin"))
    assert set(load_state_dict_file(out)) == set(load_state_dict_file(os.path.join(HERE, f"{name}.bin")))
    back = uer_like.load_model(out).eval()
    assert back.load_info.layout == layout
    assert (back.target.lm.output_layer.weight is back.embedding.word.embedding.weight) == head_tied
    assert torch.equal(run(back, z)[2], logits)

    # generation from the sources (rows of different lengths): the first step is UER-py's decoder on [CLS]
    prompts = [z["src"][i, : int((z["seg"][i] > 0).sum())].tolist() for i in range(2)]
    ids, steps = uer_like.generate(m, prompts, 3, decoder_start_token_id=CLS, return_logits=True)
    assert [len(row) for row in ids] == [3, 3]
    assert (steps[0] - z["logits"][:, 0]).abs().max() <= TOL
    assert [row[0] for row in ids] == z["logits"][:, 0].argmax(-1).tolist()
    assert uer_like.generate(m, prompts, 3, decoder_start_token_id=CLS, use_cache=False) == ids


def test_a_pre_2023_head_that_is_not_the_embedding_stays_its_own():
    """The tying follows the file, not the era of its names: the same 2023 T5 with its head changed loads
    with a head of its own, and gives the logits of that head."""
    import tempfile

    state = torch.load(os.path.join(HERE, "t5_2023.bin"), weights_only=True)
    head = state["target.output_layer.weight"].clone() + 0.5
    state["target.output_layer.weight"] = head
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t5.bin")
        torch.save(state, path)
        m = uer_like.load_model(path, config=os.path.join(HERE, "t5_2023_config.json")).eval()
    assert m.target.lm.output_layer.weight is not m.embedding.word.embedding.weight
    z = reference("t5_2023")
    _, dec, logits = run(m, z)
    tgt_real = (z["tgt_seg"] > 0).float()
    assert masked_max(dec, z["decoder_output"], tgt_real) <= TOL
    assert masked_max(logits, dec @ head.T, tgt_real) <= 1e-5


@pytest.mark.parametrize("name,layout", [("t5_2023", "uer"), ("t5v11_2024", "uer_2023")])
def test_seq2seq_checkpoint_converts_between_the_eras(name, layout, tmp_path):
    """A model saved in the other era's names reloads as the same model: the tying, read off the file again,
    and the logits."""
    m = load(name).eval()
    z = reference(name)
    back = uer_like.load_model(uer_like.save_model(m, str(tmp_path / "m.bin"), layout=layout)).eval()
    assert back.load_info.layout == layout
    assert (back.target.lm.output_layer.weight is back.embedding.word.embedding.weight) == FIXTURES[name][1]
    assert torch.equal(run(back, z)[2], run(m, z)[2])


@pytest.mark.parametrize("name,layout,table", [("pegasus_2023", "uer", "word_sinusoidalpos"),
                                                ("pegasus_2024", "uer_2023", "sinusoidalpos")])
def test_pegasus_keeps_the_position_table_of_its_era(name, layout, table, tmp_path):
    """The two eras' sinusoidal tables differ (rows, frequencies), and each layout has a name for its own only."""
    with pytest.raises(uer_like.errors.ConfigError, match=f"the {layout} layout .* has no .*{table}") as e:
        uer_like.save_model(load(name), str(tmp_path / "m.bin"), layout=layout)
    assert "\n" not in str(e.value)


def test_a_decoder_depth_of_its_own_has_no_pre_2023_file(tmp_path):
    """UER-py before July 2023 built the decoder with layers_num layers (no decoder_layers_num): a model whose
    decoder differs is not written in that era's layout, where UER-py would build another model."""
    from uer_like.config import load_config

    config = load_config(os.path.join(HERE, "t5_2023_config.json")).replace(decoder_layers_num=1)
    m = uer_like.build_model(config, 100)
    with pytest.raises(uer_like.errors.ConfigError, match="gives the decoder layers_num .2. layers, not "
                                                          "decoder_layers_num .1.; save it with layout uer"):
        uer_like.save_model(m, str(tmp_path / "m.bin"), layout="uer_2023")
    uer_like.save_model(m, str(tmp_path / "m.bin"), layout="uer")
