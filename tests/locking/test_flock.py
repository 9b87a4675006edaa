# -*- test-case-name: tests.locking.test_flock -*-
"""
Tests for L{locking.flock.FlockLock}: exclusion between processes and
threads, shared locks, and independence from fcntl locks on local disks.
"""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from locking import FcntlLock, FlockLock, ILock, LockTimeout

FORK = multiprocessing.get_context("fork")


@pytest.fixture
def target(tmp_path):
    """
    An existing file to lock.
    """
    path = tmp_path / "mbox"
    path.write_text("0")
    return str(path)


def _hold(path, exclusive, ready, done):
    with FlockLock(path, exclusive):
        ready.set()
        done.wait(30)


def test_provides_ilock(target):
    """
    L{FlockLock} provides L{ILock} and works as a context manager.
    """
    lock = FlockLock(target)
    assert ILock.providedBy(lock)
    with lock:
        assert lock.held
    assert not lock.held


def test_other_process_excluded(target):
    """
    A child's exclusive flock makes us time out, and shared requests too;
    after it releases we get the lock.
    """
    ready, done = FORK.Event(), FORK.Event()
    proc = FORK.Process(target=_hold, args=(target, True, ready, done))
    proc.start()
    assert ready.wait(10)
    try:
        with pytest.raises(LockTimeout) as info:
            FlockLock(target).acquire(0.2)
        assert "flock" in str(info.value)
        with pytest.raises(LockTimeout):
            FlockLock(target, exclusive=False).acquire(0)
    finally:
        done.set()
        proc.join()
    with FlockLock(target):
        pass


def test_shared_coexist(target):
    """
    Shared flocks of two processes coexist; an exclusive one is refused.
    """
    ready, done = FORK.Event(), FORK.Event()
    proc = FORK.Process(target=_hold, args=(target, False, ready, done))
    proc.start()
    assert ready.wait(10)
    try:
        with FlockLock(target, exclusive=False) as lock:
            assert lock.held
        with pytest.raises(LockTimeout):
            FlockLock(target).acquire(0.05)
    finally:
        done.set()
        proc.join()


def test_threads_wait(target):
    """
    A second thread waits for the first thread's flock.
    """
    first = FlockLock(target)
    first.acquire()
    with pytest.raises(LockTimeout):
        FlockLock(target).acquire(0.05)
    threading.Timer(0.05, first.release).start()
    with FlockLock(target) as second:
        assert second.held


def test_independent_of_fcntl(target):
    """
    On a local file system flock and fcntl locks are separate, so a chain
    may hold both on one file.
    """
    with FcntlLock(target), FlockLock(target) as lock:
        assert lock.held
