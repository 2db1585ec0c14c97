"""Format "pt-zip": the PyTorch zips of the Chinese BERT releases (pytorch_model.bin + Google's bert_config.json,
or a config.json without model_type), read by io/pt_zip.py into their Hugging Face form; read only."""
from .. import pt_zip
from .release import register_release

register_release("pt-zip", pt_zip, order=11)
