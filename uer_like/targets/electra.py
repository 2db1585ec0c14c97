"""ELECTRA pretraining (replaced-token detection, Clark et al. 2020): the `electra` target.

A small generator (its own transformer encoder over the model's embeddings, which it shares with the
discriminator, and the `electra_gen` MLM head tied to the word embedding) predicts the masked tokens of the
mlm processor's masks; a token is sampled from its softmax at each masked position (Gumbel-max, no gradient
through the sample); the discriminator (the model's own encoder and the `electra_disc` head) reads the
corrupted sequence and predicts for every real token whether it was replaced. A sample equal to the original
counts as original. loss = generator MLM loss + electra_lambda x discriminator loss.

Sizes: generator_hidden_size / generator_heads_num / generator_feedforward_size / generator_layers_num
(config keys; defaults: a quarter of the discriminator's hidden size and heads, 4 x hidden, as many layers).

The sampling noise comes from a torch.Generator seeded with the batch's `electra_seed`, which the collator
derives from (seed, epoch, the micro-batch's first instance): a function of the optimizer step, so a resumed
run draws exactly what an uninterrupted one draws.

Parameters: target.electra.generator.* (encoder), target.electra.generator_head.* (= electra_gen),
target.electra.discriminator_head.* (= electra_disc). `electra_parts(model)` splits a trained model into a
discriminator Model (target electra_disc: Hugging Face ElectraForPreTraining) and a generator Model (target
electra_gen: ElectraForMaskedLM), which save_model writes in any format.
"""
import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import ENCODERS, TARGETS
from .electra_disc import ElectraDiscriminatorTarget
from .electra_gen import ElectraGeneratorTarget

logger = logging.getLogger("uer_like")
GENERATOR_KEYS = ("generator_hidden_size", "generator_heads_num", "generator_feedforward_size",
                  "generator_layers_num")


def generator_sizes(config):
    """(hidden, heads, feed-forward, layers) of the generator."""
    hidden = config.generator_hidden_size or max(1, config.hidden_size // 4)
    heads = config.generator_heads_num or max(1, config.heads_num // 4)
    ff = config.generator_feedforward_size or 4 * hidden
    layers = config.generator_layers_num or config.layers_num
    return hidden, heads, ff, layers


def check_config(config, source="config"):
    others = sorted({"mlm", "electra_gen", "electra_disc"} & set(config.target))
    if others:
        raise ConfigError(f"{source}: the 'electra' target holds the generator and discriminator heads itself; "
                          f"remove {others} from 'target'")
    if config.encoder != "transformer":
        raise ConfigError(f"{source}: the 'electra' target needs the transformer encoder, got '{config.encoder}'")
    if config.mask != "fully_visible":
        raise ConfigError(f"{source}: the 'electra' target needs mask 'fully_visible', got '{config.mask}'")
    for key in GENERATOR_KEYS:
        v = getattr(config, key)
        if v is not None and v <= 0:
            raise ConfigError(f"{source}: config key '{key}' must be positive, got {v}")
    hidden, heads, _, _ = generator_sizes(config)
    if hidden % heads:
        raise ConfigError(f"{source}: generator_hidden_size {hidden} is not divisible by generator_heads_num {heads}")
    if not config.electra_lambda > 0:
        raise ConfigError(f"{source}: config key 'electra_lambda' must be positive, got {config.electra_lambda}")


def generator_config(config):
    """The generator as a model of its own: its sizes, the shared embedding, the electra_gen head."""
    hidden, heads, ff, layers = generator_sizes(config)
    return config.replace(hidden_size=hidden, heads_num=heads, feedforward_size=ff, layers_num=layers,
                          factorized_embedding_parameterization=config.emb_size != hidden,
                          parameter_sharing=False, target=["electra_gen"],
                          **{k: None for k in GENERATOR_KEYS})


def discriminator_config(config):
    return config.replace(target=["electra_disc"], **{k: None for k in GENERATOR_KEYS})


@TARGETS.register("electra")
class ElectraTarget(nn.Module):
    """Generator + discriminator heads; the loss needs the model (embedding and discriminator encoder).

    logits: the discriminator's [batch, seq] (replaced > 0). Training batch: `mlm_pos`, `mlm_labels` (the mlm
    processor's masks, src already masked) and `electra_seed`."""

    batch_keys = ("mlm_pos", "mlm_labels", "electra_seed")
    report_names = ("electra_gen", "electra_disc")
    tied_weights = ("generator_head.linear_2.weight",)  # the generator's vocabulary projection
    check_config = staticmethod(check_config)

    def __init__(self, config, vocab_size):
        super().__init__()
        gen = generator_config(config)
        hidden, heads, ff, layers = generator_sizes(config)
        if hidden > config.hidden_size or (hidden == config.hidden_size and layers > config.layers_num):
            logger.warning("ELECTRA: the generator (hidden %d, %d layers) is larger than the discriminator (hidden %d, "
                           "%d layers); the paper finds generators 1/4-1/2 the discriminator's size work best",
                           hidden, layers, config.hidden_size, config.layers_num)
        self.generator = ENCODERS.get(gen.encoder, key="encoder")(gen)
        self.generator_head = ElectraGeneratorTarget(gen, vocab_size)
        self.discriminator_head = ElectraDiscriminatorTarget(config, vocab_size)
        self.weight = config.electra_lambda

    def logits(self, hidden, seg=None):
        return self.discriminator_head.logits(hidden, seg)

    def model_loss(self, model, batch):
        src, seg = batch["src"], batch["seg"]
        pos, labels = batch["mlm_pos"], batch["mlm_labels"]
        # generator: MLM on the masked input
        gen_hidden = self.generator(model.embed(src, seg), seg)
        head = self.generator_head
        picked = gen_hidden.reshape(-1, gen_hidden.size(-1)).index_select(0, pos)
        logits = F.linear(head.layer_norm(head.act(head.linear_1(picked))), head.linear_2.weight,
                          head.linear_2.bias).float()  # [n_masked, vocab]
        gen_loss = F.cross_entropy(logits, labels)
        gen = {"loss": gen_loss, "correct": (logits.argmax(-1) == labels).sum(),
               "count": labels.new_tensor(labels.numel())}
        # a sample from the generator's softmax (Gumbel-max), without gradient
        with torch.no_grad():
            rng = torch.Generator(device=logits.device)
            rng.manual_seed(int(batch["electra_seed"]))
            u = torch.rand(logits.shape, generator=rng, device=logits.device, dtype=torch.float32)
            gumbel = -torch.log(-torch.log(u.clamp(1e-9, 1.0 - 1e-7)))
            sampled = (logits.detach() + gumbel).argmax(-1)
            flat = src.reshape(-1)
            original = flat.index_copy(0, pos, labels)
            corrupted = flat.index_copy(0, pos, sampled)
            rtd = (corrupted != original).long().view_as(src)
            corrupted = corrupted.view_as(src)
        # discriminator: which tokens were replaced
        hidden = model.encode(corrupted, seg)
        disc = self.discriminator_head.loss(hidden, {"tgt_rtd": rtd, "seg": seg})
        disc["replaced"] = (rtd * (seg > 0)).sum()
        disc["baseline"] = disc["count"] - disc["replaced"]  # what predicting "original" everywhere gets right
        return {"loss": gen_loss + self.weight * disc["loss"], "correct": disc["correct"], "count": disc["count"],
                "parts": {"electra_gen": gen, "electra_disc": disc}}

    def loss(self, hidden, batch):
        raise ValueError("the electra target computes its loss with the model (model_loss)")


def electra_parts(model):
    """A model with the `electra` target -> (discriminator Model [electra_disc], generator Model [electra_gen]),
    sharing nothing with it (copies)."""
    Model = type(model)  # the model's own class: a target does not import the model module above it
    cfg = model.config
    if "electra" not in cfg.target:
        raise ConfigError(f"electra_parts: the model's targets are {cfg.target}, not ['electra']")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    emb = {k: v for k, v in state.items() if k.startswith("embedding.")}

    def sub(prefix, new):
        return {new + k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    with torch.random.fork_rng(devices=[]):  # building the parts draws initial weights: leave the caller's RNG
        disc = Model(discriminator_config(cfg), model.vocab_size)
        gen = Model(generator_config(cfg), model.vocab_size)
    disc.load_state_dict({**emb, **sub("encoder.", "encoder."),
                          **sub("target.electra.discriminator_head.", "target.electra_disc.")}, strict=True)
    gen_state = {**emb, **sub("target.electra.generator.", "encoder."),
                 **sub("target.electra.generator_head.", "target.electra_gen.")}
    gen.load_state_dict(gen_state, strict=True)
    dtype = next(model.parameters()).dtype
    return disc.to(dtype), gen.to(dtype)
