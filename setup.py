"""Install uer_like: `pip install -e .` or `pip install .` (builds the native preprocessor with the C compiler)."""
import glob
import os

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

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


class BuildExt(build_ext):
    """Builds the extension with Unicode tables of this interpreter's version: csrc/unicode_tables.h is
    committed for one version; for another, scripts/gen_unicode_tables.py writes a header for this one into
    the build directory, which csrc/wordpiece.c includes instead (the tokenizer must match unicodedata here)."""

    def build_extensions(self):
        import importlib.util
        import unicodedata

        spec = importlib.util.spec_from_file_location("gen_unicode_tables",
                                                      os.path.join(HERE, "scripts", "gen_unicode_tables.py"))
        gen = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gen)
        if gen.committed_version() != unicodedata.unidata_version:
            include = os.path.join(self.build_temp, "unicode_tables_" + unicodedata.unidata_version)
            os.makedirs(include, exist_ok=True)
            with open(os.path.join(include, "unicode_tables.h"), "w", encoding="utf-8") as f:
                f.write(gen.generate())
            print(f"csrc/unicode_tables.h is Unicode {gen.committed_version()}; this Python's unicodedata is "
                  f"{unicodedata.unidata_version}: building with tables generated for it in {include}")
            header = os.path.abspath(os.path.join(include, "unicode_tables.h"))
            for ext in self.extensions:
                ext.define_macros = list(ext.define_macros or []) + [("UER_LIKE_UNICODE_TABLES", f'"{header}"')]
                ext.depends = list(ext.depends or []) + [header]
        super().build_extensions()

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
kernel_sources = sorted(glob.glob(os.path.join("csrc", "kernels", "*.c")))
if kernel_sources:
    # training kernels: float reductions may be reassociated (vectorised); these are compile flags only,
    # not -ffast-math at link time, which would change the whole process's denormal handling
    fp = ["-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros", "-ffinite-math-only",
          "-ffp-contract=off"]
    ext_modules.append(
        Extension(
            "uer_like._kernels",
            sources=kernel_sources,
            depends=sorted(glob.glob(os.path.join("csrc", "kernels", "*.h"))),
            extra_compile_args=["-O3", "-std=gnu99", "-Wall", "-pthread"] + fp,
            extra_link_args=["-pthread"],
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
    cmdclass={"build_ext": BuildExt},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",  # requirements.txt pins the CPU build; install it first
        "numpy",
        "sentencepiece",
        "tokenizers",  # byte-level BPE (GPT-2 / RoBERTa-English releases), imported only when used
        "jieba",
        "tensorboard",
        "tqdm",
        "safetensors",
    ],
    extras_require={
        "test": ["pytest", "transformers"],
        "hf": ["transformers"],  # Hugging Face directories through transformers itself (the round trip in README)
    },
    include_package_data=True,
)
