"""The definitions the families package registers its modules with (its __init__ imports the
modules; they import this, so the registration has no import cycle)."""
from dataclasses import dataclass
from typing import Callable, Optional

from ...registry import HF_FAMILIES


@dataclass(frozen=True)
class Family:
    """name: the model_type; base_prefix: the base model's attribute in the *For* classes (bert., transformer.);
    other_prefixes: base prefixes releases of the family also use; class_prefix: of the *For* class names;
    export_targets: the uer_like targets an export writes as heads; architecture(targets: set) -> the *For*
    class written; target_rules: the heads a checkpoint carries, read off its keys: a list of alternatives
    [(target, marker keys), ...], the first whose markers meet the keys taken (no markers: always);
    bert_like: BERT's layer, pooler and pre-training head names; one_pooler: sp, cls and pooler share the
    family's one pooler on export.

    Names and config: rules(cfg) -> the rules.Rule list (Hugging Face names <-> internal names, both
    directions); is_base_key(key) -> whether a key (without the base prefix) belongs to the base model;
    config_from_hf(hf, targets, extras, need, act, source) -> the uer_like config keys (extras: config.json's
    `uer_like` entries); config_to_hf(model, architecture, eps) -> the config.json entries (a `uer_like` dict
    among them is merged with the generic ones); claims(hf) -> whether a config.json of another model_type is
    this family's (ERNIE 3.0 converted as BERT with task types); buffers: key suffixes of saved buffers, never
    weights, dropped on import; tied_keys: head keys a tied checkpoint may also store (ignored);
    decoder_bias: (bias, decoder bias) key pairs of an untied MLM head (transformers computes with the second);
    export_state(cfg, state) -> base-model tensors an export adds that no rule writes (a zero token-type row,
    RoFormer's rotary table); config_from_state(canonical HF tensors, config, source) -> uer_like config keys
    the tensors settle and config.json does not (PEGASUS' position table layout), applied after config.json's;
    weight_suffixes: key endings that are weights here although they end like a buffer (BART's learned
    encoder.embed_positions.weight), kept on import.

    Export: export_rank(config) -> None when the family cannot hold a uer_like model of that shape, else how
    specific the family is to it (the highest rank is exported; among equals the family the model was loaded
    from, else the one with default_export); check_export(config) raises a one-line ConfigError for what the
    family cannot hold.

    Fine-tuned models (io/hf_tasks.py): task_heads(task) -> (backbone targets, [(internal head key prefix, HF key
    prefix)]) or None when the family has no transformers class for the task; task_pooling: the pooling its
    classifier uses; task_class(suffix) -> the transformers class name for a task-class suffix.

    Tokenizer: vocab_files: files of a Hugging Face directory recorded as the model's vocabulary (the first
    present); spm_file: the sentencepiece model a release ships beside the weights, found beside a UER file too;
    spm_rows(pieces) -> the word-embedding rows a model over a sentencepiece model of that many pieces needs at
    least (a release may pad its embedding; without spm_rows: exactly one row per piece);
    special_ids(processor) -> the config.json token ids (pad, bos, eos) that model assigns, written on export
    in place of any fixed ones; write_tokenizer(out_dir, vocab_path) -> the tokenizer files written for a
    model not loaded from a release (None: a BertTokenizer over a vocab.txt)."""
    name: str
    base_prefix: str
    class_prefix: str
    export_targets: frozenset
    architecture: Callable[[set], str]
    target_rules: tuple = ()
    other_prefixes: tuple = ()
    bert_like: bool = False
    one_pooler: bool = False
    rules: Optional[Callable] = None
    is_base_key: Optional[Callable[[str], bool]] = None
    config_from_hf: Optional[Callable] = None
    config_to_hf: Optional[Callable] = None
    special_ids: Optional[Callable] = None
    claims: Optional[Callable[[dict], bool]] = None
    buffers: tuple = ()
    tied_keys: tuple = ()
    decoder_bias: tuple = ()
    export_state: Optional[Callable] = None
    export_rank: Optional[Callable] = None
    default_export: bool = True
    check_export: Optional[Callable] = None
    task_heads: Optional[Callable[[str], Optional[tuple]]] = None
    task_pooling: str = "first"
    task_class: Optional[Callable[[str], str]] = None
    vocab_files: tuple = ("vocab.txt",)
    spm_file: Optional[str] = None
    spm_rows: Optional[Callable[[int], int]] = None
    write_tokenizer: Optional[Callable] = None
    config_from_state: Optional[Callable] = None  # (canonical HF tensors, config, source) -> uer_like config keys
    # that the tensors settle and config.json does not (PEGASUS' position table layout)
    weight_suffixes: tuple = ()  # key endings io/hf.py drops as saved buffers that are weights here (BART's
    # learned encoder.embed_positions.weight)


def register_family(family):
    """Register a Family (a family module calls this at import); returns it."""
    return HF_FAMILIES.register(family.name)(family)


def get(name):
    return HF_FAMILIES.get(name)


def names():
    return HF_FAMILIES.names()


def all_families():
    return [get(n) for n in names()]
