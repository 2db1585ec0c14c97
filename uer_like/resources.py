"""Files the project ships beside its code: model configs (``configs/``) and vocabularies (``models/``).

In a checkout (and an editable install) they are the repository's ``configs/`` and ``models/``; an installed
package (``pip install .``, a wheel) carries them inside the package as ``uer_like/configs`` and
``uer_like/models`` (setup.py maps the two directories there). Either way the documented paths work:
``load_config("bert/base_config.json")``, ``--vocab_path models/google_zh_vocab.txt`` from any directory.
"""
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CHECKOUT_DIR = os.path.dirname(PACKAGE_DIR)
SHIPPED = ("configs", "models")


def shipped_dir(name):
    """The directory of shipped `name` files (configs or models): inside the installed package, else the checkout's."""
    installed = os.path.join(PACKAGE_DIR, name)
    return installed if os.path.isdir(installed) else os.path.join(CHECKOUT_DIR, name)


CONFIGS_DIR = shipped_dir("configs")
MODELS_DIR = shipped_dir("models")
DEFAULT_VOCAB = os.path.join(MODELS_DIR, "google_zh_vocab.txt")
SENTINEL_VOCAB = os.path.join(MODELS_DIR, "google_zh_with_sentinel_vocab.txt")  # + <extra_id_0..99> (t5)


def resolve(path):
    """`path` itself when it exists; else, for a relative path into a shipped directory (models/...,
    configs/...), the shipped file; else `path` unchanged (the caller reports it as missing)."""
    if not path or os.path.exists(path) or os.path.isabs(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    if len(parts) > 1 and parts[0] in SHIPPED:
        candidate = os.path.join(shipped_dir(parts[0]), *parts[1:])
        if os.path.exists(candidate):
            return candidate
    return path
