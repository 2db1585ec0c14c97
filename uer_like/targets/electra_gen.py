from ..layers.activations import get_activation
from ..registry import TARGETS
from .mlm import MlmTarget


@TARGETS.register("electra_gen")
class ElectraGeneratorTarget(MlmTarget):
    """ELECTRA's generator head: the masked-LM head (linear hidden->emb, act, layer norm, vocabulary
    projection tied to the word embedding), with GELU whatever `hidden_act` says, as google-research/electra
    and Hugging Face ElectraForMaskedLM (`generator_predictions`, `generator_lm_head`) hard-code it.
    Same parameter names, batch keys and loss as `mlm`."""

    def __init__(self, config, vocab_size):
        super().__init__(config, vocab_size)
        self.act = get_activation("gelu")
