# -*- test-case-name: tests.locking.test_flock -*-
"""
Whole-file BSD C{flock()} locks.

C{flock} locks belong to the open file description, so each L{FlockLock}
(which opens its own descriptor) excludes every other, in this process or
another; the in-process table still makes threads wait on a condition
variable rather than poll.  Over NFS, Linux emulates C{flock} with C{fcntl}
byte-range locks, so a chain holding both C{fcntl} and C{flock} on one NFS
file may conflict with itself there: configure only one of them for NFS.
"""

from __future__ import annotations

import fcntl

from zope.interface import implementer

from locking._kernel import KernelFileLock
from locking.interfaces import ILock


@implementer(ILock)
class FlockLock(KernelFileLock):
    """
    A C{flock()} lock on the file C{path} (exclusive: C{LOCK_EX} on a
    descriptor opened O_RDWR; shared: C{LOCK_SH} on one opened O_RDONLY).
    """

    kind = "flock"

    def _try_lock(self, fd: int) -> None:
        fcntl.flock(fd, (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
                    | fcntl.LOCK_NB)

    def _unlock(self, fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
