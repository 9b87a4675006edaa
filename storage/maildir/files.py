# -*- test-case-name: tests.storage.maildir.test_maildir_save -*-
"""
Small file helpers shared by the Maildir modules: atomic replacement of
control files and the mapping of lock failures to store errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time
from typing import Iterator

from storage.errors import LockUnavailable, StoreError

__all__ = ["atomic_write", "locked", "unique_name", "read_file", "LOCK_TIMEOUT"]

#: Seconds to wait for a control-file dotlock before giving up with
#: L{LockUnavailable}.  Dovecot waits 2 minutes for the uidlist lock; a
#: shorter wait keeps a session responsive, and the client can retry.
LOCK_TIMEOUT = 60.0

_counter_lock = threading.Lock()
_counter = 0


def _hostname() -> str:
    # The Maildir spec: "/" and ":" in the host name are written as octal
    # escapes, so that they never break a file name or its info part.
    host = socket.gethostname() or "localhost"
    return host.replace("/", "\\057").replace(":", "\\072")


HOSTNAME = _hostname()


def unique_name() -> str:
    """
    A Maildir unique name, C{<secs>.M<usecs>P<pid>Q<n>R<random>.<host>}, in
    the spirit of Dovecot's C{maildir_filename_generate}: unique across
    processes (pid), threads and calls (counter) and nodes (host name), and
    the random part protects against pid reuse after a crash on NFS.
    """
    global _counter
    with _counter_lock:
        _counter += 1
        n = _counter
    now = time.time()
    secs = int(now)
    usecs = int((now - secs) * 1_000_000)
    rand = os.urandom(4).hex()
    return f"{secs}.M{usecs}P{os.getpid()}Q{n}R{rand}.{HOSTNAME}"


def read_file(path: str) -> bytes | None:
    """The content of C{path}, or C{None} if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def atomic_write(path: str, data: bytes, fsync: bool = True, mode: int = 0o600) -> None:
    """
    Replace C{path} with C{data} by writing a temporary file beside it and
    renaming it over the old one (DESIGN.md rule 4): a crash leaves either
    the old or the new file, never a torn one.

    @raises StoreError: the file could not be written (the message names it).
    """
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".{base}.tmp.{unique_name()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from e
    if fsync:
        fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    """
    Make the renames into C{directory} durable: fsync(2) of a file does not
    cover its name, so after a power failure a renamed file could be back
    under its old name (a message in C{tmp/} whose UID the uidlist already
    gives, a uidlist from before the change).  A file system that cannot
    fsync a directory (EINVAL) is left to its own ordering.

    @raises StoreError: the flush failed (the change may not be durable).
    """
    try:
        fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise StoreError(f"cannot open {directory}: {e.strerror or e}") from e
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise StoreError(f"cannot flush {directory}: {e.strerror or e}") from e
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: str, timeout: float | None = None) -> Iterator[None]:
    """
    Hold the NFS-safe dotlock C{path + ".lock"} (DESIGN.md rule 3) for the
    body of the C{with} statement.

    @param timeout: seconds to wait; L{LOCK_TIMEOUT} when C{None}.

    @raises LockUnavailable: the lock could not be taken (timeout, or the
        directory does not let us create it); the locking layer's message
        is kept, since it says which file and why.
    """
    # Imported here so that the pure parsers of this package (uidlist,
    # filename, keywords) stay importable without the locking package.
    from locking import CannotLock, DotLock, LockError, LockTimeout

    lock = DotLock(path)
    try:
        lock.acquire(timeout=LOCK_TIMEOUT if timeout is None else timeout)
    except (LockTimeout, CannotLock) as e:
        raise LockUnavailable(str(e)) from e
    except LockError as e:
        raise LockUnavailable(str(e)) from e
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise LockUnavailable(f"cannot create lock for {path}: {e.strerror}") from e
        raise
    try:
        yield
    finally:
        lock.release()
