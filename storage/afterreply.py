# -*- test-case-name: tests.storage.test_afterreply -*-
"""
Work a store call may leave until its caller has the result.

A store call runs in a thread of the daemon's storage pool, and the
session (or the MTA over LMTP) waits for its result.  Some of the work a
call does is only housekeeping that must still happen under the call's
lock, but that the caller need not wait for: an mbox writer keeps its
write lock until the kernel's file clock has ticked past its own write
(L{storage.mbox.mailbox}), up to a clock tick (4 ms at HZ=250) after the
data is safe on disk.  Waited for inside the call, that tick bounded one
LMTP connection to one delivery per tick.

The pool collects such work (L{collecting}) around each job and runs it
(L{run}) in the same thread right after handing the result over.  A
call made where nobody collects (the C{imapd-deliver} command, a test
calling the store directly) runs the work at once, inside the call, as
if this module did not exist.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

from twisted.logger import Logger

__all__ = ["after_reply", "collecting", "run"]

_log = Logger(namespace="storage")
_local = threading.local()


def after_reply(work: Callable[[], None]) -> None:
    """
    Run C{work} once the result of the current store call has gone to
    its caller; at once where nobody collects (see the module docstring).
    C{work} must not raise into its caller's result: it is logged.
    """
    queue = getattr(_local, "queue", None)
    if queue is None:
        work()
    else:
        queue.append(work)


@contextlib.contextmanager
def collecting() -> Iterator[list]:
    """Collect the L{after_reply} work of the calls in this block; yields the list."""
    previous = getattr(_local, "queue", None)
    queue: list = []
    _local.queue = queue
    try:
        yield queue
    finally:
        _local.queue = previous


def run(queue: list) -> None:
    """Run the work L{collecting} gathered, in order; a failure is logged, not raised."""
    while queue:
        work = queue.pop(0)
        try:
            work()
        except Exception:
            _log.failure("Work after a store call's reply")
