# -*- test-case-name: tests.locking.test_table -*-
"""
The in-process lock table.

Kernel locks belong to an open file description (OFD C{fcntl}, C{flock}) or
to the whole process (classic POSIX C{fcntl}, our fallback when OFD locks are
missing).  In the classic case two threads of this server would silently
share one lock and the first to unlock would release it for both.  So before
touching the kernel every L{locking.fcntl_lock.FcntlLock} and
L{locking.flock.FlockLock} registers here, keyed by the lock kind and the
file's C{(st_dev, st_ino)}: a thread that wants a lock another thread of this
process holds waits on a condition variable instead of asking the kernel.
Threads never share or release each other's entries, because an entry is
owned by the lock object that took it.

After C{fork()} the child starts with an empty table: the parent's threads
do not exist there.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Hashable


class _Entry:
    """
    The holders of one key: one exclusive owner or several shared ones.
    """

    __slots__ = ("exclusive", "owners")

    def __init__(self) -> None:
        self.exclusive = False
        self.owners: set[object] = set()


class LockTable:
    """
    A table of in-process reader/writer locks keyed by any hashable value.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._entries: dict[Hashable, _Entry] = {}

    def acquire(
        self, key: Hashable, owner: object, exclusive: bool, deadline: float
    ) -> bool:
        """
        Register C{owner} as a holder of C{key}, waiting until the
        C{time.monotonic()} C{deadline} if other owners conflict.

        @param owner: the lock object taking the entry (compared by identity).
        @return: C{True} when registered, C{False} at the deadline.
        """
        # The owner object itself (not its id()) is stored: an id could be
        # reused by a new object after the old one was collected.
        ident = owner
        with self._cond:
            while True:
                entry = self._entries.get(key)
                if entry is None or not entry.owners:
                    entry = self._entries[key] = _Entry()
                    entry.exclusive = exclusive
                    entry.owners.add(ident)
                    return True
                if ident in entry.owners:
                    # The same object twice: a programming error that would
                    # otherwise deadlock the thread against itself.
                    raise RuntimeError("lock already taken by this object")
                if not exclusive and not entry.exclusive:
                    entry.owners.add(ident)
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)

    def release(self, key: Hashable, owner: object) -> None:
        """
        Remove C{owner} from C{key}'s holders and wake waiting threads.  A
        release by an object that is not a holder does nothing, so one
        thread cannot release another's entry.
        """
        with self._cond:
            entry = self._entries.get(key)
            if entry is None or owner not in entry.owners:
                return
            entry.owners.discard(owner)
            if not entry.owners:
                del self._entries[key]
            self._cond.notify_all()

    def holders(self, key: Hashable) -> int:
        """
        @return: how many owners hold C{key} (for tests and diagnostics).
        """
        with self._cond:
            entry = self._entries.get(key)
            return len(entry.owners) if entry else 0

    def _reset(self) -> None:
        """
        Forget everything; used in a forked child, whose parent's threads
        (and whatever they held) do not exist there.
        """
        self._cond = threading.Condition(threading.Lock())
        self._entries = {}


TABLE = LockTable()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=TABLE._reset)
