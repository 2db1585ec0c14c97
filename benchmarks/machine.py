"""The CPU a benchmark ran on, named beside its figures: the model and the flags that change the results."""

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_description():
    """'MODEL; flag, flag' from /proc/cpuinfo (Linux), or 'unknown CPU'."""
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
        flags = next(l for l in lines if l.startswith("flags")).split()
        name = next(l for l in lines if l.startswith("model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return "unknown CPU"
    return f"{name}; " + ", ".join(f for f in FLAGS if f in flags)
