"""Writes tiny encoder-decoder checkpoints with UER-py's own code, and the numbers UER-py's forward pass gives.

    git -C UER-py archive COMMIT uer pretrain.py models/t5 models/t5-v1_1 models/bart models/pegasus \
        models/special_tokens_map.json | tar -x -C /tmp/uerpy-COMMIT
    python tests/data/uer_py_fixtures/make_seq2seq.py /tmp/uerpy-COMMIT tests/data/uer_py_fixtures NAME...

NAME is `<model>_<year>` with <model> one of MODELS below and <year> the era of the checkout (2023: 7c1f731,
the last commit before July 2023; 2024: 5743050). Only torch (and six, which uer.utils imports) is needed.

For each NAME it writes:
- NAME_config.json: UER-py's own models/<dir>/<file> at that commit with the sizes shrunk (SIZES), every other
  key as UER-py ships it.
- NAME.bin: `model.state_dict()` saved with uer/model_saver.py's save_model, of the model pretrain.py builds:
  pretrain.py's own argument parser and load_hyperparam (its main() run with `trainer.train_and_validate`
  replaced by a function that keeps the args), UER-py's BertTokenizer on VOCAB (a 100-token vocabulary), and
  uer.model_builder.build_model(args) as uer/trainer.py calls it. Instead of the trainer's N(0, 0.02), every
  parameter is drawn from N(0, 0.1) and every norm scale from 1 + N(0, 0.1), so that differences show at 1e-5;
  the tying UER-py's Model.__init__ made is kept (drawn in place, Parameter by Parameter).
- NAME_io.npz (eval mode, float32): inputs `src`, `seg` [2, 12] (row 1 padded after 8 tokens), `tgt_in`,
  `tgt_out`, `tgt_seg` [2, 10] (row 1 padded after 7; tgt_out = tgt_in shifted left, ending with [SEP]), laid
  out as UER-py's t5/bart/gsg data loaders do; outputs computed as uer/models/model.py Model.forward runs them:
  `embedding_output` = embedding(src, seg), `encoder_output` = encoder(embedding_output, seg),
  `tgt_embedding_output` = tgt_embedding(tgt_in, tgt_seg), `decoder_output` = decoder(encoder_output,
  tgt_embedding_output, (seg, tgt_seg)), `logits` [2, 10, 100] = the LM target's output_layer on
  decoder_output, `lm_loss` = the loss Model.forward(src, tgt_out, seg, tgt_in, tgt_seg) returns; and
  `head_tied` = whether UER-py's model holds the LM head and the word embedding as one Parameter.
"""
import json
import os
import sys

import numpy as np
import torch

# <model> -> the UER-py config it starts from (models/<path>), the same at both commits
MODELS = {"t5": "t5/small_config.json", "bart": "bart/base_config.json", "pegasus": "pegasus/base_config.json",
          "t5v11": "t5-v1_1/small_config.json"}
SIZES = {"emb_size": 32, "hidden_size": 32, "feedforward_size": 64, "heads_num": 4, "layers_num": 2,
         "max_seq_length": 32}
ERA = {"2023": "7c1f731", "2024": "5743050"}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(5, 100)]
SRC_LEN, TGT_LEN = 12, 10


def shrunk_config(uer_py, model):
    with open(os.path.join(uer_py, "models", MODELS[model]), encoding="utf-8") as f:
        config = json.load(f)
    config.update(SIZES)
    if "decoder_layers_num" in config:  # since July 2023; before, the decoder had layers_num layers
        config["decoder_layers_num"] = SIZES["layers_num"]
    if "attention_head_size" in config:  # t5-v1_1: heads of their own size
        config["attention_head_size"] = 8
    if "max_seq_length" not in json.load(open(os.path.join(uer_py, "models", MODELS[model]), encoding="utf-8")):
        del config["max_seq_length"]  # t5: no position table
    return config


def pretrain_args(config_path, vocab_path, model_path):
    """The args namespace UER-py's pretrain.py builds (its own parser, load_hyperparam, tokenizer)."""
    import pretrain
    import uer.trainer as trainer
    from uer.utils import str2tokenizer

    kept = {}
    trainer.train_and_validate = lambda args: kept.setdefault("args", args)
    argv = sys.argv
    sys.argv = ["pretrain.py", "--config_path", config_path, "--vocab_path", vocab_path,
                "--output_model_path", model_path]
    try:
        pretrain.main()
    finally:
        sys.argv = argv
    args = kept["args"]
    args.tokenizer = str2tokenizer[args.tokenizer](args)  # as trainer.train_and_validate
    args.vocab = args.tokenizer.vocab
    return args


def batch():
    g = torch.Generator().manual_seed(1)
    src = torch.zeros(2, SRC_LEN, dtype=torch.long)
    seg = torch.zeros(2, SRC_LEN, dtype=torch.long)
    tgt = torch.zeros(2, TGT_LEN + 1, dtype=torch.long)
    tgt_seg = torch.zeros(2, TGT_LEN, dtype=torch.long)
    for i, (n, m) in enumerate(((SRC_LEN, TGT_LEN), (8, 7))):
        src[i, :n] = torch.randint(5, len(VOCAB), (n,), generator=g)
        src[i, 0], src[i, n - 1] = 2, 3  # [CLS] ... [SEP]
        seg[i, :n] = 1
        tgt[i, :m + 1] = torch.randint(5, len(VOCAB), (m + 1,), generator=g)
        tgt[i, 0], tgt[i, m] = 2, 3
        tgt_seg[i, :m] = 1
    tgt_in, tgt_out = tgt[:, :-1].clone(), tgt[:, 1:].clone()
    tgt_in[tgt_seg == 0] = 0
    tgt_out[tgt_seg == 0] = 0
    return src, seg, tgt_in, tgt_out, tgt_seg


def lm_head(model):
    target = model.target
    return target.lm if hasattr(target, "lm") else target  # 2024: target.lm; 2023: one flat target module


def word_weight(model):
    emb = model.embedding
    return emb.word.embedding.weight if hasattr(emb, "word") else emb.word_embedding.weight


def make(uer_py, out_dir, name):
    model_name, year = name.rsplit("_", 1)
    config = shrunk_config(uer_py, model_name)
    config_path = os.path.join(out_dir, f"{name}_config.json")
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    vocab_path = os.path.join(out_dir, "seq2seq_vocab.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    model_path = os.path.join(out_dir, f"{name}.bin")
    args = pretrain_args(config_path, vocab_path, model_path)
    from uer.model_saver import save_model
    from uer.model_builder import build_model
    from uer.utils.seed import set_seed

    set_seed(args.seed)
    model = build_model(args)
    torch.manual_seed(7)
    with torch.no_grad():
        for n, p in model.named_parameters():  # each Parameter once: tied ones stay tied
            if n.endswith("gamma") or ("layer_norm" in n and n.endswith("weight")):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.1)
    save_model(model, model_path)
    model.eval()
    src, seg, tgt_in, tgt_out, tgt_seg = batch()
    with torch.no_grad():
        emb = model.embedding(src, seg)
        enc = model.encoder(emb, seg)
        tgt_emb = model.tgt_embedding(tgt_in, tgt_seg)
        dec = model.decoder(enc, tgt_emb, (seg, tgt_seg))
        logits = lm_head(model).output_layer(dec)
        loss = model(src, tgt_out, seg, tgt_in, tgt_seg)[0]
    arrays = dict(src=src, seg=seg, tgt_in=tgt_in, tgt_out=tgt_out, tgt_seg=tgt_seg, embedding_output=emb,
                  encoder_output=enc, tgt_embedding_output=tgt_emb, decoder_output=dec, logits=logits,
                  lm_loss=loss)
    arrays = {k: v.numpy() for k, v in arrays.items()}
    arrays["head_tied"] = np.array(lm_head(model).output_layer.weight is word_weight(model))
    np.savez_compressed(os.path.join(out_dir, f"{name}_io.npz"), **arrays)
    state = torch.load(model_path, weights_only=True)
    print(name, f"UER-py {ERA[year]}", len(state), "tensors;", "head tied:", bool(arrays["head_tied"]),
          "loss", float(loss), os.path.getsize(model_path), "bytes")


def main(uer_py, out_dir, names):
    out_dir = os.path.abspath(out_dir)
    os.chdir(uer_py)  # uer.utils.constants reads models/special_tokens_map.json relative to the working directory
    sys.path.insert(0, uer_py)
    for name in names:
        make(uer_py, out_dir, name)


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3:])
