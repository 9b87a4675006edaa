# -*- test-case-name: tests.security.test_sec_thread -*-
"""
Cooperative cancellation of storage-pool work whose client is gone.

A command's blocking work (threading 10,000 messages, a search reading
every body) runs in the storage pool long after the reactor learnt that
the client disconnected (issue 18: a THREAD went on for 41 s).  Python
threads cannot be interrupted, so the work asks: L{imapd.protocol} runs
every pool call inside L{bound} with the session's "connection closing"
test, and loops that do per-message work call L{check} once per message,
which raises L{imapd.errors.ConnectionClosing} once the client is gone.
The test is a plain attribute read, safe from any thread, and costs a
few hundred nanoseconds per message.

Work that must finish after a disconnect (closing a mailbox, logging
out) simply never calls L{check}.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from imapd import errors

__all__ = ["bound", "check"]

_local = threading.local()


def check() -> None:
    """
    Raise L{errors.ConnectionClosing} if the client of the work running
    in this thread has gone; nothing outside L{bound}.
    """
    gone: Optional[Callable[[], bool]] = getattr(_local, "gone", None)
    if gone is not None and gone():
        raise errors.ConnectionClosing("client gone; work abandoned")


def bound(gone: Callable[[], bool], fn: Callable) -> Callable:
    """C{fn}, run with C{gone} as the test L{check} uses (in whichever thread)."""

    def call(*args, **kwargs):
        outer = getattr(_local, "gone", None)
        _local.gone = gone
        try:
            return fn(*args, **kwargs)
        finally:
            _local.gone = outer
    return call
