# -*- test-case-name: tests.locking.test_chain -*-
"""
Lock primitives for files shared with other processes, nodes and mail
programs: the NFS-safe dotlock, OFD C{fcntl} locks, C{flock} locks and
ordered lock chains built from configuration names.

Nothing here knows about IMAP or mail formats.  Every lock provides
L{ILock} and is a context manager.  All calls block (they retry with
backoff and the file system may be NFS): the server runs them in thread
pools, never on the reactor thread.
"""

from locking.chain import LockChain
from locking.dotlock import DotLock, DotlockSettings
from locking.errors import CannotLock, LockError, LockLost, LockTimeout
from locking.fcntl_lock import FcntlLock
from locking.flock import FlockLock
from locking.interfaces import ILock

__all__ = [
    "CannotLock",
    "DotLock",
    "DotlockSettings",
    "FcntlLock",
    "FlockLock",
    "ILock",
    "LockChain",
    "LockError",
    "LockLost",
    "LockTimeout",
]
