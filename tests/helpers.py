"""Small shared helpers for tests."""
import errno
import os
import runpy
import sys

from conftest import ROOT, VOCAB


def preprocess(tmp_path, corpus_text=None, corpus_path=None, name="ds.bin", **kw):
    from uer_like.data.preprocess import run_preprocess

    if corpus_path is None:
        corpus_path = os.path.join(tmp_path, "corpus.txt")
        with open(corpus_path, "wb") as f:
            f.write(corpus_text if isinstance(corpus_text, bytes) else corpus_text.encode("utf-8"))
    out = os.path.join(tmp_path, name)
    kw.setdefault("vocab_path", VOCAB)
    kw.setdefault("dup_factor", 1)
    kw.setdefault("max_invalid_fraction", 1.0)  # tests of bad lines check their handling, not the threshold
    manifest = run_preprocess(corpus_path=corpus_path, dataset_path=out, progress=False, **kw)
    return out, manifest


def run_cli(script, argv, capsys):
    """A script's command line (a path under the checkout) in this process -> (exit status, stderr)."""
    old = sys.argv
    sys.argv = [script] + [str(a) for a in argv]
    code = 0
    try:
        runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


def read_only(path, monkeypatch):
    """chmod a directory read-only; as root (where chmod does not stop a write) refuse writes under it with
    EACCES instead, as the kernel would for another user."""
    os.chmod(path, 0o555)
    probe = os.path.join(path, ".probe")
    try:
        open(probe, "w").close()
        os.remove(probe)
        blocked = False
    except PermissionError:
        blocked = True
    if not blocked:  # root
        import uer_like.outputs as O

        real = os.open
        prefix = str(path)

        def deny(p, flags, *a, **k):
            if str(p).startswith(prefix) and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), p)
            return real(p, flags, *a, **k)

        monkeypatch.setattr(O.os, "open", deny)


def libasan():
    """Path of gcc's AddressSanitizer runtime, or None when gcc or libasan is missing."""
    import shutil
    import subprocess

    gcc = shutil.which("gcc")
    if not gcc:
        return None
    try:
        out = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out and os.path.isabs(out) and os.path.exists(out) else None


def build_asan_extension(tmp_path):
    """Build uer_like._native with AddressSanitizer into tmp_path; returns the .so path."""
    import glob
    import subprocess
    import sys

    from conftest import ROOT

    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp")],
        cwd=ROOT, env=dict(os.environ, UER_LIKE_ASAN="1"), capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    sos = glob.glob(str(tmp_path / "lib" / "uer_like" / "_native*.so"))
    assert sos, "no extension built"
    return sos[0]
