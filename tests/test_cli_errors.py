"""Every command-line script answers bad input with one line and exit status 2: no traceback, the message naming
what is wrong (the file, the key, the flag). One table over preprocess.py, pretrain.py, finetune/run_*.py and
scripts/, each case run through the script's real command line in this process."""
import json
import os

import pytest

from conftest import ROOT, SAMPLE_CORPUS, VOCAB
from helpers import preprocess, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:20000]
    lines = [l for l in text.split("\n") if len(l) > 20][:16]
    lm, _ = preprocess(str(d), "\n".join(lines) + "\n", name="lm.bin", data_processor="lm", seq_length=32,
                       corpus_format="line")
    f = {"dir": str(d), "lm": lm, "missing": str(d / "missing")}
    (d / "utf16.txt").write_bytes("你好\n世界\n".encode("utf-16"))
    f["utf16"] = str(d / "utf16.txt")
    c = json.load(open(os.path.join(ROOT, "configs", "rnn", "bilstm_config.json")))
    c["hidden_size"] = 33
    (d / "bilstm_odd.json").write_text(json.dumps(c))
    f["bilstm_odd"] = str(d / "bilstm_odd.json")
    c = json.load(open(os.path.join(ROOT, "configs", "bert", "tiny_config.json")))
    c["heads_numm"] = 2
    (d / "typo.json").write_text(json.dumps(c))
    f["typo"] = str(d / "typo.json")
    (d / "no_header.tsv").write_text("1\t好看\n0\t难看\n", encoding="utf-8")
    f["no_header"] = str(d / "no_header.tsv")
    (d / "prompts.txt").write_text("你好\n", encoding="utf-8")
    f["prompts"] = str(d / "prompts.txt")
    (d / "gbk.txt").write_bytes("你好\n世界\n".encode("utf-8") + "今天\n".encode("gbk"))
    f["gbk"] = str(d / "gbk.txt")
    (d / "gap.txt").write_text("你好\n\n世界\n\n", encoding="utf-8")
    f["gap"] = str(d / "gap.txt")
    os.makedirs(d / "dir.npy", exist_ok=True)
    os.makedirs(d / "adir", exist_ok=True)
    f["adir"] = str(d / "adir")
    f.update(_bad_weights(d))
    return f


def _bad_weights(d):
    """Checkpoints with one NaN/inf weight or a weight of integer dtype, a fine-tuned model with a NaN in its head,
    and a Hugging Face directory / a UER config that are not valid JSON."""
    import torch
    from uer_like import build_model, save_model
    from uer_like.config import load_config
    from uer_like.finetune.classification import Classifier
    from uer_like.finetune.core import save_finetuned
    from uer_like.io.uer import to_uer_state_dict

    torch.manual_seed(0)
    lm = build_model("gpt2/mini_config.json", vocab_size=21128)
    with torch.no_grad():
        lm.encoder.transformer[2].feed_forward.linear_2.weight[0, :4] = float("inf")
    save_model(lm, str(d / "inf.bin"))
    state = to_uer_state_dict(build_model("bert/tiny_config.json", vocab_size=21128).state_dict())
    state["embedding.pos.embedding.weight"] = (state["embedding.pos.embedding.weight"] * 1e4).long()
    torch.save(state, d / "int64.bin")
    save_model(build_model("bert/tiny_config.json", vocab_size=10), str(d / "hf"), format="hf")
    text = (d / "hf" / "config.json").read_text()
    (d / "hf" / "config.json").write_text(text.replace('"model_type"', "model_type", 1))
    (d / "int64_config.json").write_text(json.dumps(load_config("bert/tiny_config.json").to_dict()))
    ft = Classifier(load_config("bert/tiny_config.json"), 21128, 2)
    with torch.no_grad():
        ft.output_layer_2.bias[1] = float("nan")
    save_finetuned(ft, str(d / "ft_nan.bin"), {"task": "classification", "seq_length": 32, "labels_num": 2})
    (d / "train.tsv").write_text("label\ttext_a\n1\t好看\n0\t难看\n", encoding="utf-8")
    (d / "bad_config.json").write_text('{"emb_size": 128,\n  "hidden_size": 128,\n}')
    import shutil
    shutil.copy(d / "int64.bin", d / "bad.bin")
    return {k: str(d / v) for k, v in [("inf", "inf.bin"), ("inf_config", "inf_config.json"), ("int64", "int64.bin"),
                                         ("hf", "hf"), ("ft_nan", "ft_nan.bin"), ("train", "train.tsv"),
                                         ("bad_cfg", "bad.bin")]}


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch):
    """pretrain.py set up (single-process) distributed state in this process; later tests must not inherit it."""
    from uer_like.training import distributed

    monkeypatch.setattr(distributed, "_current", None)
    yield


M, O = "{missing}", "{dir}/out"
CASES = [  # (script, argv, what the one line must say)
    ("preprocess.py", ["--corpus_path", M + ".txt", "--dataset_path", O + ".bin"], "corpus not found"),
    ("preprocess.py", ["--corpus_path", SAMPLE_CORPUS, "--vocab_path", M + ".vocab", "--dataset_path", O + ".bin"],
     "vocabulary file not found"),
    ("preprocess.py", ["--corpus_path", "{utf16}", "--dataset_path", O + ".bin"], "iconv -f UTF-16"),
    ("preprocess.py", ["--corpus_path", SAMPLE_CORPUS, "--dataset_path", "{adir}"], "is a directory"),
    ("preprocess.py", ["--corpus_path", SAMPLE_CORPUS, "--dataset_path", O + ".bin", "--whole_word_masking",
                       "--user_dict", M + ".txt"], "--user_dict {missing}.txt: No such file or directory"),
    ("pretrain.py", ["--config", M + ".json", "--dataset_path", "{lm}"], "not found"),
    ("pretrain.py", ["--config", "{typo}", "--dataset_path", "{lm}"], "unknown config key 'heads_numm'"),
    ("pretrain.py", ["--config", "gpt2/mini_config.json", "--dataset_path", M + ".bin"], "dataset not found"),
    ("pretrain.py", ["--config", "bert/tiny_config.json", "--dataset_path", "{lm}", "--output_model_path",
                     O + ".bin"], "made with data_processor 'lm'"),
    ("pretrain.py", ["--config", "{bilstm_odd}", "--dataset_path", "{lm}", "--output_model_path", O + ".bin"],
     "needs an even hidden_size, got 33"),
    ("pretrain.py", ["--config", "gpt2/mini_config.json", "--dataset_path", "{lm}", "--pretrained_model_path",
                     M + ".bin", "--output_model_path", O + ".bin"], "no such checkpoint"),
    ("pretrain.py", ["--config", "gpt2/mini_config.json", "--dataset_path", "{lm}", "--output_model_path",
                     O + ".bin", "--resume", M + ".pt"], "missing.pt: no such checkpoint"),
    ("pretrain.py", ["--config", "gpt2/mini_config.json", "--dataset_path", "{lm}", "--output_model_path",
                     O + ".bin", "--trace_path", "{adir}"], "adir is a directory; give a file"),
    ("pretrain.py", ["--config", "gpt2/mini_config.json", "--dataset_path", "{lm}", "--output_model_path",
                     O + ".bin", "--checkpoint_dir", "{prompts}"], "is a file, not a directory"),
    ("pretrain.py", ["--config", "gpt2/mini_config.json", "--dataset_path", "{lm}", "--output_model_path",
                     O + ".bin", "--spm_model_path", "{prompts}"], "not a sentencepiece model"),
    ("pretrain.py", ["--config", "gpt2/mini_config.json", "--dataset_path", "{lm}", "--output_model_path",
                     O + ".bin", "--device", "tpu"], "--device 'tpu' is not a device; choices: auto, cpu"),
    ("pretrain.py", ["--config", "gpt2/mini_config.json", "--dataset_path", "{lm}", "--output_model_path",
                     O + ".bin", "--device", "cuda:0"], "--device cuda:0: CUDA is not available on this machine"),
    ("finetune/run_classifier.py", ["--train_path", M + ".tsv", "--dev_path", M + ".tsv", "--config_path",
                                    "bert/tiny_config.json"], "no such file"),
    ("finetune/run_classifier.py", ["--train_path", "{no_header}", "--dev_path", "{no_header}", "--config_path",
                                    "bert/tiny_config.json"], "the first line must name the columns"),
    ("finetune/run_ner.py", ["--train_path", M + ".tsv", "--dev_path", M + ".tsv", "--config_path",
                             "bert/tiny_config.json"], "--label2id_path is required"),
    ("finetune/run_cmrc.py", ["--train_path", M + ".json", "--dev_path", M + ".json", "--config_path",
                              "bert/tiny_config.json"], "no such file"),
    ("finetune/run_c3.py", ["--train_path", M + ".json", "--dev_path", M + ".json", "--config_path",
                            "bert/tiny_config.json"], "no such file"),
    ("scripts/convert.py", ["--input", M + ".bin", "--output", O, "--to", "hf"], "no such checkpoint"),
    ("scripts/generate_lm.py", ["--load_model_path", M + ".bin", "--test_path", "{prompts}", "--prediction_path",
                                O + ".txt"], "no such checkpoint"),
    ("scripts/extract_features.py", ["--model", M + ".bin", "--input", "{prompts}", "--output", O + ".npy"],
     "no such checkpoint"),
    # the inputs and the output's place are checked before the model is loaded (here: a missing one)
    ("scripts/generate_lm.py", ["--load_model_path", M + ".bin", "--test_path", "{gbk}", "--prediction_path",
                                O + ".txt"], "gbk.txt:3: not valid UTF-8 (byte 0 of the line)"),
    ("scripts/generate_lm.py", ["--load_model_path", M + ".bin", "--test_path", "{prompts}", "--prediction_path",
                                "{adir}"], "is a directory; give a file path"),
    ("scripts/generate_lm.py", ["--load_model_path", M + ".bin", "--test_path", "{prompts}", "--prediction_path",
                                O + ".txt", "--threads", "-1"], "argument --threads: must be >= 0"),
    ("scripts/extract_features.py", ["--model", M + ".bin", "--input", "{gbk}", "--output", O + ".npy"],
     "gbk.txt:3: not valid UTF-8 (byte 0 of the line); --input must be UTF-8 text"),
    ("scripts/extract_features.py", ["--model", M + ".bin", "--input", "{adir}", "--output", O + ".npy"],
     "is a directory, not a text file"),
    ("scripts/extract_features.py", ["--model", M + ".bin", "--input", "{gap}", "--output", O + ".npy"],
     "gap.txt:2: an empty line (row 2 of the output is line 2)"),
    ("scripts/extract_features.py", ["--model", M + ".bin", "--input", "{prompts}", "--output", "{dir}/dir"],
     "dir.npy is a directory; give a file path"),
    ("scripts/extract_features.py", ["--model", M + ".bin", "--input", "{prompts}", "--output", O + ".npy",
                                     "--batch_size", "0"], "argument --batch_size: must be >= 1"),
    ("scripts/extract_features.py", ["--model", M + ".bin", "--input", "{prompts}", "--output", O + ".npy",
                                     "--threads", "nan"], "argument --threads: must be an integer"),
    ("finetune/run_classifier.py", ["--train_path", M + ".tsv", "--threads", "-2"], "argument --threads: must be >= 0"),
    # weights no model can be loaded from: refused at load by every entry point, naming the file and the tensors
    ("scripts/convert.py", ["--input", "{int64}", "--output", O + ".bin", "--to", "uer"],
     "int64.bin: wrong dtype for 1 tensor(s): embedding.pos.embedding.weight: checkpoint int64 vs model float32"),
    ("scripts/convert.py", ["--input", "{inf}", "--output", O + ".bin", "--to", "uer"],
     "inf.bin: 1 tensor(s) hold NaN/inf values: encoder.transformer.2.feed_forward.linear_2.weight (4 of 262144"),
    ("scripts/generate_lm.py", ["--load_model_path", "{inf}", "--test_path", "{prompts}", "--prediction_path",
                                O + ".txt"], "inf.bin: 1 tensor(s) hold NaN/inf values"),
    ("scripts/extract_features.py", ["--model", "{inf}", "--input", "{prompts}", "--output", O + ".npy"],
     "inf.bin: 1 tensor(s) hold NaN/inf values"),
    ("pretrain.py", ["--config", "gpt2/mini_config.json", "--dataset_path", "{lm}", "--pretrained_model_path",
                     "{inf}", "--output_model_path", O + ".bin"], "inf.bin: 1 tensor(s) hold NaN/inf values"),
    ("finetune/run_classifier.py", ["--train_path", "{train}", "--pretrained_model_path", "{inf}", "--config_path",
                                    "{inf_config}", "--output_model_path", O + ".bin"],
     "inf.bin: 1 tensor(s) hold NaN/inf values"),
    ("finetune/run_classifier.py", ["--load_model_path", "{ft_nan}", "--test_path", "{train}"],
     "--load_model_path {ft_nan}: 1 tensor(s) hold NaN/inf values: output_layer_2.bias (1 of 2 values)"),
    ("scripts/convert.py", ["--input", "{ft_nan}", "--output", O, "--to", "hf"],
     "ft_nan.bin: 1 tensor(s) hold NaN/inf values: output_layer_2.bias"),
    ("scripts/convert.py", ["--input", "{ft_nan}", "--output", O + ".bin", "--to", "uer"],
     "ft_nan.bin: 1 tensor(s) hold NaN/inf values: output_layer_2.bias"),
    # configs that are not JSON: the file, the line and the column
    ("scripts/convert.py", ["--input", "{hf}", "--output", O + ".bin", "--to", "uer"],
     "hf/config.json: not valid JSON: Expecting property name enclosed in double quotes at line 2, column 3"),
    ("scripts/convert.py", ["--input", "{hf}", "--output", O, "--to", "hf"], "hf/config.json: not valid JSON"),
    ("scripts/convert.py", ["--input", "{bad_cfg}", "--output", O + ".bin", "--to", "uer"],
     "bad_config.json: not valid JSON: Expecting property name enclosed in double quotes at line 3, column 1"),
]


@pytest.mark.parametrize("script,argv,says", CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES])
def test_bad_input_is_one_line_and_exit_2(files, capsys, script, argv, says):
    code, err = run_cli(script, [a.format(**files) for a in argv], capsys)
    last = [l for l in err.splitlines() if l.strip()]
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    assert last and last[-1].startswith("error: ") and says.format(**files) in last[-1], err[-2000:]
    assert not os.path.exists(files["dir"] + "/out.bin")  # nothing half-written


def test_extract_features_checks_before_loading_and_writes_at_once(files, tmp_path, monkeypatch, capsys):
    """scripts/extract_features.py: --output in a read-only directory is refused before the model is loaded;
    an interrupted write leaves the previous file whole; --threads is applied; the library refuses a
    batch_size of 0 (before: range() with step 0) and a seq_length that cuts every text to nothing."""
    import numpy as np
    import torch

    import uer_like
    import uer_like.io
    from helpers import read_only
    from uer_like.errors import ConfigError
    from uer_like.io.features import extract_features

    torch.manual_seed(0)
    model = uer_like.build_model("bert/tiny_config.json", layers_num=1, vocab_size=21128)
    uer_like.save_model(model, str(tmp_path / "m.bin"))
    (tmp_path / "t.txt").write_text("你好\n今天\t天气\n\n", encoding="utf-8")  # an empty line at the end: ignored
    argv = ["--model", tmp_path / "m.bin", "--vocab_path", VOCAB, "--input", tmp_path / "t.txt", "--output"]
    ro = tmp_path / "ro"
    ro.mkdir()
    real_load = uer_like.io.load_model
    monkeypatch.setattr(uer_like.io, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    read_only(ro, monkeypatch)
    try:
        code, err = run_cli("scripts/extract_features.py", argv + [ro / "f.npy"], capsys)
    finally:
        os.chmod(ro, 0o755)
    assert code == 2 and err.count("\n") == 1 and f"--output: the directory {ro} is not writable" in err, err
    monkeypatch.undo()

    code, err = run_cli("scripts/extract_features.py", argv + [tmp_path / "f", "--threads", "1"], capsys)
    assert code in (0, None), err
    feats = np.load(tmp_path / "f.npy")  # numpy's suffix, as np.save("f") wrote it
    assert feats.shape == (2, 128)
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt))
    code, err = run_cli("scripts/extract_features.py", argv + [tmp_path / "f.npy", "--threads", "1",
                                                              "--pooling", "max"], capsys)
    monkeypatch.undo()
    assert code == 130 and err.strip() == "interrupted", err
    assert threads == [1] and np.array_equal(np.load(tmp_path / "f.npy"), feats)
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    for kw, match in ((dict(batch_size=0), "batch_size must be >= 1"), (dict(seq_length=0), "seq_length must be >= 3")):
        with pytest.raises(ConfigError, match=match):
            extract_features(real_load(str(tmp_path / "m.bin")), ["你好"], vocab_path=VOCAB, **kw)


def test_integer_rules_refuse_fractions_from_python():
    """flags.check_value with an integer rule: 2.5 is refused (it passed, so TrainArgs(batch_size=2.5) ran);
    numpy's and torch's integers are integers."""
    import numpy as np
    import torch

    from uer_like.errors import ConfigError
    from uer_like.flags import COUNT, POSITIVE, check_value

    with pytest.raises(ConfigError, match=r"^--batch_size must be an integer, got 2.5$"):
        check_value(2.5, COUNT, "--batch_size")
    assert check_value(np.int64(3), COUNT, "n") == 3 and type(check_value(torch.tensor(3), COUNT, "n")) is int
    assert check_value(np.float32(0.5), POSITIVE, "t") == 0.5
    with pytest.raises(ConfigError, match="must be finite"):
        check_value(10 ** 400, POSITIVE, "t")
