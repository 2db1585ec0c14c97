"""mT5 (MT5ForConditionalGeneration): the T5 v1.1 architecture under model_type mt5; t5.py's names and
config keys."""
from . import Family, register_family
from .t5 import config_from_hf, config_to_hf, is_base_key, rules

register_family(Family("mt5", "", "MT5", frozenset({"lm"}), lambda t: "MT5ForConditionalGeneration", ([("lm", ())],),
                       rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf, config_to_hf=config_to_hf))
