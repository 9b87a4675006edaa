# -*- test-case-name: tests.locking.test_chain -*-
"""
Lock chains: the ordered list of lock methods a store is configured with,
e.g. C{["dotlock", "fcntl"]} for an mbox shared with mutt and procmail.

The locks are taken in order and released in reverse, all or nothing, within
one timeout for the whole chain.  Read and write chains may differ; build
each with L{LockChain.from_names}.

Method names:
  - C{"dotlock"}: L{locking.dotlock.DotLock} (NFS-safe);
  - C{"dotlock_try"}: the dotlock, but if its directory is not writable for
    us (L{CannotLock}), log a warning and go on without it, as Dovecot's
    C{dotlock_try} and Python's C{mailbox} do.  Use only where the other
    methods of the chain are enough;
  - C{"fcntl"}: L{locking.fcntl_lock.FcntlLock} (OFD locks);
  - C{"flock"}: L{locking.flock.FlockLock}.

Blocking: run C{acquire} in a thread pool, never on the reactor thread.
"""

from __future__ import annotations

from typing import Callable, Sequence

from twisted.logger import Logger
from zope.interface import implementer

from locking._retry import Backoff
from locking.dotlock import DotLock, DotlockSettings
from locking.errors import CannotLock, LockError
from locking.fcntl_lock import FcntlLock
from locking.flock import FlockLock
from locking.interfaces import ILock

_log = Logger(namespace="locking.chain")


@implementer(ILock)
class _DotlockTry:
    """
    A dotlock that is skipped, with a warning, when it cannot be created.

    @ivar skipped: C{True} if the last acquire went on without the dotlock.
    """

    def __init__(self, lock: DotLock) -> None:
        self.lock = lock
        self.skipped = False
        self._held = False

    def __repr__(self) -> str:
        return f"<dotlock_try {self.lock!r} skipped={self.skipped}>"

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self, timeout: float | None = None) -> None:
        try:
            self.lock.acquire(timeout)
            self.skipped = False
        except CannotLock as e:
            _log.warn("Going on without dotlock (dotlock_try): {error}", error=str(e))
            self.skipped = True
        self._held = True

    def release(self) -> None:
        if self._held and not self.skipped:
            self.lock.release()
        self._held = False

    def refresh(self) -> None:
        if not self.skipped:
            self.lock.refresh()

    def __enter__(self) -> _DotlockTry:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


_Factory = Callable[[str, "DotlockSettings | None", bool], ILock]

_METHODS: dict[str, _Factory] = {
    "dotlock": lambda path, settings, exclusive: DotLock(path, settings),
    "dotlock_try": lambda path, settings, exclusive: _DotlockTry(DotLock(path, settings)),
    "fcntl": lambda path, settings, exclusive: FcntlLock(path, exclusive),
    "flock": lambda path, settings, exclusive: FlockLock(path, exclusive),
}

#: The method names L{LockChain.from_names} accepts (for config validation).
METHOD_NAMES = frozenset(_METHODS)


@implementer(ILock)
class LockChain:
    """
    Several locks taken in order, released in reverse, all or nothing.

    @ivar locks: the L{ILock} providers, in acquisition order.
    @ivar timeout: the default timeout of the whole chain (seconds).
    """

    def __init__(self, locks: Sequence[ILock], timeout: float = 30.0) -> None:
        self.locks = list(locks)
        self.timeout = timeout
        self._taken: list[ILock] = []

    @classmethod
    def from_names(
        cls,
        names: Sequence[str],
        path: str,
        dotlock_settings: DotlockSettings | None = None,
        exclusive: bool = True,
    ) -> LockChain:
        """
        Build a chain from configuration names.

        @param names: e.g. C{["dotlock", "fcntl"]}; see the module docstring.
        @param path: the file the chain protects.
        @param dotlock_settings: settings of the dotlock (also its timeout is
            the chain's default timeout).
        @param exclusive: whether the kernel locks are exclusive (for
            writing) or shared (for reading).  A dotlock is always
            exclusive.
        @raises ValueError: an unknown or repeated name.
        """
        if isinstance(names, str):
            raise ValueError("names must be a sequence of method names, not a string")
        unknown = [n for n in names if n not in _METHODS]
        if unknown:
            raise ValueError(f"unknown lock method(s) {unknown!r}; known:"
                             f" {sorted(_METHODS)!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"repeated lock method in {list(names)!r}")
        if "dotlock" in names and "dotlock_try" in names:
            raise ValueError("use either dotlock or dotlock_try, not both")
        settings = dotlock_settings if dotlock_settings is not None else DotlockSettings()
        locks = [_METHODS[n](path, settings, exclusive) for n in names]
        return cls(locks, timeout=settings.timeout)

    def __repr__(self) -> str:
        return f"<LockChain {self.locks!r}>"

    @property
    def held(self) -> bool:
        """
        C{True} while the whole chain is held.
        """
        return bool(self.locks) and len(self._taken) == len(self.locks)

    @property
    def server_time(self) -> float | None:
        """
        The L{DotLock.server_time} of the chain's dotlock while held (the
        file server's clock at acquisition), or C{None} if the chain has
        no dotlock held.
        """
        for lock in self._taken:
            inner = lock.lock if isinstance(lock, _DotlockTry) else lock
            if isinstance(inner, DotLock) and inner.held:
                return inner.server_time
        return None

    def acquire(self, timeout: float | None = None) -> None:
        """
        Take every lock in order within one deadline; on any failure release
        those already taken (in reverse) and re-raise.

        @param timeout: seconds for the whole chain; C{None}: L{timeout}.
        """
        if self._taken:
            raise LockError("lock chain already held")
        if timeout is None:
            timeout = self.timeout
        # Only its deadline is used: each lock does its own backoff.
        deadline = Backoff(timeout, 0, 0)
        try:
            for lock in self.locks:
                lock.acquire(deadline.remaining())
                self._taken.append(lock)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """
        Release the taken locks in reverse order.  One failing release does
        not keep the others held.
        """
        while self._taken:
            lock = self._taken.pop()
            try:
                lock.release()
            except Exception:
                _log.failure("Releasing {lock} failed", lock=lock)

    def refresh(self) -> None:
        """
        Refresh every lock of the chain.

        @raises locking.errors.LockLost: one of them was lost.
        """
        for lock in self._taken:
            lock.refresh()

    def __enter__(self) -> LockChain:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
