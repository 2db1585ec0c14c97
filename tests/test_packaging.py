"""Installation and start-up: the package finds what it ships without the checkout, and preprocessing
starts without torch. (.ci/run also installs a built wheel into a fresh virtual environment.)"""
import os
import subprocess
import sys
import textwrap

from conftest import ROOT, SAMPLE_CORPUS


def test_installed_package_finds_its_configs_and_vocabulary(tmp_path):
    """setup.py's build (what a wheel or `pip install .` installs) carries configs/ and models/ inside the
    package, and the documented names resolve there from any directory, with no checkout in sight."""
    lib = tmp_path / "lib"
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(lib)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Warning" not in r.stderr, r.stderr[-3000:]
    shipped = sorted(os.path.relpath(os.path.join(d, f), ROOT) for top in ("configs", "models")
                     for d, _, files in os.walk(os.path.join(ROOT, top)) for f in files)
    installed = sorted(os.path.relpath(os.path.join(d, f), lib / "uer_like") for top in ("configs", "models")
                       for d, _, files in os.walk(lib / "uer_like" / top) for f in files)
    assert installed == shipped
    check = textwrap.dedent(r'''
        import os, sys
        import uer_like
        from uer_like import resources
        from uer_like.config import list_configs
        from uer_like.tokenizers import Vocab
        lib = sys.argv[1]
        assert uer_like.__file__.startswith(lib), uer_like.__file__
        assert resources.CONFIGS_DIR.startswith(lib) and resources.DEFAULT_VOCAB.startswith(lib)
        assert uer_like.load_config("bert/base_config.json").hidden_size == 768
        assert uer_like.load_config("configs/roberta/tiny_config.json").hidden_size == 128
        assert len(Vocab.load("models/google_zh_vocab.txt")) == 21128
        assert len(Vocab.load(resources.DEFAULT_VOCAB)) == 21128
        print(len(list_configs()))
    ''')
    env = dict(os.environ, PYTHONPATH=str(lib))
    r = subprocess.run([sys.executable, "-c", check, str(lib)], cwd=str(tmp_path), env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout) == len([p for p in shipped if p.startswith("configs") and p.endswith(".json")])


def test_preprocess_never_imports_torch(tmp_path):
    """preprocess.py (and its worker processes) run with torch unimportable, and torch is not in sys.modules."""
    poison = tmp_path / "poison" / "torch"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('preprocessing imported torch')\n")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(open(SAMPLE_CORPUS, encoding="utf-8").read()[:30000], encoding="utf-8")
    run = textwrap.dedent(r'''
        import runpy, sys
        sys.argv = sys.argv[1:]
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        finally:
            print("torch imported" if "torch" in sys.modules else "torch not imported")
    ''')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(poison.parent), ROOT]))
    r = subprocess.run([sys.executable, "-c", run, os.path.join(ROOT, "preprocess.py"), "--corpus_path", str(corpus),
                        "--dataset_path", str(tmp_path / "ds.bin"), "--data_processor", "bert", "--seq_length", "64",
                        "--whole_word_masking", "--dynamic_masking", "--processes_num", "2", "--chunk_bytes", "8192"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("torch not imported") and (tmp_path / "ds.bin").exists()
