"""UER-format state dicts: the key names and shapes UER-py reads and writes.

Internally attention uses one fused QKV projection; UER files carry three
(`self_attn.linear_layers.{0,1,2}`). These two functions are the only place that knows it.
Tied weights appear under both names, as in UER-py's own files.
"""
import re

import torch

_QKV = re.compile(r"^(.*\.self_attn)\.qkv\.(weight|bias)$")
_SPLIT = re.compile(r"^(.*\.self_attn)\.linear_layers\.([012])\.(weight|bias)$")


def to_uer_state_dict(state_dict):
    """Internal state dict -> UER key names (QKV split into three linears)."""
    out = {}
    for key, value in state_dict.items():
        m = _QKV.match(key)
        if m:
            for i, part in enumerate(value.chunk(3, dim=0)):
                out[f"{m.group(1)}.linear_layers.{i}.{m.group(2)}"] = part.contiguous()
        else:
            out[key] = value
    return out


def from_uer_state_dict(state_dict):
    """UER key names -> internal (three linears joined into one QKV). Incomplete triples are left as they
    are, so that strict loading reports them by their UER names."""
    out = {}
    groups = {}
    for key, value in state_dict.items():
        m = _SPLIT.match(key)
        if m:
            groups.setdefault((m.group(1), m.group(3)), {})[int(m.group(2))] = (key, value)
        else:
            out[key] = value
    for (prefix, kind), parts in groups.items():
        if len(parts) == 3:
            out[f"{prefix}.qkv.{kind}"] = torch.cat([parts[i][1] for i in range(3)], dim=0)
        else:
            for key, value in parts.values():
                out[key] = value
    return out
