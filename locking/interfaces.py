# -*- test-case-name: tests.locking.test_chain -*-
"""
The interface the stores depend on.

Stores receive L{ILock} providers (usually a L{locking.chain.LockChain}) and
never construct lock primitives themselves, so tests can substitute a
fault-injecting implementation.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class ILock(Interface):
    """
    An exclusive (or shared) lock on one file.

    All methods may block: they are meant to run in a thread pool
    (C{deferToThreadPool}), never on the reactor thread, because the
    underlying file system may be NFS and may hang.
    """

    held = Attribute(
        "C{True} while this object holds the lock (after a successful"
        " L{acquire} and before L{release})."
    )

    def acquire(timeout=None):
        """
        Take the lock, waiting (retries with exponential backoff and jitter)
        at most C{timeout} seconds.

        @param timeout: seconds to wait; C{None} means the implementation's
            configured default, C{0} means a single attempt.
        @raises locking.errors.LockTimeout: another holder kept the lock
            until the deadline.
        @raises locking.errors.CannotLock: the lock can never be taken as
            configured (e.g. the directory is not writable).
        @raises locking.errors.LockError: any other failure; nothing is held
            afterwards.
        """

    def release():
        """
        Give the lock up.  Never raises because the lock was lost meanwhile:
        that is logged and warned about (L{locking.errors.LockLost}).
        Releasing a lock that is not held does nothing.
        """

    def refresh():
        """
        Show that the holder is alive (a dotlock's mtime is touched so it
        does not become stale); a no-op for kernel locks.

        @raises locking.errors.LockLost: the lock was removed or replaced.
        """

    def __enter__():
        """
        Acquire with the default timeout and return the lock.
        """

    def __exit__(excType, excValue, traceback):
        """
        Release the lock; exceptions are not suppressed.
        """
