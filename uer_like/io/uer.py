"""UER-format state dicts: the key names UER-py read and wrote, in each of its eras ("layouts").

Internally attention uses one fused QKV projection; UER files carry three (`self_attn.linear_layers.{0,1,2}`),
and the internal module names are UER-py's current ones. The layouts of UER-py's history:

  uer              since July 2023 (UER-py 4ea8f87 and later): `embedding.word.embedding.weight`,
                   `target.mlm.linear_1.weight`, ...: the internal names.
  uer_2023         February 2022 - July 2023 (UER-py 23a60d6 .. 7c1f731): `embedding.word_embedding.weight`,
                   `embedding.position_embedding.weight`, `embedding.segment_embedding.weight`, one flat
                   target module: `target.mlm_linear_1/2`, `target.layer_norm`, `target.sp_linear_1/2`,
                   `target.output_layer` (lm, bilm), `target.linear_1/2` (cls); `embedding.pe` (the sinusoidal
                   table, a buffer then); an encoder-decoder's `tgt_embedding.` the same way as `embedding.`
                   (`tgt_embedding.word_embedding.weight`, `tgt_embedding.pe`, ...). Nearly the whole UER model
                   zoo is in this layout.
  uer_2021         before February 2022 (UER-py 243dbe1 and earlier, back to c79bf7f in 2019): as uer_2023,
                   but the `bert` target named its next-sentence head `target.nsp_linear_1/2`.
  uer_2021_albert  the same era's `albert` target: the sentence-order head `target.sop_linear_1/2`.

The encoder's names did not change. `detect_layout` compares a file's key set with what each layout would
name the model's tensors; a file matching none is reported against the closest layout, with the keys that
differ. Tied weights appear under both names, as in UER-py's own files.
"""
import re

import torch

LAYOUTS = ("uer", "uer_2023", "uer_2021", "uer_2021_albert")
LAYOUT_DESCRIPTIONS = {
    "uer": "UER-py since July 2023",
    "uer_2023": "UER-py February 2022 - July 2023 (7c1f731)",
    "uer_2021": "UER-py before February 2022, bert target (243dbe1)",
    "uer_2021_albert": "UER-py before February 2022, albert target (243dbe1)",
}

_QKV = re.compile(r"^(.*\.(?:self_attn|context_attn))\.qkv\.(weight|bias)$")
_SPLIT = re.compile(r"^(.*\.(?:self_attn|context_attn))\.linear_layers\.([012])\.(weight|bias)$")

# internal prefix -> prefix in the pre-July-2023 layouts (the encoder's and an encoder-decoder's target embedding)
_EMBEDDING_2023 = {
    f"{side}.{new}.embedding.": f"{side}.{old}_embedding."
    for side in ("embedding", "tgt_embedding")
    for new, old in (("word", "word"), ("pos", "position"), ("seg", "segment"))
}
_TARGETS_2023 = {
    "mlm": {"target.mlm.linear_1.": "target.mlm_linear_1.", "target.mlm.layer_norm.": "target.layer_norm.",
            "target.mlm.linear_2.": "target.mlm_linear_2."},
    "sp": {"target.sp.linear_1.": "target.sp_linear_1.", "target.sp.linear_2.": "target.sp_linear_2."},
    "lm": {"target.lm.output_layer.": "target.output_layer."},
    "bilm": {"target.bilm.output_layer.": "target.output_layer."},
    "cls": {"target.cls.linear_1.": "target.linear_1.", "target.cls.linear_2.": "target.linear_2."},
}
_SP_HEADS = {"uer_2023": "sp", "uer_2021": "nsp", "uer_2021_albert": "sop"}
SINUSOIDAL_BUFFER = "embedding.pe"  # the sinusoidalpos_2019 table, a buffer in UER-py's files before July 2023
SINUSOIDAL_2019 = "sinusoidalpos_2019"
WORD_EMBEDDING = ("embedding.word.embedding.weight", "embedding.word_embedding.weight")  # every layout's name
LM_HEAD = ("target.lm.output_layer.weight", "target.output_layer.weight")
TIED = [("embedding.word.embedding.weight", "target.mlm.linear_2.weight"),
        ("embedding.word.embedding.weight", "target.electra_gen.linear_2.weight"),
        ("embedding.word.embedding.weight", "target.electra.generator_head.linear_2.weight"),
        ("embedding.word.embedding.weight", "target.lm.output_layer.weight"),
        ("tgt_embedding.word.embedding.weight", "target.lm.output_layer.weight")]


class LayoutError(ValueError):
    """A layout cannot name a tensor of the model (e.g. an ELECTRA head in a 2021 layout)."""


def prefix_map(layout, targets):
    """{internal prefix: file prefix} for a layout and the model's targets ({} for the current layout)."""
    if layout == "uer":
        return {}
    if layout not in _SP_HEADS:
        raise LayoutError(f"unknown UER layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    out = dict(_EMBEDDING_2023)
    for name in targets:
        if name not in _TARGETS_2023:
            raise LayoutError(f"the {layout} layout ({LAYOUT_DESCRIPTIONS[layout]}) has no names for the "
                              f"'{name}' target; save it in the 'uer' layout")
        heads = dict(_TARGETS_2023[name])
        if name == "sp":
            sp = _SP_HEADS[layout]
            heads = {k: v.replace("sp_linear", f"{sp}_linear") for k, v in heads.items()}
        out.update(heads)
    return out


def _rename(key, mapping):
    for a, b in mapping.items():
        if key.startswith(a):
            return b + key[len(a):]
    return key


def file_names(internal_keys, layout, config):
    """{internal key: (the key or keys a file in `layout` holds it under)}."""
    mapping = prefix_map(layout, config.target)
    out = {}
    for key in internal_keys:
        m = _QKV.match(key)
        names = [f"{m.group(1)}.linear_layers.{i}.{m.group(2)}" for i in range(3)] if m else [key]
        out[key] = tuple(_rename(n, mapping) for n in names)
    return out


def sinusoidal_buffers(config):
    """The `pe` buffers (the sinusoidalpos_2019 table) a pre-July-2023 file holds: `embedding.pe`, and
    `tgt_embedding.pe` for a decoder embedding of its own with the table."""
    sides = (("embedding", config.embedding), ("tgt_embedding", config.tgt_embedding or []))
    return [f"{side}.pe" for side, names in sides if SINUSOIDAL_2019 in names]


def file_keys(internal_keys, layout, config):
    """The key names a file in `layout` holds for a model whose state dict has `internal_keys`."""
    out = [n for names in file_names(internal_keys, layout, config).values() for n in names]
    if layout != "uer":
        out += sinusoidal_buffers(config)
    return out


def cat(parts, dim=0):
    """torch.cat without promotion to floating point: parts that include an integer, bool or complex tensor
    join in that tensor's dtype, so that loading refuses the weight by its dtype (checkpoint.check_tensors)
    rather than casting its values silently."""
    odd = next((t.dtype for t in parts if not t.is_floating_point()), None)
    return torch.cat([t.to(odd) for t in parts] if odd is not None else list(parts), dim=dim)


def to_uer_state_dict(state_dict, layout="uer", config=None):
    """Internal state dict -> a UER file's key names in `layout` (QKV split into three linears)."""
    mapping = prefix_map(layout, config.target) if layout != "uer" else {}
    if layout != "uer" and config.decoder and config.decoder_layers_num not in (None, config.layers_num):
        raise LayoutError(f"the {layout} layout ({LAYOUT_DESCRIPTIONS.get(layout, layout)}) gives the decoder "
                          f"layers_num ({config.layers_num}) layers, not decoder_layers_num "
                          f"({config.decoder_layers_num}); save it with layout uer")
    out = {}
    for key, value in state_dict.items():
        m = _QKV.match(key)
        if m:
            for i, part in enumerate(value.chunk(3, dim=0)):
                out[_rename(f"{m.group(1)}.linear_layers.{i}.{m.group(2)}", mapping)] = part.contiguous()
        else:
            out[_rename(key, mapping)] = value
    if layout != "uer":
        for name in sinusoidal_buffers(config):
            out[name] = sinusoidal_table(config).unsqueeze(1)
    return out


def from_uer_state_dict(state_dict, layout="uer", config=None):
    """A UER file's key names in `layout` -> internal (three linears joined into one QKV). Incomplete
    triples are left as they are, so that strict loading reports them by their UER names."""
    inverse = {b: a for a, b in prefix_map(layout, config.target).items()} if layout != "uer" else {}
    buffers = set(sinusoidal_buffers(config)) if layout != "uer" else set()
    out = {}
    groups = {}
    for key, value in state_dict.items():
        if key in buffers:
            continue  # a constant, rebuilt by the embedding
        m = _SPLIT.match(key)
        if m:
            groups.setdefault((m.group(1), m.group(3)), {})[int(m.group(2))] = (key, value)
        else:
            out[_rename(key, inverse)] = value
    for (prefix, kind), parts in groups.items():
        if len(parts) == 3:
            out[f"{prefix}.qkv.{kind}"] = cat([parts[i][1] for i in range(3)])
        else:
            for key, value in parts.values():
                out[key] = value
    return out


def detect_layout(keys, internal_keys, config):
    """-> (layout, {}) when `keys` (a file's) are exactly what a layout names the model's tensors, else
    (closest layout, {"missing": [...], "unexpected": [...]}) by the fewest differing keys."""
    best = None
    internal = set(internal_keys)
    for layout in LAYOUTS:
        have = set(keys)
        try:
            want_list = file_keys(internal_keys, layout, config)
            want = set(want_list)
            if config.tie_weights:  # a tied weight stored under one of its names only is complete
                for pair in TIED:
                    if set(pair) <= internal:
                        names = set(file_keys(pair, layout, config)) - set(sinusoidal_buffers(config))
                        if names & have:
                            have |= names
        except LayoutError:
            continue
        missing = [k for k in want_list if k not in have]
        unexpected = [k for k in keys if k not in want]
        if not missing and not unexpected:
            return layout, {}
        score = len(missing) + len(unexpected)
        if best is None or score < best[0]:
            best = (score, layout, {"missing": missing, "unexpected": unexpected})
    return best[1], best[2]


def head_is_word_embedding(state):
    """Whether a UER file's LM head holds its encoder's word embedding (UER-py saves a tied weight under each
    of its names, so a tied head is an equal tensor; an untied one never is)."""
    word = next((state[k] for k in WORD_EMBEDDING if k in state), None)
    head = next((state[k] for k in LM_HEAD if k in state), None)
    return (word is not None and head is not None and head.shape == word.shape
            and head.dtype == word.dtype and torch.equal(head, word))


def sinusoidal_table(config):
    """The [max_seq_length, emb_size] table of UER-py's word_sinusoidalpos (the sinusoidalpos_2019 embedding),
    the `embedding.pe` buffer of its files before July 2023."""
    from ..embeddings.sinusoidal import sinusoidal_2019_table

    return sinusoidal_2019_table(config.max_seq_length, config.emb_size)


def check_sinusoidal_layout(config, layout):
    """A LayoutError when `layout` is not of the era of the model's sinusoidal table: UER-py's word_sinusoidalpos
    (sinusoidalpos_2019) files are the pre-July-2023 layouts, its ["word", "sinusoidalpos"] ones the current."""
    embeddings = list(config.embedding) + list(config.tgt_embedding or [])
    if layout == "uer" and SINUSOIDAL_2019 in embeddings:
        raise LayoutError("the uer layout (UER-py since July 2023) has no word_sinusoidalpos table (the "
                          "sinusoidalpos_2019 embedding); save it with layout uer_2023")
    if layout != "uer" and "sinusoidalpos" in embeddings:
        raise LayoutError(f"the {layout} layout ({LAYOUT_DESCRIPTIONS.get(layout, layout)}) has no "
                          "[\"word\", \"sinusoidalpos\"] embedding (UER-py since July 2023); save it with layout uer")


# ------------------------------------------------------------------------------------------ inference
# Config keys that the presence of tensors settles (taken from the file when a config does not give them).
PRESENCE_KEYS = ("has_lmtarget_bias", "remove_embedding_layernorm")


def infer_components(state):
    """Embedding, encoder and target keys read off a UER file's tensor names (any layout), for configs that
    name none (UER-py before 2021 took them from command-line flags). -> (dict of config keys, reasons)."""
    keys = set(state)
    out, why = {}, []

    def has(prefix):
        return any(k.startswith(prefix) for k in keys)

    emb = ["word"]
    if has("embedding.position_embedding.") or has("embedding.pos."):
        emb.append("pos")
    if has("embedding.segment_embedding.") or has("embedding.seg."):
        emb.append("seg")
    if SINUSOIDAL_BUFFER in keys:
        emb.append(SINUSOIDAL_2019)
    out["embedding"] = emb
    out["remove_embedding_layernorm"] = not has("embedding.layer_norm.")
    why.append(f"embedding {emb} (layer norm: {not out['remove_embedding_layernorm']})")

    if has("encoder.transformer."):
        out["encoder"] = "transformer"
        out["parameter_sharing"] = not has("encoder.transformer.0.")
        out["factorized_embedding_parameterization"] = "encoder.linear.weight" in keys
        if has("encoder.layer_norm."):
            out["layernorm_positioning"] = "pre"
        why.append("encoder transformer" + (", pre-LN" if has("encoder.layer_norm.") else "")
                   + (", shared layers" if out["parameter_sharing"] else ""))
    else:
        for prefix, bi in (("encoder.rnn.", False), ("encoder.rnn_forward.", True)):
            w = state.get(prefix + "weight_hh_l0")
            if w is not None:
                cell = {4: "lstm", 3: "gru", 1: "rnn"}.get(w.shape[0] // w.shape[1], "lstm")
                out["encoder"] = ("bi" + cell) if bi else cell
                if not bi and prefix + "weight_hh_l0_reverse" in keys:
                    out["bidirectional"] = True
                why.append(f"encoder {out['encoder']}" + (" (bidirectional)" if out.get("bidirectional") else ""))
                break

    targets = []
    if has("target.mlm_linear_1.") or has("target.mlm."):
        targets.append("mlm")
    if has("target.nsp_linear_1.") or has("target.sop_linear_1.") or has("target.sp_linear_1.") or has("target.sp."):
        targets.append("sp")
        if has("target.sop_linear_1."):
            out["data_processor"] = "albert"
    out_w = state.get("target.output_layer.weight")
    if out_w is None:
        out_w = state.get("target.lm.output_layer.weight")
        if out_w is None and state.get("target.bilm.output_layer.weight") is not None:
            targets.append("bilm")
    if out_w is not None:
        if out.get("encoder", "").startswith("bi") and "target.lm.output_layer.weight" not in keys:
            targets.append("bilm")
        else:
            targets.append("lm")
        out["has_lmtarget_bias"] = "target.output_layer.bias" in keys or "target.lm.output_layer.bias" in keys
    if has("target.linear_1.") or has("target.cls."):
        targets.append("cls")
        w2 = state.get("target.linear_2.weight", state.get("target.cls.linear_2.weight"))
        out["labels_num"] = int(w2.shape[0])
    if targets:
        out["target"] = targets
        why.append(f"target {targets}")
    if "lm" in targets and out.get("encoder") == "transformer":
        out["mask"] = "causal"
        why.append("causal mask (an lm target)")
    word = state.get("embedding.word_embedding.weight", state.get("embedding.word.embedding.weight"))
    for head in ("target.mlm_linear_2.weight", "target.mlm.linear_2.weight", "target.output_layer.weight",
                 "target.lm.output_layer.weight"):
        if word is not None and head in state and state[head].shape == word.shape and torch.equal(state[head], word):
            out["tie_weights"] = True
            why.append("tied word embedding and output layer")
            break
    return out, why
