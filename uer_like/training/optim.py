"""Optimizers (AdamW, LAMB) and learning-rate schedules as pure functions of the optimizer step."""
import math

import torch
from ..errors import ConfigError

SCHEDULERS = ("linear", "cosine", "constant")
OPTIMIZERS = ("adamw", "lamb")


def lr_at(step, total_steps, base_lr, warmup_ratio, scheduler="linear"):
    """Learning rate for optimizer step `step` (0-based): linear warmup over warmup_ratio x total_steps,
    then linear decay to 0, cosine decay to 0, or constant."""
    warmup = int(total_steps * warmup_ratio)
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if scheduler == "constant":
        return base_lr
    progress = (step - warmup) / max(1, total_steps - warmup)
    if scheduler == "linear":
        return base_lr * max(0.0, 1.0 - progress)
    if scheduler == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    raise ConfigError(f"unknown scheduler {scheduler!r}; valid: {', '.join(SCHEDULERS)}")


def param_groups(model, weight_decay, lr_scale=None):
    """No weight decay on biases and layer-norm parameters (as BERT and UER-py).

    lr_scale: optional function parameter name -> factor on the learning rate (e.g. layer-wise decay); the
    parameters are then grouped by (decay, factor) and each group carries its factor as "lr_scale", which
    set_lr applies. Without it: two groups, factor 1."""
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        wd = 0.0 if name.endswith(("bias", "gamma", "beta")) or p.dim() == 1 else weight_decay
        scale = float(lr_scale(name)) if lr_scale is not None else 1.0
        groups.setdefault((wd != 0.0, scale), {"params": [], "weight_decay": wd, "lr_scale": scale})["params"].append(p)
    if lr_scale is None:  # the two classic groups, decay first, even when one is empty
        return [groups.get((True, 1.0), {"params": [], "weight_decay": weight_decay, "lr_scale": 1.0}),
                groups.get((False, 1.0), {"params": [], "weight_decay": 0.0, "lr_scale": 1.0})]
    return list(groups.values())


def set_lr(optimizer, lr):
    """Set every group's learning rate to lr x its "lr_scale" (1 when absent)."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2019): Adam moments with a per-tensor trust ratio ||w|| / ||update||."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                t = state["step"]
                update = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt().add_(group["eps"]))
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                w_norm, u_norm = p.norm(), update.norm()
                trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.add_(update * trust, alpha=-group["lr"])
        return loss


def build_optimizer(name, model, lr, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6, fused=False, lr_scale=None):
    groups = param_groups(model, weight_decay, lr_scale)
    if name == "adamw":
        kw = {"fused": True} if fused else {"foreach": True}
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **kw)
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
