"""The parameter-name rules a family declares (io/hf.py applies them both ways), and the activation names
shared by the families' config mappings.

A rule is (HF keys, internal key, kind); the kinds are described in io/hf.py's module docstring."""

ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_fast", "gelu_fast": "gelu_fast", "gelu_pytorch_tanh": "gelu_fast",
               "relu": "relu", "silu": "silu", "swish": "silu", "linear": "linear"}
ACT_TO_HF = {"gelu": "gelu", "gelu_fast": "gelu_new", "relu": "relu", "silu": "silu", "linear": "linear"}


class Rule:
    __slots__ = ("hf", "internal", "kind")

    def __init__(self, hf, internal, kind="copy"):
        self.hf = (hf,) if isinstance(hf, str) else tuple(hf)
        self.internal = internal
        self.kind = kind


def ln(hf, internal):
    """A layer norm: HF weight/bias <-> internal gamma/beta."""
    return [Rule(f"{hf}.weight", f"{internal}.gamma"), Rule(f"{hf}.bias", f"{internal}.beta")]


def linear(hf, internal, bias=True, kind="copy"):
    out = [Rule(f"{hf}.weight", f"{internal}.weight", kind)]
    if bias:
        out.append(Rule(f"{hf}.bias", f"{internal}.bias"))
    return out


def qkv(names, internal):
    """Three separate query, key, value linears (HF names without .weight/.bias) <-> the fused qkv linear."""
    return [Rule([f"{n}.weight" for n in names], f"{internal}.weight", "qkv"),
            Rule([f"{n}.bias" for n in names], f"{internal}.bias", "qkv")]
