import torch.nn as nn

from ..layers.activations import get_activation
from ..layers.cross_entropy import linear_cross_entropy
from ..layers.norms import build_layernorm
from ..errors import ConfigError
from ..registry import TARGETS


@TARGETS.register("mlm")
class MlmTarget(nn.Module):
    """Masked LM head: linear -> act -> layer norm -> vocabulary projection (tied to the word embedding
    when tie_weights). In training, vocabulary logits are computed only at the masked positions."""

    batch_keys = ("mlm_pos", "mlm_labels")
    perplexity = True  # the loss is a token-averaged cross-entropy over the vocabulary (dev figures: exp of it)
    masked_lm = True  # logits() predicts the token at every position (inspection.cloze)
    tied_weights = ("linear_2.weight",)  # tied to the word embedding when the config says tie_weights

    @staticmethod
    def check_config(config, source):
        if config.tie_weights and not config.factorized_embedding_parameterization \
                and config.emb_size != config.hidden_size:
            raise ConfigError(f"{source}: tie_weights needs emb_size == hidden_size")

    def __init__(self, config, vocab_size):
        super().__init__()
        self.linear_1 = nn.Linear(config.hidden_size, config.emb_size)
        self.act = get_activation(config.hidden_act)
        self.layer_norm = build_layernorm(config, config.emb_size)
        self.linear_2 = nn.Linear(config.emb_size, vocab_size)

    def logits(self, hidden, seg=None):
        return self.linear_2(self.layer_norm(self.act(self.linear_1(hidden))))

    def loss(self, hidden, batch):
        # mlm_pos: flat indices into batch*seq of the masked tokens; mlm_labels: their original ids
        pos, labels = batch["mlm_pos"], batch["mlm_labels"]
        picked = hidden.reshape(-1, hidden.size(-1)).index_select(0, pos)
        h = self.layer_norm(self.act(self.linear_1(picked)))
        loss, correct = linear_cross_entropy(h, self.linear_2.weight, self.linear_2.bias, labels)
        return {"loss": loss, "correct": correct, "count": labels.new_tensor(labels.numel())}
