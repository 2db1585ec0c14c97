"""Output locations: checked before any work, written atomically, failures in one line.

`check_writable` runs at start for every place a run will write (checkpoints, final weights, tensorboard,
a dataset), so a read-only or full location is reported before hours of work, not at the first save.
`atomic_write` writes NAME.tmp-PID, fsyncs and renames; on failure the partial file is removed and the
error names the path and the cause (a full disk shows as "No space left on device" even where the writer,
e.g. torch.save, wraps the OSError in a RuntimeError). `remove_stale_tmp` deletes the temporary files of
runs that were killed (their PID is no longer alive).
"""
import errno
import logging
import os
import re
import shutil
import uuid

logger = logging.getLogger("uer_like")
MIN_FREE_BYTES = 1 << 20


def first_os_error(exc):
    """The first OSError in an exception's cause/context chain (torch.save wraps it in a RuntimeError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def describe_write_error(exc, path):
    """A short cause for a failed write of `path`: the OS error's text, or for an opaque writer error the
    free space left where it was writing."""
    ose = first_os_error(exc)
    if ose is not None:
        return os.strerror(ose.errno)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    try:
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path)) or ".").free
        if free < MIN_FREE_BYTES:
            return f"{text} (the disk is full: {free} bytes free)"
    except OSError:
        pass
    return text


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def remove_stale_tmp(directory, pattern):
    """Remove entries of `directory` matching `pattern` (a regex whose group "pid" is the writer's PID) whose
    writer is no longer alive. Returns the removed names."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    rx = re.compile(pattern)
    for name in names:
        m = rx.match(name)
        if not m or _pid_alive(int(m.group("pid"))):
            continue
        p = os.path.join(directory, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.remove(p)
        except OSError:
            continue
        removed.append(name)
    if removed:
        logger.info("%s: removed %d temporary file(s) of killed runs: %s", directory, len(removed),
                    ", ".join(sorted(removed)[:5]))
    return removed


def check_writable(directory, what, need_bytes=MIN_FREE_BYTES, error=OSError):
    """Create `directory` if needed and check that a file can be written in it and that `need_bytes` are free;
    raise `error` (an error class of errors.py) with one line naming the location otherwise."""
    directory = os.path.abspath(directory or ".")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise error(f"{what} {directory} is a file, not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".uer_like_write_test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as e:
        raise error(f"{what} {directory} is not writable: {os.strerror(e.errno) if e.errno else e}") from None
    free = shutil.disk_usage(directory).free
    need = max(int(need_bytes), MIN_FREE_BYTES)
    if free < need:
        raise error(f"{what} {directory}: {os.strerror(errno.ENOSPC)} ({free / 1e6:.1f} MB free, at least "
                    f"{need / 1e6:.1f} MB needed)")


def check_output_file(path, what, error=OSError, need_bytes=MIN_FREE_BYTES):
    """check_writable for the directory of output file `path` (flag `what`), which must not be a directory."""
    if os.path.isdir(path):
        raise error(f"{what} {path} is a directory; give a file path")
    check_writable(os.path.dirname(os.path.abspath(path)), f"{what}: the directory", need_bytes, error)


def atomic_write(path, write, error=OSError, what="file"):
    """write(file object) into PATH.tmp-PID, fsync, rename over `path`. On failure the temporary file is
    removed and `error` is raised with one line naming `path` and the cause."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise error(f"could not write {what} {path}: {describe_write_error(e, path)}") from e
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return path
