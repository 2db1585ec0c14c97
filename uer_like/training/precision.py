"""Mixed precision in one place: which precision a run uses (and why), the autocast context, the grad scaler.

`--precision auto` (pretraining's default) picks bf16 autocast where the hardware multiplies bf16 natively
and fp32 elsewhere:
- CUDA: bf16 when torch.cuda.is_bf16_supported() (Ampere and later), else fp32 (fp16 needs loss scaling and is
  asked for explicitly);
- CPU: bf16 when /proc/cpuinfo lists bf16 matrix instructions: AMX tiles (`amx_bf16`, Sapphire Rapids and
  later) or AVX512_BF16 dot products (`avx512_bf16`: AMD Zen 4, Cooper Lake). The second was measured before it
  became a rule: on a 2-core AMD EPYC Zen 4 (AVX512_BF16, no AMX), torch 2.13, BERT-mini 32 x 128 trains
  1.34x faster under bf16 autocast than in fp32 (benchmarks/README.md, "Unpadding and bf16"). Without either, fp32.
`--precision fp32` (or bf16, fp16) overrides the choice; bf16 asked for on a CPU without those instructions is
logged as a warning (precision_warning): torch has no fast bf16 matrix product there, and BERT-mini trained
35x slower in bf16 than in fp32 on an AVX2-only AMD EPYC Zen 3 (benchmarks/README.md, "Training speed").
"""
import contextlib

import torch

from ..flags import PRECISIONS  # noqa: F401  (declared with the training flags)

AMP_CHOICES = ("auto", "off", "fp16", "bf16")  # fine-tuning's deprecated --amp (off: fp32)
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
CPU_BF16_MATRIX_FLAGS = ("amx_bf16", "avx512_bf16")  # flags that make bf16 autocast pay on CPU (see above)


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (Linux), or an empty set where /proc/cpuinfo is not readable."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(requested, device, flags=None):
    """-> (precision, reason): the precision to train in for `requested` (auto, fp32, fp16, bf16) on `device`,
    and a sentence saying why (for the log)."""
    if requested != "auto":
        return requested, "asked for with --precision"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"auto: {torch.cuda.get_device_name(device)} computes in bf16 natively"
        return "fp32", f"auto: {torch.cuda.get_device_name(device)} has no bf16 support (fp16 is --precision fp16)"
    if device.type == "cpu":
        flags = cpu_flags() if flags is None else set(flags)
        have = [f for f in CPU_BF16_MATRIX_FLAGS if f in flags]
        if have:
            return "bf16", f"auto: the CPU multiplies bf16 natively ({', '.join(have)}); --precision fp32 to turn it off"
        return "fp32", "auto: the CPU has no bf16 matrix instructions (no amx_bf16 or avx512_bf16 flag)"
    return "fp32", f"auto: no bf16 rule for device type {device.type!r}"


def precision_warning(precision, device, flags=None):
    """-> a sentence to log as a warning when `precision` will be slow on `device`, else None: bf16 on a CPU
    whose flags (when readable) show no bf16 matrix instructions."""
    if precision != "bf16" or device.type != "cpu":
        return None
    flags = cpu_flags() if flags is None else set(flags)
    if not flags or any(f in flags for f in CPU_BF16_MATRIX_FLAGS):
        return None
    return ("bf16 on a CPU without bf16 matrix instructions (no amx_bf16 or avx512_bf16 flag): torch has no fast "
            "bf16 matrix product there, which can be many times slower than fp32 (35x for BERT-mini on an AVX2-only "
            "CPU); --precision auto or fp32 trains in fp32")


def choose_precision(requested, device, say=None, warn=None):
    """-> (precision, dtype): resolve_precision's choice for `requested` on `device` and its autocast dtype (None
    for fp32). On the main process the caller passes say (the choice and its reason, one line) and warn
    (precision_warning's sentence, when there is one): pretraining and fine-tuning set up precision through this
    one function."""
    precision, why = resolve_precision(requested, device)
    if say is not None:
        say(f"precision {precision} ({why})")
    slow = precision_warning(precision, device) if warn is not None else None
    if slow:
        warn(slow)
    return precision, DTYPES[precision]


def autocast(device, dtype):
    """torch.autocast for a dtype, or a no-op context for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device, dtype):
    """A loss scaler, enabled only for fp16 on CUDA (a disabled one passes everything through)."""
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16 and device.type == "cuda")
