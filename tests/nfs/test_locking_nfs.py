"""
The locking torture tests of tests/locking/, through two nfsfuse mounts
of one directory (issue 20): attribute caches, link() replies replayed as
EEXIST, clocks that differ between the nodes and from the file server,
and fcntl/flock locks that stay on one mount (NFS without a lock
manager).  Real processes on both mounts increment one counter file
non-atomically under the lock; only mutual exclusion across the mounts
makes the total exact (DESIGN.md rule 3).
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from nfsmount import NFSOptions

from locking import DotLock, DotlockSettings, LockChain, LockTimeout

FORK = multiprocessing.get_context("fork")
SETTINGS = DotlockSettings(retry_min=0.001, retry_max=0.02)
#: Every link() reply replayed now and then, clocks 90 s apart.
NODE_A = NFSOptions(acregmin=3, acdirmin=3, link_replay=0.2, clock_offset=45)
NODE_B = NFSOptions(acregmin=3, acdirmin=3, link_replay=0.2, clock_offset=-45)


def _make_lock(method: str, path: str):
    if method == "dotlock":
        return DotLock(path, SETTINGS)
    return LockChain.from_names(method.split(), path, SETTINGS)


def _increment(method: str, path: str, count: int, start) -> None:
    lock = _make_lock(method, path)
    start.wait()
    code = 0
    try:
        for _ in range(count):
            lock.acquire(timeout=60)
            try:
                # Read, then rewrite, in two opens: each open revalidates
                # (close-to-open), so only exclusion keeps increments.
                with open(path, "rb") as f:
                    value = int(f.read() or b"0")
                with open(path, "wb") as f:
                    f.write(str(value + 1).encode())
            finally:
                lock.release()
    except BaseException:
        code = 1
    os._exit(code)


def _run(paths: list[str], method: str, count: int) -> None:
    start = FORK.Event()
    procs = [FORK.Process(target=_increment, args=(method, p, count, start)) for p in paths]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0


@pytest.mark.parametrize("method", ["dotlock", "dotlock fcntl"])
def test_counter_across_two_mounts_is_exact(nfs_mounts, method):
    """
    3 processes per mount x 40 increments under the dotlock (alone and as
    the head of Dovecot's mbox write chain) end at exactly 240, with 20%
    of link() replies replayed as EEXIST, and nothing is left behind.
    """
    a, b = nfs_mounts(2, [NODE_A, NODE_B])
    (a.source / "counter").write_text("0")
    paths = [str(a.path / "counter")] * 3 + [str(b.path / "counter")] * 3
    _run(paths, method, 40)
    assert (a.source / "counter").read_text() == "240"
    assert sorted(os.listdir(a.source)) == ["counter"]


def test_fcntl_alone_does_not_exclude_across_mounts(nfs_mounts):
    """
    The reason for the dotlock: an fcntl lock taken through one mount is
    not seen through the other (NFS without a lock manager), so a process
    on each mount holds "the" lock at the same time.
    """
    a, b = nfs_mounts(2, [NODE_A, NODE_B])
    (a.source / "counter").write_text("0")
    first = LockChain.from_names(["fcntl"], str(a.path / "counter"), SETTINGS)
    second = LockChain.from_names(["fcntl"], str(b.path / "counter"), SETTINGS)
    first.acquire(timeout=1)
    try:
        second.acquire(timeout=1)      # would time out if the locks were shared
        second.release()
    finally:
        first.release()
    # The dotlock does exclude them.
    held = DotLock(str(a.path / "counter"), SETTINGS)
    held.acquire(timeout=1)
    try:
        with pytest.raises(LockTimeout):
            DotLock(str(b.path / "counter"), SETTINGS).acquire(timeout=0.5)
    finally:
        held.release()


def _plant_lock(source, mount_path, seconds_old: float) -> None:
    """
    A lock file of a holder on another host, last modified C{seconds_old}
    seconds ago by the file server's clock (the source directory's).
    """
    lock = source / "counter.lock"
    lock.write_text("otherhost 4242 feedface\n")
    now = time.time()
    os.utime(lock, (now - seconds_old, now - seconds_old))


@pytest.mark.parametrize("offset", [-400.0, 0.0, 400.0])
def test_old_lock_is_broken_whatever_the_node_clock(nfs_mounts, offset):
    """
    A lock 10 minutes old by the server's clock is stale after 5 minutes
    (the traditional rule), whether this node's view of file times runs
    400 s behind, on time or 400 s ahead.
    """
    opts = NFSOptions(acregmin=3, acdirmin=3, link_replay=0.2, clock_offset=offset)
    (a,) = nfs_mounts(1, opts)
    (a.source / "counter").write_text("0")
    _plant_lock(a.source, a.path, 600)
    lock = DotLock(str(a.path / "counter"), SETTINGS)
    lock.acquire(timeout=10)
    try:
        assert (a.source / "counter.lock").read_text().split()[1] == str(os.getpid())
    finally:
        lock.release()
    assert not (a.source / "counter.lock").exists()


@pytest.mark.parametrize("offset", [-400.0, 400.0])
def test_fresh_lock_is_kept_whatever_the_node_clock(nfs_mounts, offset):
    """
    A lock 10 s old by the server's clock is never broken, even when the
    node's view of file times is 400 s off (older than 5 minutes by a
    comparison with the local clock).
    """
    opts = NFSOptions(acregmin=3, acdirmin=3, link_replay=0.2, clock_offset=offset)
    (a,) = nfs_mounts(1, opts)
    (a.source / "counter").write_text("0")
    _plant_lock(a.source, a.path, 10)
    with pytest.raises(LockTimeout):
        DotLock(str(a.path / "counter"), SETTINGS).acquire(timeout=1.5)
    assert (a.source / "counter.lock").read_text().startswith("otherhost 4242")


def _hold_and_refresh(path: str, seconds: float, ready) -> None:
    lock = DotLock(path, DotlockSettings(stale_age=3, refresh_interval=0.5,
                                         retry_min=0.001, retry_max=0.02))
    lock.acquire(timeout=10)
    ready.set()
    time.sleep(seconds)
    lock.release()
    os._exit(0)


def test_a_refreshed_lock_on_the_other_mount_is_not_broken(nfs_mounts):
    """
    The holder on mount A keeps its lock fresh (stale after 3 s, touched
    every 0.5 s); a waiter on mount B, whose attribute cache and clock
    differ, must wait for the release, not break the lock.
    """
    a, b = nfs_mounts(2, [NODE_A, NODE_B])
    (a.source / "counter").write_text("0")
    ready = FORK.Event()
    holder = FORK.Process(target=_hold_and_refresh, args=(str(a.path / "counter"), 6, ready))
    holder.start()
    try:
        assert ready.wait(20)
        waiter = DotLock(str(b.path / "counter"),
                         DotlockSettings(stale_age=3, retry_min=0.01, retry_max=0.1))
        t0 = time.monotonic()
        waiter.acquire(timeout=30)
        waited = time.monotonic() - t0
        waiter.release()
    finally:
        holder.join(30)
    assert holder.exitcode == 0
    assert waited > 4.0, f"the lock was broken after {waited:.1f} s"
