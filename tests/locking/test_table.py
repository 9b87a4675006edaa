# -*- test-case-name: tests.locking.test_table -*-
"""
Tests for L{locking.table.LockTable}, the in-process lock table.
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from locking.table import TABLE, LockTable

FORK = multiprocessing.get_context("fork")


def _soon(seconds=0.05):
    return time.monotonic() + seconds


def test_exclusive_excludes():
    """
    An exclusive entry blocks every other owner until released.
    """
    table = LockTable()
    a, b = object(), object()
    assert table.acquire("k", a, True, _soon())
    assert not table.acquire("k", b, True, _soon())
    assert not table.acquire("k", b, False, _soon())
    table.release("k", a)
    assert table.acquire("k", b, True, _soon())


def test_shared_coexist():
    """
    Shared owners coexist; an exclusive request waits for all of them.
    """
    table = LockTable()
    a, b, c = object(), object(), object()
    assert table.acquire("k", a, False, _soon())
    assert table.acquire("k", b, False, _soon())
    assert table.holders("k") == 2
    assert not table.acquire("k", c, True, _soon())
    table.release("k", a)
    table.release("k", b)
    assert table.acquire("k", c, True, _soon())


def test_keys_independent():
    """
    Different keys (files, lock kinds) do not interact.
    """
    table = LockTable()
    assert table.acquire(("fcntl", 1, 2), object(), True, _soon())
    assert table.acquire(("flock", 1, 2), object(), True, _soon())
    assert table.acquire(("fcntl", 1, 3), object(), True, _soon())


def test_release_by_non_owner_ignored():
    """
    An object that does not hold the entry cannot release it, so one
    thread never releases another's lock.
    """
    table = LockTable()
    a, b = object(), object()
    table.acquire("k", a, True, _soon())
    table.release("k", b)
    assert table.holders("k") == 1
    assert not table.acquire("k", b, True, _soon())


def test_same_owner_twice_is_error():
    """
    The same object asking twice is a programming error, not a deadlock.
    """
    table = LockTable()
    a = object()
    table.acquire("k", a, True, _soon())
    with pytest.raises(RuntimeError):
        table.acquire("k", a, True, _soon())


def test_waiter_woken_on_release():
    """
    A thread waiting for an entry gets it promptly when the holder releases.
    """
    table = LockTable()
    a, b = object(), object()
    table.acquire("k", a, True, _soon())
    threading.Timer(0.05, table.release, ("k", a)).start()
    start = time.monotonic()
    assert table.acquire("k", b, True, _soon(5))
    assert time.monotonic() - start < 1


def _child_acquires(reply):
    reply.send(TABLE.acquire("forked", object(), True, time.monotonic()))


def test_fork_child_starts_empty():
    """
    A forked child does not inherit the parent's entries (the threads that
    took them do not exist there).
    """
    owner = object()
    assert TABLE.acquire("forked", owner, True, _soon())
    try:
        parent, child = FORK.Pipe()
        proc = FORK.Process(target=_child_acquires, args=(child,))
        proc.start()
        assert parent.recv() is True
        proc.join()
    finally:
        TABLE.release("forked", owner)
