#!/usr/bin/env python
"""Write configs/chinese_roberta/: the 24 sizes of UER's Chinese RoBERTa miniatures (Turc et al.'s grid,
released as uer/chinese_roberta_L-{2,4,6,8,10,12}_H-{128,256,512,768}): layers L x hidden H, H/64 heads,
a 4H feed-forward, 512 positions, MLM target tied to the word embedding, the mlm data processor.

    python scripts/make_zoo_configs.py            # (re)writes configs/chinese_roberta/L-*_H-*_config.json
    python pretrain.py --config chinese_roberta/L-4_H-256 ...

The files are committed; tests/test_zoo_configs.py checks they are this script's output.
"""
import json
import os
import sys

LAYERS = (2, 4, 6, 8, 10, 12)
HIDDEN = (128, 256, 512, 768)
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "chinese_roberta")


def config(layers, hidden):
    return {"emb_size": hidden, "feedforward_size": 4 * hidden, "hidden_size": hidden, "hidden_act": "gelu",
            "heads_num": hidden // 64, "layers_num": layers, "max_seq_length": 512, "dropout": 0.1,
            "data_processor": "mlm", "embedding": ["word", "pos", "seg"], "encoder": "transformer",
            "mask": "fully_visible", "target": ["mlm"], "tie_weights": True}


def files():
    """{file name: text} of every config."""
    return {f"L-{n}_H-{h}_config.json": json.dumps(config(n, h), indent=2) + "\n" for n in LAYERS for h in HIDDEN}


def main(out=OUT):
    os.makedirs(out, exist_ok=True)
    for name, text in files().items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text)
    print(f"wrote {len(files())} configs to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
