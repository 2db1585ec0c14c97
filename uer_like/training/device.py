"""--device, as every script reads it: auto (CUDA when available, else the CPU), cpu, cuda or cuda:N."""
import torch

from ..errors import ConfigError

DEVICE_TYPES = ("cpu", "cuda")


def resolve_device(name="auto", flag="--device"):
    """The torch.device `name` asks for; a ConfigError in one line for a name that is not a device, a device
    type the project does not train on, or CUDA on a machine without it (never a silent run on the CPU)."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{flag} {name!r} is not a device; choices: auto, cpu, cuda, cuda:N") from None
    if dev.type not in DEVICE_TYPES:
        raise ConfigError(f"{flag} {name}: the project runs on {' or '.join(DEVICE_TYPES)}; choices: auto, cpu, "
                          "cuda, cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{flag} {name}: CUDA is not available on this machine (torch {torch.__version__}); "
                              "use --device cpu, or install torch's CUDA build")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev
