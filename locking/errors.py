# -*- test-case-name: tests.locking.test_dotlock -*-
"""
Errors raised (and warned) by the lock primitives.

The hierarchy is deliberately small so that the storage layer can translate
it in one place: L{LockError} is the base, L{LockTimeout} means "somebody
else holds it, try again later", L{CannotLock} means "this can never work
until an administrator changes something" and L{LockLost} reports that a lock
we believed we held was removed or replaced behind our back.
"""

from __future__ import annotations


class LockError(Exception):
    """
    Base class of every locking failure.

    @ivar path: the path whose lock failed, when known.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class LockTimeout(LockError):
    """
    The lock could not be acquired before the deadline because another
    holder kept it.

    @ivar holder: what is known about the holder (for a dotlock, the content
        of the lock file, e.g. C{"mx1.example.com 4242"}); C{None} when
        unknown.
    @ivar age: how long the lock had been held, in seconds, judged by the
        file server's clock (the lock file's mtime compared with a freshly
        created probe file's mtime); C{None} when unknown.
    @ivar waited: how long we waited, in seconds.
    """

    def __init__(
        self,
        message: str,
        path: str | None = None,
        holder: str | None = None,
        age: float | None = None,
        waited: float | None = None,
    ) -> None:
        super().__init__(message, path)
        self.holder = holder
        self.age = age
        self.waited = waited


class CannotLock(LockError):
    """
    The lock can never be taken as configured, for example because the
    process may not create files in the directory of a dotlock (a 0775 mail
    spool, a read-only file system).  The message names the directory, its
    mode and owner and what an administrator could change.  Nothing must be
    written without the lock, so callers must not "proceed anyway" unless the
    configuration asked for it (C{dotlock_try}).

    @ivar directory: the directory in which the lock could not be created.
    """

    def __init__(
        self, message: str, path: str | None = None, directory: str | None = None
    ) -> None:
        super().__init__(message, path)
        self.directory = directory


class LockLost(LockError, UserWarning):
    """
    A lock we held was removed or replaced by somebody else (for example a
    stale-lock breaker that judged us dead, or an administrator).

    It is a L{UserWarning} as well as a L{LockError}: L{release} only warns
    with it (the damage, if any, is done and raising from a C{finally} block
    would hide the original error), while C{refresh()} raises it, because a
    long-running holder that learns of the loss must stop writing.
    """
