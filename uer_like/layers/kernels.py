"""The CPU kernels, uer_like._kernels (csrc/kernels/: training.c, decoding.c), or None when they are not built
(every user then runs the same steps as torch ops). Modules bind it as `_kernels`, which tests replace to
run the torch-op paths."""
try:  # pragma: no cover - depends on the build
    from uer_like import _kernels as NATIVE
except ImportError:  # pragma: no cover
    NATIVE = None
