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

# .ci/run sets it: every test must run there, so a skip (no ../shared, no native build, no libasan, a missing
# optional package) fails instead of hiding what it would have checked
STRICT = os.environ.get("UER_LIKE_STRICT_TESTS") == "1"

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

torch.set_num_threads(min(2, torch.get_num_threads()))


def need(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} is not here: the team's shared data and fixtures (../shared beside the checkout) "
                    "are needed for this compatibility test")
    return path


def need_native(what="uer_like._native"):
    """Skip (fail under UER_LIKE_STRICT_TESTS=1) when the C extension is not built."""
    from uer_like.segmentation import NATIVE_AVAILABLE

    if not NATIVE_AVAILABLE:
        pytest.skip(f"{what} compares the native path with its reference, but uer_like._native is not built "
                    "(python setup.py build_ext --inplace, or pip install -e .)")


def _strict(report):
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under UER_LIKE_STRICT_TESTS=1, where every test must run: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    return _strict((yield))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    return _strict((yield))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread is faster, and much faster on a busy machine (no waiting on a second one)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


GPT2_VOCAB = 300  # the random GPT-2's vocabulary (random_gpt2)


@pytest.fixture(scope="module")
def random_gpt2(tmp_path_factory):
    """(transformers' GPT-2 made at random, ours loaded from its saved directory) for generation parity tests.
    A wide initializer gives peaked distributions: greedy/beam choices are not decided by float noise."""
    transformers = pytest.importorskip("transformers")
    import uer_like

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=GPT2_VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=48,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.2,
                                  bos_token_id=1, eos_token_id=2)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    d = tmp_path_factory.mktemp("gpt2")
    hf.save_pretrained(d)
    return hf, uer_like.load_model(str(d))
