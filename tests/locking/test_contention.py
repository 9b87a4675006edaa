# -*- test-case-name: tests.locking.test_contention -*-
"""
Multi-process contention: several real processes increment a counter file
non-atomically (read the number, write the number plus one) under a lock.
Any lapse of mutual exclusion loses increments, so the final value proves
the lock works.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from locking import DotLock, DotlockSettings, FcntlLock, FlockLock, LockChain

FORK = multiprocessing.get_context("fork")

# Small pauses, since tests often run with few CPUs and many waiters.
SETTINGS = DotlockSettings(retry_min=0.0005, retry_max=0.01)


class _NoLock:
    """
    No locking at all: the control that shows the counter detects races.
    """

    def acquire(self, timeout=None):
        pass

    def release(self):
        pass


def _make_lock(method: str, path: str):
    if method == "dotlock":
        return DotLock(path, SETTINGS)
    if method == "fcntl":
        return FcntlLock(path)
    if method == "flock":
        return FlockLock(path)
    if method == "none":
        return _NoLock()
    return LockChain.from_names(method.split(), path, SETTINGS)


def _increment(method, path, count, start):
    lock = _make_lock(method, path)
    start.wait()
    for _ in range(count):
        lock.acquire(timeout=60)
        try:
            # Deliberately not atomic: read, then rewrite, in two opens.
            fd = os.open(path, os.O_RDONLY)
            value = int(os.read(fd, 64) or b"0")
            os.close(fd)
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            os.write(fd, str(value + 1).encode())
            os.close(fd)
        finally:
            lock.release()
    os._exit(0)


def _run(path, methods, count):
    """
    Start one process per entry of C{methods}, each incrementing C{count}
    times, and return the final counter.
    """
    with open(path, "w") as f:
        f.write("0")
    start = FORK.Event()
    procs = [FORK.Process(target=_increment, args=(m, path, count, start))
             for m in methods]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    with open(path) as f:
        return int(f.read())


def test_control_without_lock_loses_increments(tmp_path):
    """
    The harness detects missing exclusion: without a lock, 8 processes x 500
    increments end far below 4000 (a reader may even see the file truncated
    by a writer), so the exact totals below mean something.
    """
    assert _run(str(tmp_path / "counter"), ["none"] * 8, 500) < 4000


def test_dotlock_eight_processes(tmp_path):
    """
    8 processes x 500 increments under the dotlock end at exactly 4000, and
    no lock or unique file is left behind.
    """
    path = str(tmp_path / "counter")
    assert _run(path, ["dotlock"] * 8, 500) == 4000
    assert os.listdir(tmp_path) == ["counter"]


@pytest.mark.parametrize("method", ["dotlock fcntl", "fcntl", "flock"])
def test_other_methods_four_processes(tmp_path, method):
    """
    4 processes x 250 increments end at exactly 1000 under the
    C{dotlock fcntl} chain, under fcntl alone and under flock alone (smaller
    than the 8-process tests, to keep the suite fast on a loaded machine).
    """
    path = str(tmp_path / "counter")
    assert _run(path, [method] * 4, 250) == 1000
    assert os.listdir(tmp_path) == ["counter"]


def test_mixed_dotlock_and_chain(tmp_path):
    """
    Half the processes use the dotlock alone, half the C{dotlock fcntl}
    chain: the shared dotlock excludes them all (8 x 250 = 2000).
    """
    path = str(tmp_path / "counter")
    assert _run(path, ["dotlock", "dotlock fcntl"] * 4, 250) == 2000


def _hammer_stale(path, count, start, hostname):
    """
    Take and keep re-taking a dotlock whose predecessor may be stale.
    """
    lock = DotLock(path, DotlockSettings(hostname=hostname, stale_age=10,
                                         retry_min=0.0005, retry_max=0.01))
    start.wait()
    for _ in range(count):
        lock.acquire(timeout=60)
        try:
            with open(path) as f:
                value = int(f.read())
            with open(path, "w") as f:
                f.write(str(value + 1))
        finally:
            lock.release()
    os._exit(0)


def test_breakers_race_on_one_stale_lock(tmp_path):
    """
    8 processes start at once against a stale lock (another host's, aged
    past stale_age): they all judge it stale, exactly one break wins, and
    the increments made afterwards are still exclusive (8 x 100 = 800).
    """
    path = str(tmp_path / "counter")
    with open(path, "w") as f:
        f.write("0")
    with open(path + ".lock", "w") as f:
        f.write("elsewhere 1\n")
    os.utime(path + ".lock", (time.time() - 3600, time.time() - 3600))
    start = FORK.Event()
    procs = [FORK.Process(target=_hammer_stale, args=(path, 100, start, "h"))
             for _ in range(8)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    with open(path) as f:
        assert int(f.read()) == 800
    assert os.listdir(tmp_path) == ["counter"]
