# -*- test-case-name: tests.locking.test_retry -*-
"""
Tests for L{locking._retry.Backoff}.
"""

from __future__ import annotations

import time

from locking._retry import Backoff


def test_deadline_respected():
    """
    Sleeping stops at the deadline: the total wait is about the timeout,
    never much more.
    """
    backoff = Backoff(0.1, 0.01, 1.0)
    start = time.monotonic()
    while backoff.sleep():
        pass
    assert 0.09 <= time.monotonic() - start < 0.3
    assert backoff.remaining() == 0


def test_zero_timeout_never_sleeps():
    """
    A zero (or negative) timeout means one attempt: no sleeping at all.
    """
    assert not Backoff(0, 0.01, 1.0).sleep()
    assert not Backoff(-1, 0.01, 1.0).sleep()


def test_delays_grow_to_cap_with_jitter(monkeypatch):
    """
    Delays double up to the cap and are jittered into [half, full].
    """
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    backoff = Backoff(1000, 0.01, 0.08)
    for _ in range(6):
        backoff.sleep()
    caps = [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
    for delay, cap in zip(slept, caps):
        assert cap / 2 <= delay <= cap
