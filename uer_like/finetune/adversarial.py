"""FGM adversarial training (Miyato et al. 2017, "Adversarial training methods for semi-supervised text
classification") on the word embedding, as UER-py's --use_adv --adv_type fgm.

After the clean backward pass, the word-embedding matrix E is moved along its gradient g by
r = epsilon * g / ||g|| (the L2 norm over the whole matrix, so ||r|| = epsilon); the loss at E + r is
back-propagated too (its gradient adds to the clean one), then E is restored before the optimizer step.
UER-py perturbs every parameter whose name contains "embedding" (position and segment tables and the
embedding layer norm too); here only the word embedding is, as in the paper.
"""
import torch


class FGM:
    def __init__(self, model, epsilon=1.0, param_name="embedding.word.embedding.weight"):
        params = dict(model.named_parameters())
        if param_name not in params:
            raise ValueError(f"FGM: the model has no parameter {param_name}")
        self.param = params[param_name]
        self.epsilon = epsilon
        self.backup = None
        self.delta = None  # the last perturbation (for inspection and tests)

    @torch.no_grad()
    def attack(self):
        """Add epsilon * g / ||g|| to the word embedding (nothing when the gradient is zero or not finite)."""
        p = self.param
        self.backup = p.detach().clone()
        self.delta = None
        if p.grad is None:
            return
        norm = torch.linalg.vector_norm(p.grad.float())
        if norm > 0 and torch.isfinite(norm):
            self.delta = (self.epsilon * p.grad.float() / norm).to(p.dtype)
            p.add_(self.delta)

    @torch.no_grad()
    def restore(self):
        if self.backup is not None:
            self.param.copy_(self.backup)
        self.backup = None
