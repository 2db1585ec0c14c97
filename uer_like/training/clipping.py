"""Gradient clipping by the total norm (torch.nn.utils.clip_grad_norm_'s rule), folded into the optimizer's pass
where the optimizer can take it.

clip_grad_norm_ computes the total norm of the gradients, then multiplies every gradient by
min(max_norm / (norm + 1e-6), 1): a full pass over the gradients (8.8M values for BERT-mini) before the optimizer's
own pass over them. torch's fused AdamW kernel (optim.AdamW) divides each gradient by a `grad_scale` as it reads
it (and writes the divided gradient back), so handing it 1 / that factor clips in the optimizer's pass and saves
the other: `ClipPlan.norm` takes the total norm with the function clip_grad_norm_ uses (the same value, to the
bit), `ClipPlan.step` runs the optimizer with the scale.

Where the fold does not apply, the plain path (clip_grad_norm_, then the optimizer through the grad scaler) runs:
an optimizer without `takes_grad_scale` (LAMB, torch's own), an enabled fp16 grad scaler (its unscale and its
skip of an overflowed step go through scaler.step), and FSDP's DTensor parameters (their norm is gathered by
clip_grad_norm_'s DTensor path).

The updates differ from the plain path's only in the rounding of g / (1 / c) against g x c (within float32's
resolution); without clipping (factor 1) the scale is exactly 1 and the update the same to the bit.
"""
import torch

EPS = 1e-6  # clip_grad_norm_'s: max_norm / (norm + EPS)


def folds(optimizer, scaler, params):
    """Whether clipping can be folded into `optimizer`'s step: it takes a grad_scale, the fp16 scaler is off,
    and no parameter is a DTensor (FSDP)."""
    if not getattr(optimizer, "takes_grad_scale", False):
        return False
    if scaler is not None and scaler.is_enabled():
        return False
    return not any(hasattr(p, "to_local") for p in params)


def total_norm(params):
    """The total 2-norm of the parameters' gradients, as clip_grad_norm_ computes it (torch.nn.utils.get_total_norm
    over the gradients that exist)."""
    grads = [p.grad for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads, 2.0, error_if_nonfinite=False, foreach=None)


def unclip_scale(norm, max_norm):
    """1 / min(max_norm / (norm + 1e-6), 1): what the fused kernel divides each gradient by (exactly 1 when the
    norm is within max_norm)."""
    coef = torch.clamp(float(max_norm) / (norm + EPS), max=1.0)
    return (1.0 / coef).to(torch.float32)


class ClipPlan:
    """Clipping for one run's model, optimizer and grad scaler: `norm(max_norm)` before the non-finite guard,
    `step()` if the guard lets the update through."""

    def __init__(self, model, optimizer, scaler):
        self.params = list(model.parameters())
        self.optimizer, self.scaler = optimizer, scaler
        self.fused = folds(optimizer, scaler, self.params)
        self._scale = None

    def norm(self, max_norm):
        """The gradients' total norm (a gathered tensor under FSDP), clipped to max_norm: on the plain path here,
        on the fused path in `step`."""
        if self.fused:
            norm = total_norm(self.params)
            self._scale = unclip_scale(norm, max_norm)
            return norm
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: a DTensor

    def step(self):
        """The optimizer's update with the clipped gradients (through the grad scaler on the plain path)."""
        if self.fused:
            scale, self._scale = self._scale, None
            self.optimizer.step(grad_scale=scale)
        else:
            self.scaler.step(self.optimizer)
