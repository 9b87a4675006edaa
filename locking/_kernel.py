# -*- test-case-name: tests.locking.test_fcntl_lock -*-
"""
What L{locking.fcntl_lock.FcntlLock} and L{locking.flock.FlockLock} share:
opening the file, the in-process table, and the retry loop around a
non-blocking kernel call.

Kernel locks are tried without blocking and retried with backoff, because a
blocking call cannot be given a timeout.  All calls block the calling thread:
run them in a thread pool, never on the reactor thread.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from locking._retry import Backoff
from locking.errors import LockError, LockTimeout
from locking.table import TABLE, LockTable

# Kernel locks are released at once when the holder dies, so there is no
# stale state to wait out and retries can stay short.
DEFAULT_TIMEOUT = 30.0
RETRY_MIN = 0.0005
RETRY_MAX = 0.02

# What a non-blocking lock call returns when somebody else holds the lock.
_BUSY = frozenset({errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK})


class KernelFileLock:
    """
    Base class: an exclusive or shared kernel lock on the file C{path}
    itself.  Subclasses provide C{kind}, L{_try_lock}, L{_unlock} and
    optionally L{_describe_holder}.

    @ivar path: the locked file (it must exist).
    @ivar exclusive: C{True} for a write lock (the file is opened O_RDWR),
        C{False} for a shared one (O_RDONLY).
    """

    kind = "kernel"

    def __init__(self, path: str, exclusive: bool = True, *,
                 _table: LockTable | None = None) -> None:
        self.path = path
        self.exclusive = exclusive
        self._table = _table if _table is not None else TABLE
        self._fd: int | None = None
        self._key: tuple[str, int, int] | None = None
        # The process that took the lock (see release()).
        self._pid = 0

    def __repr__(self) -> str:
        mode = "exclusive" if self.exclusive else "shared"
        return f"<{type(self).__name__} {self.path!r} {mode} held={self.held}>"

    @property
    def held(self) -> bool:
        """
        C{True} while we hold the lock.
        """
        return self._fd is not None

    def acquire(self, timeout: float | None = None) -> None:
        """
        Take the lock: first this process's table entry (waiting for other
        threads), then the kernel lock (waiting for other processes), both
        within one deadline.

        @param timeout: seconds; C{None} means 30, C{0} a single attempt.
        @raises LockTimeout: the lock stayed held until the deadline.
        @raises LockError: the file cannot be opened or locked.
        """
        if self.held:
            raise LockError(f"{self.path} is already locked by this object", self.path)
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        backoff = Backoff(timeout, RETRY_MIN, RETRY_MAX)
        flags = os.O_RDWR if self.exclusive else os.O_RDONLY
        # O_CLOEXEC: a delivery agent we spawn must not inherit (and keep)
        # our lock.  O_NOCTTY in case the path is a terminal by mistake.
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
        try:
            fd = os.open(self.path, flags)
        except OSError as e:
            raise LockError(f"cannot open {self.path} to lock it: {e}", self.path) from e
        try:
            st = os.fstat(fd)
            # One table per lock kind: fcntl and flock locks are separate in
            # the kernel (except flock emulated over NFS, see flock.py).
            key = (self.kind, st.st_dev, st.st_ino)
            if not self._table.acquire(key, self, self.exclusive, backoff.deadline):
                raise LockTimeout(
                    f"{self.path} is {self.kind}-locked by another thread of this"
                    f" process; gave up after {backoff.waited():.1f} s",
                    self.path, holder=f"pid {os.getpid()} (this process)",
                    waited=backoff.waited())
            try:
                while True:
                    try:
                        self._try_lock(fd)
                        break
                    except OSError as e:
                        if e.errno not in _BUSY:
                            raise LockError(f"cannot {self.kind}-lock {self.path}:"
                                            f" {e}", self.path) from e
                    if not backoff.sleep():
                        holder = self._describe_holder(fd)
                        by = f" by {holder}" if holder else ""
                        raise LockTimeout(
                            f"{self.path} is {self.kind}-locked{by}; gave up after"
                            f" waiting {backoff.waited():.1f} s",
                            self.path, holder=holder, waited=backoff.waited())
            except BaseException:
                self._table.release(key, self)
                raise
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._key = key
        self._pid = os.getpid()

    def release(self) -> None:
        """
        Unlock and close the file; does nothing if not held.  In a forked
        child the inherited descriptor is only closed, leaving the parent's
        lock alone.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._pid == os.getpid():
                self._unlock(fd)
            # else: a forked child shares our open file description, so
            # unlocking here would release the parent's lock; closing the
            # child's descriptor does not.
        except OSError:
            # close() below drops the lock anyway.
            pass
        finally:
            os.close(fd)
            assert self._key is not None
            self._table.release(self._key, self)
            self._key = None

    def refresh(self) -> None:
        """
        Nothing to do: the kernel releases the lock when the holder dies, so
        it never goes stale.
        """
        if not self.held:
            raise LockError(f"{self.path} is not locked", self.path)

    def __enter__(self) -> Any:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # -- for subclasses -------------------------------------------------------

    def _try_lock(self, fd: int) -> None:
        """
        Try once, without blocking.

        @raises OSError: with EAGAIN/EACCES/EWOULDBLOCK if somebody holds it.
        """
        raise NotImplementedError

    def _unlock(self, fd: int) -> None:
        raise NotImplementedError

    def _describe_holder(self, fd: int) -> str | None:
        """
        @return: who holds the lock, if the kernel says.
        """
        return None
