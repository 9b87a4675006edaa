# -*- test-case-name: tests.locking.test_fcntl_lock -*-
"""
Whole-file C{fcntl} locks, as open file description (OFD) locks.

Classic POSIX C{fcntl} locks belong to the process: any thread closing any
descriptor of the file drops them, and two threads never exclude each other.
OFD locks (Linux 3.15+) belong to the open file description instead, so each
L{FcntlLock} object (which opens its own descriptor) holds its own lock.
They conflict with classic POSIX locks, so we still exclude programs using
C{lockf()}/C{fcntl(F_SETLK)}, e.g. Python's C{mailbox.mbox} and procmail.
Where OFD locks are missing we fall back to classic locks and rely on the
in-process table (L{locking.table}) for exclusion between threads.

Over NFS, C{fcntl} locks go through the lock manager (NLM or NFSv4): only
use them there if configured.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from zope.interface import implementer

from locking._kernel import KernelFileLock
from locking.interfaces import ILock

# Python 3.9+ exposes these on Linux; the numeric values are Linux's own.
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)

# struct flock {short l_type; short l_whence; off_t l_start; off_t l_len;
# pid_t l_pid;} with native alignment (64-bit off_t on Linux x86_64/arm64).
_FLOCK = struct.Struct("@hhqqi4x")


def _flock_struct(lock_type: int) -> bytes:
    # Whole file (start 0, length 0 = to the end, also past later appends);
    # l_pid must be 0 for OFD locks.
    return _FLOCK.pack(lock_type, os.SEEK_SET, 0, 0, 0)


@implementer(ILock)
class FcntlLock(KernelFileLock):
    """
    An OFD C{fcntl} lock on the whole file C{path} (exclusive: write lock on
    a descriptor opened O_RDWR; shared: read lock on one opened O_RDONLY).
    """

    kind = "fcntl"

    # Whether OFD locks work here; flips to False (for the whole process) the
    # first time the kernel rejects the command.
    _ofd = hasattr(fcntl, "F_OFD_SETLK") or os.uname().sysname == "Linux"

    def _type(self) -> int:
        return fcntl.F_WRLCK if self.exclusive else fcntl.F_RDLCK

    def _try_lock(self, fd: int) -> None:
        if FcntlLock._ofd:
            try:
                fcntl.fcntl(fd, F_OFD_SETLK, _flock_struct(self._type()))
                return
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                # Kernel or file system without OFD locks: classic ones,
                # made thread-safe by the in-process table.
                FcntlLock._ofd = False
        fcntl.lockf(fd, (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
                    | fcntl.LOCK_NB)

    def _unlock(self, fd: int) -> None:
        if FcntlLock._ofd:
            fcntl.fcntl(fd, F_OFD_SETLK, _flock_struct(fcntl.F_UNLCK))
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN)

    def _describe_holder(self, fd: int) -> str | None:
        # Classic F_GETLK reports the pid of a conflicting classic lock (an
        # OFD holder shows as pid -1, i.e. unknown).
        try:
            data = fcntl.fcntl(fd, fcntl.F_GETLK, _flock_struct(self._type()))
        except OSError:
            return None
        lock_type, _, _, _, pid = _FLOCK.unpack(data)
        if lock_type == fcntl.F_UNLCK or pid <= 0:
            return None
        return f"pid {pid}"
