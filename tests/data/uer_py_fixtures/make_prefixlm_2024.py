"""Writes the prefix-LM fixture (UniLM; mask causal_with_prefix, data_processor prefixlm) with UER-py's own code:
its preprocess.py and PrefixlmDataset, its PrefixlmDataloader, its model (build_model: word/pos/seg embedding,
transformer encoder with the causal_with_prefix mask, lm target) and its LmTarget.

    git -C UER-py archive 5743050 uer preprocess.py models/special_tokens_map.json | tar -x -C /tmp/uerpy
    git -C UER-py archive 7c1f731 uer/targets/lm_target.py | tar -x -C /tmp/uerpy_7c1f731
    PYTHONPATH=<six> python tests/data/uer_py_fixtures/make_prefixlm_2024.py /tmp/uerpy \
        /tmp/uerpy_7c1f731/uer/targets/lm_target.py tests/data/uer_py_fixtures

Only torch (and six, packaging, which UER-py's preprocess.py imports) are needed. Written beside this script:

- prefixlm_vocab.txt, prefixlm_corpus.txt: a 33-token WordPiece vocabulary and 8 `source<TAB>target` lines
  (one without a tab, which UER-py skips; one whose source fills seq_length, skipped; one whose target is cut
  at seq_length), both made here.
- prefixlm_2024.bin, prefixlm_2024_config.json: the model's state dict (as UER-py's save_model writes it) and
  its config (UER-py's 2024 form). Weights normal(0, 0.3), layer norms 1 + normal(0, 0.1) / normal(0, 0.1).
- prefixlm_2024_io.npz (eval mode, float32): `src`, `tgt_lm`, `seg` [6, 16], the batch of UER-py's
  PrefixlmDataloader over the dataset its preprocess.py wrote (`--data_processor prefixlm --seq_length 16`);
  `encoder_output`, `lm_logits` = target.lm.output_layer(encoder output) [6, 16, 33];
  `loss_tgt_lm` (and `correct_tgt_lm`, `denominator_tgt_lm`): UER-py's LmTarget.lm as it was until July 2023
  (commit 7c1f731: the loss over the positions whose tgt_lm > 0, i.e. every target token predicted from the
  position before it, the first one from the source's [SEP]); `loss_seg2`: the 5743050 LmTarget with
  prefix_lm_loss (the loss over the segment-2 positions: the first target token's prediction left out, and
  [PAD] (id 0) learnt after the final [SEP]); `loss_seg_gt0`: the 5743050 LmTarget without it (every real
  position, the source's labels 0 = [PAD] included).
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import torch

SEQ_LENGTH = 16
CONFIG = {"emb_size": 16, "feedforward_size": 32, "hidden_size": 16, "hidden_act": "gelu", "heads_num": 2,
          "layers_num": 2, "max_seq_length": 32, "dropout": 0.1, "data_processor": "prefixlm",
          "embedding": ["word", "pos", "seg"], "encoder": "transformer", "mask": "causal_with_prefix",
          "target": ["lm"]}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list("今天气很好我们去公园玩吧明要下雨了你想吃什么饭菜都可以的")
LINES = [
    "今天天气很好\t我们去公园玩吧",
    "明天要下雨了\t我们吃什么",
    "你想吃什么\t饭菜都可以",
    "今天我们去公园玩吧\t好的",
    "没有制表符的一行",  # one column: skipped
    "今天天气很好今天天气很好今天\t好",  # [CLS] + 14 + [SEP] = 16 = seq_length: no room for a target, skipped
    "好\t今天天气很好我们去公园玩吧明天要下雨了",  # the target is cut at seq_length
    "你好\t吃饭了吗",
]


def write_inputs(out_dir):
    vocab = os.path.join(out_dir, "prefixlm_vocab.txt")
    corpus = os.path.join(out_dir, "prefixlm_corpus.txt")
    chars = list(dict.fromkeys(CHARS))
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(SPECIALS + chars) + "\n")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(LINES) + "\n")
    return vocab, corpus


def init_weights(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):  # UER-py's LayerNorm: gamma, beta
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("beta"):
                p.normal_(0, 0.1)
            else:
                p.normal_(0, 0.3)


def main(uer_py, old_lm_target, out_dir):
    out_dir = os.path.abspath(out_dir)
    vocab_path, corpus_path = write_inputs(out_dir)
    work = os.path.join(uer_py, "prefixlm_tmp")
    os.makedirs(work, exist_ok=True)
    dataset_path = os.path.join(work, "dataset.pt")
    # UER-py's preprocess.py (reads models/special_tokens_map.json relative to its working directory)
    subprocess.run([sys.executable, "preprocess.py", "--corpus_path", corpus_path, "--vocab_path", vocab_path,
                    "--dataset_path", dataset_path, "--data_processor", "prefixlm", "--seq_length", str(SEQ_LENGTH)],
                   cwd=uer_py, check=True)
    os.chdir(uer_py)
    sys.path.insert(0, uer_py)
    import argparse

    from uer.model_builder import build_model
    from uer.opts import model_opts, tokenizer_opts, training_opts
    from uer.utils import str2dataloader, str2tokenizer
    from uer.utils.config import load_hyperparam

    config_path = os.path.join(out_dir, "prefixlm_2024_config.json")  # UER-py's 2024 form (models/bert/*.json)
    with open(config_path, "w") as f:
        json.dump(CONFIG, f, indent=2)
    parser = argparse.ArgumentParser()
    model_opts(parser)
    training_opts(parser)
    tokenizer_opts(parser)
    args = parser.parse_args(["--vocab_path", vocab_path, "--seq_length", str(SEQ_LENGTH)])
    args.config_path = config_path
    sys.argv = sys.argv[:1]  # load_hyperparam lets the script's own command line override the config
    args = load_hyperparam(args)
    args.instances_buffer_size = 1000
    args.whole_word_masking = args.span_masking = False
    args.span_geo_prob, args.span_max_length = 0.2, 10
    args.tokenizer = str2tokenizer["bert"](args)
    args.vocab = args.tokenizer.vocab
    loader = str2dataloader["prefixlm"](args, dataset_path, 6, 0, 1, 0, shuffle=False)
    src, tgt, seg = next(iter(loader))
    del loader

    model = build_model(args)
    init_weights(model)
    model.eval()
    arrays = {"src": src.numpy(), "tgt_lm": tgt.numpy(), "seg": seg.numpy()}
    with torch.no_grad():
        hidden = model.encoder(model.embedding(src, seg), seg)
        arrays["encoder_output"] = hidden.numpy()
        arrays["lm_logits"] = model.target.lm.output_layer(hidden).numpy()
        model.target.lm.prefix_lm_loss = True
        arrays["loss_seg2"] = np.array(float(model(src, tgt, seg)[0]))
        model.target.lm.prefix_lm_loss = False
        arrays["loss_seg_gt0"] = np.array(float(model(src, tgt, seg)[0]))
        spec = importlib.util.spec_from_file_location("lm_target_7c1f731", old_lm_target)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        target = old.LmTarget(SimpleNamespace(hidden_size=CONFIG["hidden_size"], has_lmtarget_bias=False),
                              len(args.vocab))
        target.load_state_dict(model.target.lm.state_dict())
        loss, correct, denominator = target.lm(hidden, tgt)
        arrays.update(loss_tgt_lm=np.array(float(loss)), correct_tgt_lm=np.array(float(correct)),
                      denominator_tgt_lm=np.array(float(denominator)))
    torch.save(model.state_dict(), os.path.join(out_dir, "prefixlm_2024.bin"))
    np.savez_compressed(os.path.join(out_dir, "prefixlm_2024_io.npz"), **arrays)
    shutil.rmtree(work)
    print({k: v.shape if v.ndim else float(v) for k, v in arrays.items()})


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3])
