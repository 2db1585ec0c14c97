"""Mixed precision in one place: which autocast dtype a run uses, the autocast context, the grad scaler."""
import contextlib

import torch

AMP_CHOICES = ("auto", "off", "fp16", "bf16")


def amp_dtype(device, amp="auto"):
    """-> the autocast dtype for --amp on a device, or None for full precision (always on CPU)."""
    if device.type != "cuda" or amp in ("off", "fp32", None):
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device, dtype):
    """torch.autocast for a dtype, or a no-op context for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device, dtype):
    """A loss scaler, enabled only for fp16 on CUDA (a disabled one passes everything through)."""
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16 and device.type == "cuda")
