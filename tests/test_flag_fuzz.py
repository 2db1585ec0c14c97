"""Every numeric flag of every command line, given 0, a negative number, NaN, inf or a huge value: the run
either works (exit 0, finite weights, the outputs it promises) or exits 2 with one line naming the flag; never
a traceback, never exit 0 with a wrong result.

Two layers: the parsers (every flag of every script and fine-tuning task, each value; fast), then the real
commands, in this process, for every (flag, value) a parser accepted, on tiny data."""
import importlib.util
import json
import math
import os

import pytest
import torch

from conftest import ROOT, SAMPLE_CORPUS, SHARED, VOCAB, need
from helpers import preprocess, run_cli

VALUES = ["0", "-1", "nan", "inf", "-inf", "1e30", str(10 ** 12)]
SMALL = {"layers_num": 1, "hidden_size": 32, "emb_size": 32, "feedforward_size": 64, "heads_num": 2}


def _script_parser(path):
    spec = importlib.util.spec_from_file_location("_fuzz_" + os.path.basename(path)[:-3], os.path.join(ROOT, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_parser()


def _finetune_parser(task):
    from uer_like.finetune.cli import build_parser

    return build_parser(task)


def _parsers():
    from uer_like.finetune.tasks import task_names

    out = {s: (lambda s=s: _script_parser(s)) for s in SCRIPTS}
    out.update({f"finetune:{t}": (lambda t=t: _finetune_parser(t)) for t in task_names()})
    return out


SCRIPTS = ["preprocess.py", "pretrain.py", "scripts/generate_lm.py", "scripts/convert.py",
           "scripts/extract_features.py", "finetune/tsv_to_corpus.py", "scripts/cloze_test.py", "scripts/topn_words.py",
           "scripts/average_models.py", "scripts/build_vocab.py", "scripts/diff_vocab.py",
           "scripts/extract_embeddings.py", "scripts/dynamic_vocab_adapter.py", "scripts/generate_seq2seq.py"]


def _numeric_actions(parser):
    from uer_like.flags import Number

    return [a for a in parser._actions if a.option_strings and (a.type in (int, float) or isinstance(a.type, Number))]


def _required(parser):
    """Dummy values for the required flags (parsing does not open files)."""
    out = []
    for a in parser._actions:
        if a.required and a.option_strings:
            out += [a.option_strings[0], a.choices[0] if a.choices else "x"]
    return out


def _parse(parser, argv, capsys):
    try:
        ns = parser.parse_args(argv)
        return 0, ns, capsys.readouterr().err
    except SystemExit as e:
        return e.code, None, capsys.readouterr().err


PARSERS = _parsers()


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_numeric_flag_declares_its_range_and_refuses_bad_values_in_one_line(name, capsys):
    from uer_like.flags import Number

    parser = PARSERS[name]()
    actions = _numeric_actions(parser)
    bare = [a.option_strings[0] for a in actions if not isinstance(a.type, Number) and a.help != "==SUPPRESS=="]
    assert not bare, f"{name}: numeric flags without a declared range (uer_like.flags.Int/Float): {bare}"
    for a in actions:
        if a.help == "==SUPPRESS==":
            continue
        flag = a.option_strings[0]
        for v in VALUES:
            code, ns, err = _parse(parser, _required(parser) + [flag, v], capsys)
            if code:
                lines = err.strip().splitlines()
                assert code == 2 and len(lines) == 1, (flag, v, err)
                assert lines[0].startswith(f"error: argument {flag}") and "Traceback" not in err, (flag, v, err)
                continue
            got = getattr(ns, a.dest)
            got = got[0] if isinstance(got, list) else got
            assert math.isfinite(got), (flag, v, got)  # nan/inf never get through
            a.type.check(got, flag)  # within the declared range


# ------------------------------------------------------------------------------------------ the real commands
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny inputs for each command: a corpus, an mlm dataset, a config, a classification TSV, an LM and prompts."""
    d = tmp_path_factory.mktemp("fuzz")
    text = open(SAMPLE_CORPUS, encoding="utf-8").read()[:40000]
    lines = [l for l in text.split("\n") if len(l) > 20][:40]
    corpus = d / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds, _ = preprocess(str(d), "\n".join(lines) + "\n", data_processor="mlm", seq_length=32, corpus_format="line",
                       dynamic_masking=True)
    c = json.load(open(os.path.join(ROOT, "configs", "roberta", "tiny_config.json")))
    c.update(SMALL)
    (d / "small.json").write_text(json.dumps(c))
    tsv = d / "cls.tsv"
    tsv.write_text("label\ttext_a\n" + "".join(f"{i % 2}\t{l[:40]}\n" for i, l in enumerate(lines[:24])),
                   encoding="utf-8")
    import uer_like

    g = json.load(open(os.path.join(ROOT, "configs", "gpt2", "mini_config.json")))
    g.update(SMALL, max_seq_length=64)
    (d / "gpt2.json").write_text(json.dumps(g))
    torch.manual_seed(0)
    lm = uer_like.build_model(str(d / "gpt2.json"), vocab_size=21128)
    uer_like.save_model(lm, str(d / "gpt2.bin"))
    (d / "prompts.txt").write_text("今天天气\n北京\n", encoding="utf-8")
    mlm = uer_like.build_model(str(d / "small.json"), vocab_size=21128)  # the model utilities' (scripts/*.py)
    uer_like.save_model(mlm, str(d / "mlm.bin"))
    (d / "cloze.txt").write_text("北京是中[MASK]的首都\n", encoding="utf-8")
    (d / "dep.txt").write_text("京\t北京是中国的首都\n", encoding="utf-8")
    (d / "cands.txt").write_text("上\n南\n东\n西\n", encoding="utf-8")
    (d / "new_vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n北\n京\n新\n", encoding="utf-8")
    return {"d": d, "corpus": corpus, "ds": ds, "config": d / "small.json", "tsv": tsv, "lm": d / "gpt2.bin",
            "lm_config": d / "gpt2.json", "prompts": d / "prompts.txt", "mlm": d / "mlm.bin"}


def _finite(path):
    from uer_like.io.checkpoint import load_state_dict_file

    return all(torch.isfinite(t).all() for t in load_state_dict_file(str(path)).values()
               if torch.is_tensor(t) and t.is_floating_point())


def _vocab_diff_sound(path, first, second):
    """diff_vocab's --output_path lists exactly the tokens of `first` that `second` lacks (as Vocab reads them)."""
    from uer_like.tokenizers.vocab import Vocab

    a, b = (Vocab.load(str(p), required=()).i2w for p in (first, second))
    got = open(path, encoding="utf-8").read().split("\n")[:-1]
    return got == ["vocab_1\t" + t for t in dict.fromkeys(a) if t not in set(b)]


def _with(base, flag, value):
    """base argv with `flag` set to `value` (replacing base's own value of it)."""
    out, i = [], 0
    while i < len(base):
        if base[i] == flag:
            i += 2
            continue
        out.append(base[i])
        i += 1
    return out + [flag, value]


def _commands(w, out):
    """script -> (base argv, check of a run that exited 0)."""
    lines = lambda p: open(p, encoding="utf-8").read().splitlines()  # noqa: E731
    return {
        "preprocess.py": (["--corpus_path", w["corpus"], "--dataset_path", out / "ds.bin", "--data_processor", "mlm",
                           "--corpus_format", "line", "--seq_length", "32", "--vocab_path", VOCAB],
                          lambda: os.path.getsize(out / "ds.bin") > 0),
        "pretrain.py": (["--config", w["config"], "--dataset_path", w["ds"], "--output_model_path", out / "m.bin",
                         "--total_steps", "2", "--batch_size", "4", "--report_steps", "1", "--warmup", "0"],
                        lambda: _finite(out / "m.bin")),
        "finetune/run_classifier.py": (
            ["--train_path", w["tsv"], "--dev_path", w["tsv"], "--config_path", w["config"], "--vocab_path", VOCAB,
             "--epochs_num", "1", "--batch_size", "8", "--seq_length", "32", "--learning_rate", "1e-3",
             "--output_model_path", out / "cls.bin", "--no_progress"],
            lambda: _finite(out / "cls.bin")),
        "scripts/generate_lm.py": (
            ["--load_model_path", w["lm"], "--config_path", w["lm_config"], "--vocab_path", VOCAB, "--test_path",
             w["prompts"], "--prediction_path", out / "gen.txt", "--seq_length", "16"],
            lambda: len(lines(out / "gen.txt")) == 2),
        "scripts/generate_seq2seq.py": (
            ["--load_model_path", need(os.path.join(SHARED, "fixtures", "seq2seq", "bart")), "--test_path",
             w["prompts"], "--prediction_path", out / "s2s.txt", "--tgt_seq_length", "6"],
            lambda: len(lines(out / "s2s.txt")) == 2),
        "finetune/tsv_to_corpus.py": (["--input", w["tsv"], "--output", out / "corpus.txt", "--header"],
                                      lambda: os.path.getsize(out / "corpus.txt") > 0),
        "scripts/cloze_test.py": (["--load_model_path", w["mlm"], "--test_path", w["d"] / "cloze.txt",
                                   "--prediction_path", out / "cloze.txt", "--topn", "3"],
                                  lambda: len(lines(out / "cloze.txt")) == 3),
        "scripts/topn_words.py": (["--mode", "dep", "--load_model_path", w["mlm"], "--test_path", w["d"] / "dep.txt",
                                   "--cand_vocab_path", w["d"] / "cands.txt", "--prediction_path", out / "top.txt",
                                   "--topn", "2"], lambda: len(lines(out / "top.txt")) == 5),
        "scripts/average_models.py": (["--model_list_path", w["mlm"], w["mlm"], "--output_model_path", out / "avg.bin"],
                                      lambda: _finite(out / "avg.bin")),
        "scripts/build_vocab.py": (["--corpus_path", w["corpus"], "--vocab_path", out / "v.txt"],
                                   lambda: "[MASK]" in lines(out / "v.txt") and len(lines(out / "v.txt")) > 100),
        "scripts/diff_vocab.py": (["--vocab_1", VOCAB, "--vocab_2", w["d"] / "new_vocab.txt", "--output_path",
                                   out / "d.tsv"],
                                  lambda: _vocab_diff_sound(out / "d.tsv", VOCAB, w["d"] / "new_vocab.txt")),
        "scripts/dynamic_vocab_adapter.py": (["--old_model_path", w["mlm"], "--new_vocab_path",
                                              w["d"] / "new_vocab.txt", "--new_model_path", out / "ad.bin"],
                                             lambda: _finite(out / "ad.bin")),
    }


def _accepted(script, capsys):
    """(flag, value) pairs the script's parser accepts among VALUES."""
    parser = _script_parser(script) if not script.startswith("finetune/run_") else _finetune_parser("classification")
    pairs = []
    for a in _numeric_actions(parser):
        if a.help == "==SUPPRESS==":
            continue
        for v in VALUES:
            code, _, _ = _parse(parser, _required(parser) + [a.option_strings[0], v], capsys)
            if not code:
                pairs.append((a.option_strings[0], v))
    return pairs


RUN_SCRIPTS = ["preprocess.py", "pretrain.py", "finetune/run_classifier.py", "scripts/generate_lm.py",
               "finetune/tsv_to_corpus.py", "scripts/cloze_test.py", "scripts/topn_words.py",
               "scripts/average_models.py", "scripts/build_vocab.py", "scripts/diff_vocab.py",
               "scripts/dynamic_vocab_adapter.py", "scripts/generate_seq2seq.py"]


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch):
    from uer_like.training import distributed

    monkeypatch.setattr(distributed, "_current", None)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("script", RUN_SCRIPTS)
def test_accepted_extreme_values_run_to_a_sound_result(script, world, tmp_path, capsys):
    pairs = _accepted(script, capsys)
    assert pairs or script == "finetune/tsv_to_corpus.py"
    failures = []
    for k, (flag, value) in enumerate(pairs):
        out = tmp_path / f"case{k}"
        out.mkdir()
        base, sound = _commands(world, out)[script]
        code, err = run_cli(script, _with([str(a) for a in base], flag, value), capsys)
        last = err.strip().splitlines()[-1] if err.strip() else ""
        if "Traceback" in err:
            failures.append(f"{flag} {value}: traceback: {err[-1500:]}")
        elif code in (0, None):
            if not sound():
                failures.append(f"{flag} {value}: exit 0 with an unsound result")
        elif code != 2 or not last.startswith("error: ") or flag not in last:
            failures.append(f"{flag} {value}: exit {code}, last line {last!r}")
    assert not failures, "\n".join(failures)
