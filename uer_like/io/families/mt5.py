"""mT5 (MT5ForConditionalGeneration): the T5 v1.1 architecture under model_type mt5; t5.py's names, config
keys and export checks. A T5-shaped model exports as mT5 only when loaded from an mT5 release (default: t5)."""
from .base import Family, register_family
from .t5 import check_export, config_from_hf, config_to_hf, export_rank, is_base_key, rules

register_family(Family("mt5", "", "MT5", frozenset({"lm"}), lambda t: "MT5ForConditionalGeneration", ([("lm", ())],),
                       rules=rules, is_base_key=is_base_key, config_from_hf=config_from_hf, config_to_hf=config_to_hf,
                       export_rank=export_rank, default_export=False, check_export=check_export))
