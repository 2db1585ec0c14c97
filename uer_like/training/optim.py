"""Optimizers (AdamW, LAMB) and learning-rate schedules as pure functions of the optimizer step."""
import math
from collections import defaultdict

import torch
from ..errors import ConfigError

from ..flags import OPTIMIZERS, SCHEDULERS  # noqa: F401  (declared with the training flags)


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


class Optimizer:
    """What the trainers need of an optimizer, with torch.optim.Optimizer's param_groups, state and
    state_dict layout (so checkpoints move between this and torch's optimizers), but not torch's class:
    its first use imports torch._dynamo, about a second of every command's start-up on CPU.

    Subclasses implement `_update(group, params, grads, states)` for the parameters of a group that have a
    gradient; a new parameter's state is `_init_state(p)`. One whose kernel divides each gradient by a scale as
    it reads it sets `takes_grad_scale` and takes `grad_scale` in `_update` (clipping.py folds the clipping
    factor into it)."""

    takes_grad_scale = False

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            group = {**self.defaults, **g, "params": list(g["params"])}
            _check_hyper(group)
            self.param_groups.append(group)
        if not any(g["params"] for g in self.param_groups):
            raise ValueError("the optimizer got no parameters")

    def _init_state(self, p):
        raise NotImplementedError

    def _update(self, group, params, grads, states):
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None, grad_scale=None):
        """One update of every parameter that has a gradient; grad_scale (a float32 scalar tensor, optimizers
        with `takes_grad_scale` only): each gradient is divided by it first."""
        if grad_scale is not None and not self.takes_grad_scale:
            raise TypeError(f"{type(self).__name__} does not take a grad_scale")
        extra = {} if grad_scale is None else {"grad_scale": grad_scale}
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            states = []
            for p in params:
                if not self.state[p]:
                    self.state[p] = self._init_state(p)
                states.append(self.state[p])
            if params:
                self._update(group, params, [p.grad for p in params], states, **extra)
        return loss

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def state_dict(self):
        """{"state": {index: state}, "param_groups": [{hyper-parameters..., "params": [indices]}]}, indices
        counting the parameters of every group in order, as torch.optim's."""
        index, groups = {}, []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Hyper-parameters and state from a state_dict of this optimizer or of torch.optim's counterpart;
        state tensors move to their parameter's device (and floating ones to its dtype; "step" stays
        float32)."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved, self.param_groups)):
            raise ValueError("the optimizer state does not fit these parameters: groups of sizes "
                             f"{[len(s['params']) for s in saved]} saved, {[len(g['params']) for g in self.param_groups]} here")
        by_key = {}  # the saved keys (indices, or names from torch.distributed.checkpoint) by position
        for s, g in zip(saved, self.param_groups):
            by_key.update(zip(s["params"], g["params"]))
            g.update({k: v for k, v in s.items() if k != "params"})
        self.state = defaultdict(dict)
        for key, st in state_dict["state"].items():
            if key in by_key:
                p = by_key[key]
                self.state[p] = {k: _to_param(k, v, p) for k, v in st.items()}


def _check_hyper(group):
    """The checks torch.optim's constructors make: a negative learning rate would ascend the loss."""
    lr, eps, wd = group.get("lr", 0.0), group.get("eps", 0.0), group.get("weight_decay", 0.0)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"invalid learning rate: {lr}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"invalid epsilon value: {eps}")
    if not (math.isfinite(wd) and wd >= 0):
        raise ValueError(f"invalid weight_decay value: {wd}")
    for i, b in enumerate(group.get("betas", ())):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"invalid beta parameter at index {i}: {b}")


def _to_param(key, value, p):
    if not isinstance(value, torch.Tensor):
        return value
    if key == "step":
        return value.to(dtype=torch.float32, device=p.device)
    return value.to(dtype=p.dtype if value.is_floating_point() else value.dtype, device=p.device)


class AdamW(Optimizer):
    """AdamW (Loshchilov & Hutter 2019) with torch's fused kernel, as torch.optim.AdamW(fused=True)
    computes it (the same update to the bit; a test holds it to that), on every device. grad_scale: each
    gradient is divided by it inside the kernel's pass (and the divided gradient written back), as
    torch.optim.AdamW does with a grad scaler's scale."""

    takes_grad_scale = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=False,
                                      maximize=False, foreach=None, capturable=False, differentiable=False,
                                      fused=True, decoupled_weight_decay=True))

    def _init_state(self, p):
        return {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def _update(self, group, params, grads, states, grad_scale=None):
        b1, b2 = group["betas"]
        parts = {}  # the fused kernel takes one device and dtype at a time
        for p, g, s in zip(params, grads, states):
            lists = parts.setdefault((p.device, p.dtype), ([], [], [], [], []))
            for lst, t in zip(lists, (p, g, s["exp_avg"], s["exp_avg_sq"], s["step"])):
                lst.append(t)
        for (device, _), (ps, gs, ms, vs, steps) in parts.items():
            scale = None if grad_scale is None else grad_scale.to(device=device, dtype=torch.float32)
            torch._foreach_add_(steps, 1)
            torch._fused_adamw_(ps, gs, ms, vs, [], steps, amsgrad=False, lr=group["lr"], beta1=b1, beta2=b2,
                                weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                                grad_scale=scale, found_inf=None)


class Lamb(Optimizer):
    """LAMB (You et al. 2019): Adam moments with a per-tensor trust ratio ||w|| / ||update||."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _init_state(self, p):
        return {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    def _update(self, group, params, grads, states):
        b1, b2 = group["betas"]
        for p, grad, state in zip(params, grads, states):
            state["step"] += 1
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            t = state["step"]
            update = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt().add_(group["eps"]))
            if group["weight_decay"]:
                update.add_(p, alpha=group["weight_decay"])
            w_norm, u_norm = p.norm(), update.norm()
            trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
            p.add_(update * trust, alpha=-group["lr"])


def build_optimizer(name, model, lr, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6, lr_scale=None):
    groups = param_groups(model, weight_decay, lr_scale)
    if name == "adamw":
        return AdamW(groups, lr=lr, betas=betas, eps=eps)
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
