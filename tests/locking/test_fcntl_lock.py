# -*- test-case-name: tests.locking.test_fcntl_lock -*-
"""
Tests for L{locking.fcntl_lock.FcntlLock} (OFD fcntl locks) and the shared
kernel-lock machinery in L{locking._kernel}: exclusion between processes and
between threads, shared locks, timeouts, and the classic-lock fallback.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import threading
import time

import pytest

from locking import FcntlLock, ILock, LockError, LockTimeout
from locking import fcntl_lock

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
    lock = FcntlLock(path, exclusive)
    lock.acquire(5)
    ready.set()
    done.wait(30)
    lock.release()


def _holding(path, exclusive=True):
    """
    Start a child process holding the lock; returns (process, done event).
    """
    ready, done = FORK.Event(), FORK.Event()
    proc = FORK.Process(target=_hold, args=(path, exclusive, ready, done))
    proc.start()
    assert ready.wait(10)
    return proc, done


def test_constants():
    """
    The OFD command numbers are Linux's (37/38 when the module lacks them).
    """
    assert fcntl_lock.F_OFD_SETLK == getattr(fcntl, "F_OFD_SETLK", 37)
    assert fcntl_lock.F_OFD_SETLKW == getattr(fcntl, "F_OFD_SETLKW", 38)
    assert fcntl_lock.F_OFD_SETLK == 37 and fcntl_lock.F_OFD_SETLKW == 38


def test_provides_ilock_and_context_manager(target):
    """
    L{FcntlLock} provides L{ILock}; C{with} holds it inside the block.
    """
    lock = FcntlLock(target)
    assert ILock.providedBy(lock)
    with lock:
        assert lock.held
    assert not lock.held
    lock.release()


def test_other_process_excluded(target):
    """
    While a child process holds the exclusive lock we time out; after it
    releases, we get it.
    """
    proc, done = _holding(target)
    try:
        with pytest.raises(LockTimeout) as info:
            FcntlLock(target).acquire(0.2)
        assert target in str(info.value)
        with pytest.raises(LockTimeout):
            FcntlLock(target, exclusive=False).acquire(0)
    finally:
        done.set()
        proc.join()
    with FcntlLock(target) as lock:
        assert lock.held


def test_shared_locks_coexist(target):
    """
    Shared locks of two processes coexist; an exclusive one waits for them.
    """
    proc, done = _holding(target, exclusive=False)
    try:
        with FcntlLock(target, exclusive=False) as lock:
            assert lock.held
        with pytest.raises(LockTimeout):
            FcntlLock(target).acquire(0.1)
    finally:
        done.set()
        proc.join()


def test_killed_holder_releases(target):
    """
    The kernel drops the lock of a process killed with SIGKILL: no stale
    state.
    """
    proc, done = _holding(target)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    with FcntlLock(target) as lock:
        assert lock.held


def test_threads_exclude_each_other(target):
    """
    Two threads of one process never share the lock: the second waits until
    the first releases (through the in-process table).
    """
    first = FcntlLock(target)
    first.acquire()
    with pytest.raises(LockTimeout) as info:
        FcntlLock(target).acquire(0.05)
    assert "another thread" in str(info.value)
    threading.Timer(0.1, first.release).start()
    second = FcntlLock(target)
    start = time.monotonic()
    second.acquire(5)
    assert time.monotonic() - start >= 0.05
    second.release()


def test_classic_fallback_threads(target, monkeypatch):
    """
    Without OFD locks (classic process-wide fcntl locks), threads still
    exclude each other, and one thread's release does not release another
    thread's lock: 4 threads x 200 non-atomic increments end at 800.
    """
    monkeypatch.setattr(FcntlLock, "_ofd", False)
    _thread_increments(lambda: FcntlLock(target), target, 4, 200)


def test_ofd_threads(target):
    """
    With OFD locks, 4 threads x 200 non-atomic increments end at 800.
    """
    _thread_increments(lambda: FcntlLock(target), target, 4, 200)


def _thread_increments(make, path, threads, count):
    errors = []

    def work():
        try:
            lock = make()
            for _ in range(count):
                with lock:
                    with open(path) as f:
                        value = int(f.read())
                    time.sleep(0)
                    with open(path, "w") as f:
                        f.write(str(value + 1))
        except BaseException as e:
            errors.append(e)

    with open(path, "w") as f:
        f.write("0")
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    with open(path) as f:
        assert int(f.read()) == threads * count


def test_lockf_holder_named(target):
    """
    When a classic lockf() lock (as mail programs take) blocks us, the
    timeout names the holder's pid.
    """
    ready, done = FORK.Event(), FORK.Event()

    def hold():
        with open(target, "r+") as f:
            fcntl.lockf(f, fcntl.LOCK_EX)
            ready.set()
            done.wait(30)

    proc = FORK.Process(target=hold)
    proc.start()
    assert ready.wait(10)
    try:
        with pytest.raises(LockTimeout) as info:
            FcntlLock(target).acquire(0.1)
        assert info.value.holder == f"pid {proc.pid}"
    finally:
        done.set()
        proc.join()


def test_missing_file(tmp_path):
    """
    Locking a file that does not exist is a L{LockError} naming it.
    """
    path = str(tmp_path / "nope")
    with pytest.raises(LockError) as info:
        FcntlLock(path).acquire(0)
    assert path in str(info.value)


def test_not_reentrant_and_refresh(target):
    """
    Acquiring twice through one object is an error; refresh() is a no-op
    while held and an error when not held.
    """
    lock = FcntlLock(target)
    with pytest.raises(LockError):
        lock.refresh()
    with lock:
        lock.refresh()
        with pytest.raises(LockError):
            lock.acquire(0)


def _release_inherited(lock, reply):
    lock.release()
    reply.send(lock.held)


def test_forked_child_does_not_release_parents_lock(target):
    """
    A forked child shares our open file description; its release() must not
    unlock it (that would release our OFD lock), only close its copy.
    """
    with FcntlLock(target) as lock:
        parent, child = FORK.Pipe()
        proc = FORK.Process(target=_release_inherited, args=(lock, child))
        proc.start()
        assert parent.recv() is False
        proc.join()
        # Still ours: another process cannot take it.
        ready, done = FORK.Event(), FORK.Event()
        other = FORK.Process(target=_try_once, args=(target, ready))
        other.start()
        other.join()
        assert not ready.is_set()


def _try_once(path, got):
    try:
        FcntlLock(path).acquire(0)
        got.set()
    except LockTimeout:
        pass
