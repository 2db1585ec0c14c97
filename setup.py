"""Install uer_like: `pip install -e .` or `pip install .` (builds the native preprocessor with the system C compiler)."""
import glob
import os

from setuptools import Extension, find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def shipped_packages():
    """configs/ and models/, installed inside the package as uer_like/configs and uer_like/models (where
    uer_like/resources.py finds them when there is no checkout: pip install ., a wheel). Every directory
    under them becomes a data-only package: {package name: directory}."""
    packages = {}
    for package, top in (("uer_like.configs", "configs"), ("uer_like.models", "models")):
        for path, subdirs, _ in os.walk(top):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith((".", "__")))
            rel = os.path.relpath(path, top)
            packages[package if rel == "." else package + "." + rel.replace(os.sep, ".")] = path
    return packages


SHIPPED = shipped_packages()

native_sources = sorted(glob.glob(os.path.join("csrc", "*.c")))
ext_modules = []
if native_sources:
    extra = ["-O3", "-std=c99", "-Wall", "-Wno-unused-function"]
    if os.environ.get("UER_LIKE_ASAN"):
        extra = ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer", "-std=c99"]
    ext_modules.append(
        Extension(
            "uer_like._native",
            sources=native_sources,
            include_dirs=["csrc"],
            extra_compile_args=extra,
            extra_link_args=["-fsanitize=address"] if os.environ.get("UER_LIKE_ASAN") else [],
        )
    )

setup(
    name="uer_like",
    version="0.1.0",
    description="A UER-style pluggable pretraining framework: embeddings, encoders and targets chosen by JSON configs",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read()
    if os.path.exists(os.path.join(HERE, "README.md"))
    else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["uer_like", "uer_like.*"]) + list(SHIPPED),
    package_dir=SHIPPED,
    package_data={name: ["*"] for name in SHIPPED},
    ext_modules=ext_modules,
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",  # requirements.txt pins the CPU build; install it first
        "numpy",
        "sentencepiece",
        "jieba",
        "tensorboard",
        "tqdm",
        "safetensors",
    ],
    extras_require={
        "test": ["pytest", "transformers"],
        "tf": ["tensorflow"],
    },
    include_package_data=True,
)
