# -*- test-case-name: tests.locking.test_retry -*-
"""
Waiting for a lock: deadlines and exponential backoff with jitter.

Every lock here is taken by non-blocking attempts in a loop, because a
blocking kernel call (C{F_OFD_SETLKW}, C{flock} without C{LOCK_NB}) cannot be
given a timeout and a hung NFS server must not pin a thread forever.  The
jitter keeps several waiting processes from retrying in lock step.
"""

from __future__ import annotations

import random
import time
from typing import Callable

#: Called with the seconds slept each time a lock was found held and
#: waited for (imapd.metrics counts them); locking imports nothing above it.
WAIT_OBSERVERS: list[Callable[[float], None]] = []


class Backoff:
    """
    Delays that double from C{minimum} up to C{maximum}, each scaled by a
    random factor in [0.5, 1.0), clamped to a deadline.

    @ivar deadline: the C{time.monotonic()} value after which we give up.
    """

    def __init__(self, timeout: float, minimum: float, maximum: float) -> None:
        # monotonic, never time.time(): the wall clock may be stepped by NTP
        # while we wait, and deadlines are a local matter.
        self.start = time.monotonic()
        self.deadline = self.start + max(0.0, timeout)
        self._minimum = minimum
        self._maximum = max(minimum, maximum)
        self._next = minimum

    def remaining(self) -> float:
        """
        @return: seconds left before the deadline (never negative).
        """
        return max(0.0, self.deadline - time.monotonic())

    def waited(self) -> float:
        """
        @return: seconds since this backoff started.
        """
        return time.monotonic() - self.start

    def sleep(self) -> bool:
        """
        Sleep for the next delay.

        @return: C{False} without sleeping if the deadline has passed, else
            C{True} after sleeping (possibly less than the delay, so that the
            last attempt happens right at the deadline).
        """
        left = self.remaining()
        if left <= 0:
            return False
        delay = self._next * random.uniform(0.5, 1.0)
        self._next = min(self._maximum, self._next * 2)
        slept = min(delay, left)
        time.sleep(slept)
        for observer in WAIT_OBSERVERS:
            observer(slept)
        return True
