"""Format "hf": a Hugging Face (transformers) directory: config.json with a model_type; weights in
model.safetensors, pytorch_model.bin or sharded with an index. (One such weights file beside its config.json
is read by the uer / safetensors formats, which see Hugging Face names and report "hf".) Written by
checkpoint.save_hf, with the tokenizer files; an ELECTRA pretraining model as PATH/discriminator and
PATH/generator, a PERT model as its encoder."""
import logging
import os

from ...config import read_json
from ...errors import CheckpointError
from ..safe import read_tensor_file
from .base import Format, Weights, register_format

logger = logging.getLogger("uer_like")

WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def hf_config_at(d):
    """(config dict, its path) for a directory whose config.json has a model_type (or is one a family claims
    without it: Family.claims), else (None, None)."""
    p = os.path.join(d, "config.json")
    if os.path.isfile(p):
        cfg = read_json(p)
        if isinstance(cfg, dict) and ("model_type" in cfg or _claimed(cfg)):
            return cfg, p
    return None, None


def _claimed(cfg):
    from .. import families

    return any(f.claims is not None and f.claims(cfg) for f in families.all_families())


def hf_config_arg(config):
    """`config` when it is a Hugging Face config (a dict or a .json path with a model_type), else None."""
    if isinstance(config, str) and config.endswith(".json") and os.path.isfile(config):
        cand = read_json(config)
        return cand if isinstance(cand, dict) and "model_type" in cand else None
    if isinstance(config, dict) and "model_type" in config:
        return config
    return None


def first_file(d, names):
    for n in names:
        p = os.path.join(d, n)
        if os.path.isfile(p):
            return p
    return None


def weights_in(d):
    for n in WEIGHT_NAMES:
        p = os.path.join(d, n)
        if os.path.isfile(p):
            return [p]
    for n in INDEX_NAMES:
        p = os.path.join(d, n)
        if os.path.isfile(p):
            index = read_json(p)
            files = sorted(set((index.get("weight_map") or {}).values()))
            if not files:
                raise CheckpointError(f"{p}: the index lists no weight files")
            return [os.path.join(d, f) for f in files]
    raise CheckpointError(f"{d}: a Hugging Face directory without weights (looked for "
                          f"{', '.join(WEIGHT_NAMES + INDEX_NAMES)})")


def detect(path):
    return os.path.isdir(path) and hf_config_at(path)[0] is not None


def read(path, config=None, **_):
    hf_cfg, _ = hf_config_at(path)
    given = hf_config_arg(config)
    if given is not None:
        hf_cfg = given
    elif config is not None:
        logger.warning("%s: a Hugging Face directory; its config.json defines the model, config=%r is ignored",
                       path, config)
    state = {}
    for f in weights_in(path):
        state.update(read_tensor_file(f))
    return Weights(state, names="hf", path=path, config=hf_cfg, vocab_path=first_file(path, _vocab_files(hf_cfg)),
                   tokenizer_dir=path, ln_dir=path)


def _vocab_files(hf_cfg):
    """The files a directory of this config's family records as its vocabulary (Family.vocab_files)."""
    from .. import families

    name = (hf_cfg or {}).get("model_type")
    return families.get(name).vocab_files if name in families.names() else ("vocab.txt",)


def write(model, path, vocab=None, layout=None):
    from ..checkpoint import save_hf

    if "electra" in model.config.target:  # ELECTRA pretraining: two transformers models
        from ...targets.electra import electra_parts
        from ..checkpoint import _default_vocab

        disc, gen = electra_parts(model)
        save_hf(disc, os.path.join(path, "discriminator"), vocab=vocab or _default_vocab(model))
        save_hf(gen, os.path.join(path, "generator"), vocab=vocab or _default_vocab(model))
        return path
    if "pert" in model.config.target:  # PERT: the encoder, as HFL released it (BertModel)
        from ...targets.pert import pert_encoder

        logger.info("%s: PERT's pointer head has no Hugging Face class; the encoder is saved without it", path)
        model = pert_encoder(model)
    return save_hf(model, path, vocab=vocab)


register_format(Format("hf", detect, read, write, directory=True, order=20))
