import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.activations import get_activation
from ..layers.norms import build_layernorm
from ..registry import TARGETS


@TARGETS.register("pert")
class PertTarget(nn.Module):
    """PERT's permuted LM (Cui et al. 2022): the tokens at some positions were shuffled among themselves
    (masking.py, strategy pert); at each such position the model predicts the position, in the same row, that
    its token came from. A pointer head: the hidden state at the permuted position goes through
    linear -> act -> layer norm (BERT's MLM transform); its dot products with the encoder outputs of every real
    position of its row, scaled by 1/sqrt(hidden), are the logits (padding is excluded).

    Training: mlm_pos, flat indices into batch*seq of the permuted positions, and mlm_labels, the original
    positions within the row (so src[row, label] was the token now at the position)."""

    batch_keys = ("mlm_pos", "mlm_labels")

    def __init__(self, config, vocab_size):
        super().__init__()
        self.linear_1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = get_activation(config.hidden_act)
        self.layer_norm = build_layernorm(config, config.hidden_size)
        self.scale = config.hidden_size ** -0.5

    def _query(self, h):
        # scaled as attention scores are: unscaled, the dot products of two unit-variance vectors have a
        # standard deviation of sqrt(hidden) at initialisation, a saturated softmax the model first unlearns
        return self.layer_norm(self.act(self.linear_1(h))) * self.scale

    def logits(self, hidden, seg=None):
        """[batch, seq, seq]: the logit of row b's position i pointing at position j (padding: -inf)."""
        scores = torch.bmm(self._query(hidden), hidden.transpose(1, 2)).float()
        if seg is not None:
            scores = scores.masked_fill((seg == 0).unsqueeze(1), float("-inf"))
        return scores

    def loss(self, hidden, batch):
        pos, labels = batch["mlm_pos"], batch["mlm_labels"]
        B, L, H = hidden.shape
        rows = torch.div(pos, L, rounding_mode="floor")
        q = self._query(hidden.reshape(-1, H).index_select(0, pos))  # [M, H]: the permuted positions only
        # the transform runs on the permuted positions only; scattered back into their rows (zeros elsewhere),
        # one batched product scores each query against the positions of its own row, and its rows are taken back
        qfull = q.new_zeros(B * L, q.size(-1)).index_copy(0, pos, q).view(B, L, -1)
        scores = torch.bmm(qfull, hidden.transpose(1, 2).to(qfull.dtype)).reshape(B * L, L).index_select(0, pos)
        scores = scores.float().masked_fill((batch["seg"] == 0).index_select(0, rows), float("-inf"))
        loss = F.cross_entropy(scores, labels)
        correct = (scores.argmax(-1) == labels).sum()
        return {"loss": loss, "correct": correct, "count": labels.new_tensor(labels.numel())}


def pert_encoder(model):
    """A model with the `pert` target -> a copy without it (targets: none), the shape HFL released PERT in
    (BertModel weights: the pointer head has no Hugging Face class). Used by save_model(format="hf")."""
    Model = type(model)  # the model's own class: a target does not import the model module above it
    cfg = model.config
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("target.pert.")}
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's RNG
        bare = Model(cfg.replace(target=[t for t in cfg.target if t != "pert"]), model.vocab_size)
    bare.load_state_dict(state, strict=True)
    return bare.to(next(model.parameters()).dtype)
