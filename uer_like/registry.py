"""Name -> class registries. A new module is one new file that registers itself.

    from uer_like.registry import ENCODERS

    @ENCODERS.register("my_encoder")
    class MyEncoder(nn.Module): ...

CLI choices, config validation and the all-configs test all derive from these registries.
"""
from difflib import get_close_matches

from .errors import ConfigError


class Registry:
    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def register(self, name):
        def deco(obj):
            if name in self._items:
                raise RuntimeError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def unregister(self, name):
        """Remove an entry (a test's toy module, registered for the test only)."""
        self._items.pop(name, None)

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items

    def get(self, name, key=None):
        try:
            return self._items[name]
        except (KeyError, TypeError):
            where = f"config key '{key}': " if key else ""
            close = get_close_matches(str(name), self.names(), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"{where}unknown {self.kind} '{name}'{hint}; valid choices: {', '.join(self.names())}"
            ) from None


EMBEDDINGS = Registry("embedding")
ENCODERS = Registry("encoder")
DECODERS = Registry("decoder")
TARGETS = Registry("target")
ACTIVATIONS = Registry("activation")
LAYERNORMS = Registry("layernorm")
TOKENIZERS = Registry("tokenizer")
DATA_PROCESSORS = Registry("data_processor")
POSITION_SCHEMES = Registry("position_scheme")
FORMATS = Registry("format")  # checkpoint formats on disk (uer_like/io/formats/): detect, read, write
HF_FAMILIES = Registry("Hugging Face family")  # model_type -> io/families/ adapter
TF_SCHEMES = Registry("TF checkpoint scheme")  # io/tf_releases.py: a release's variable names -> uer_like
