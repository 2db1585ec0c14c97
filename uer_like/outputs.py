"""Output locations: checked before any work, written atomically, failures in one line.

`check_writable` runs at start for every place a run will write (checkpoints, final weights, tensorboard,
a dataset), so a read-only or full location is reported before hours of work, not at the first save.
`atomic_write` writes NAME.tmp-PID, fsyncs and renames; on failure the partial file is removed and the
error names the path and the cause (a full disk shows as "No space left on device" even where the writer,
e.g. torch.save, wraps the OSError in a RuntimeError). `remove_stale_tmp` deletes the temporary files of
runs that were killed (their PID is no longer alive).
"""
import contextlib
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


@contextlib.contextmanager
def atomic_path(path, error=OSError, what="file"):
    """Yields PATH.tmp-PID for the block to write (by name, in any way); then fsyncs it and renames it over
    `path`, so that `path` is either its old self or the whole new file, never a part. On failure the temporary
    file is removed and `error` is raised with one line naming `path` and the cause (an interruption removes it
    and goes on as it was)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        _remove_quietly(tmp)
        raise error(f"could not write {what} {path}: {describe_write_error(e, path)}") from e
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def atomic_write(path, write, error=OSError, what="file"):
    """write(binary file object) into `path` through atomic_path."""
    with atomic_path(path, error, what) as tmp:
        with open(tmp, "wb") as f:
            write(f)
    return path


class OutputLock:
    """An exclusive lock on an output location (a checkpoint directory): a second run writing the same place is
    refused at start, in one line naming the run that holds it, instead of both runs resuming from and
    overwriting each other's checkpoints.

    The lock is `flock` on DIRECTORY/.lock, so the kernel releases it when the holder exits, however it exits
    (kill -9 included); the file records the holder (PID, host, start time) for the message, and is removed at
    release. A lock file left by a killed run is taken over and logged. Where the file system has no flock
    (some network file systems), the run goes on with a warning."""

    def __init__(self, directory, what="--checkpoint_dir", error=OSError, name=".lock"):
        self.directory, self.what, self.error = directory, what, error
        self.path = os.path.join(directory, name)
        self.fd = None

    def acquire(self):
        import fcntl

        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise self.error(f"{self.what} {self.directory} is a file, not a directory")
        while True:
            try:
                os.makedirs(self.directory, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise self.error(f"{self.what} {os.path.abspath(self.directory)} is not writable: "
                                 f"{os.strerror(e.errno) if e.errno else e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe_holder(_read_holder(fd))
                os.close(fd)
                raise self.error(f"{self.what} {self.directory} is in use by another run ({holder}); two runs writing "
                                 "one place would overwrite each other's files: wait for it to end, or give this run "
                                 "another --output_model_path" + (" or --checkpoint_dir" if self.what ==
                                                                  "--checkpoint_dir" else "")) from None
            except OSError as e:  # no flock here (ENOLCK, EOPNOTSUPP on some network file systems)
                logger.warning("%s %s: cannot lock it (%s); make sure no other run writes there", self.what,
                               self.directory, os.strerror(e.errno) if e.errno else e)
                os.close(fd)
                return self
            try:  # the file may have been removed by its holder's release between our open and our flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_holder(fd)
        if previous.get("pid"):
            logger.info("%s %s: taking over the lock left by run %s, which is no longer running", self.what,
                        self.directory, _describe_holder(previous))
        self._write_holder(fd)
        self.fd = fd
        return self

    @staticmethod
    def _write_holder(fd):
        import json
        import socket
        import time

        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, me, 0)

    def release(self):
        """Remove the lock file, then unlock (removed first, so that no one waiting can hold a lock on a file
        that is gone while a newcomer creates another)."""
        if self.fd is None:
            return
        import fcntl

        try:
            try:
                os.remove(self.path)
            except OSError:
                pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd):
    import json

    try:
        data = os.pread(fd, 4096, 0)
        info = json.loads(data.decode("utf-8")) if data else {}
    except (OSError, ValueError):
        info = {}
    return info if isinstance(info, dict) else {}


def _describe_holder(info):
    if "pid" not in info:
        return "holder unknown"
    return f"PID {info['pid']} on {info.get('host', '?')}, started {info.get('started', '?')}"
