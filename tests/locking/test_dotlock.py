# -*- test-case-name: tests.locking.test_dotlock -*-
"""
Tests for L{locking.dotlock}: the link-count protocol, stale locks judged by
the file server's clock, race-free breaking, unwritable directories, faults
injected through the C{_os} seam, and losing the lock while holding it.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import stat
import tempfile
import threading
import time
import warnings

import pytest
from twisted.logger import capturedLogs, formatEvent

from locking import CannotLock, DotLock, DotlockSettings, ILock, LockError, LockTimeout
from locking.errors import LockLost
from locking._retry import Backoff

FORK = multiprocessing.get_context("fork")


class FaultyOS:
    """
    Stands in for the L{os} module; any attribute set on an instance
    replaces the real function.
    """

    def __getattr__(self, name):
        return getattr(os, name)


class _WithNlink:
    """
    A stat result whose link count is replaced.
    """

    def __init__(self, st, nlink):
        self._st = st
        self.st_nlink = nlink

    def __getattr__(self, name):
        return getattr(self._st, name)


def _is_unique(path: str) -> bool:
    """
    Whether C{path} is one of the lock's unique (temporary) files.
    """
    return os.path.basename(path).startswith(".")


def _age(path: str, seconds: float) -> None:
    """
    Set C{path}'s mtime C{seconds} in the past (negative: future), relative
    to the file system's own "now" (a fresh file's mtime).
    """
    fd, probe = tempfile.mkstemp(dir=os.path.dirname(path))
    os.close(fd)
    now = os.stat(probe).st_mtime
    os.unlink(probe)
    os.utime(path, (now - seconds, now - seconds))


def _write_lock(path: str, content: str) -> None:
    with open(path, "w") as f:
        f.write(content)


def _messages(events) -> str:
    return "\n".join(formatEvent(e) or "" for e in events)


@pytest.fixture
def target(tmp_path):
    """
    A protected file in a fresh directory.
    """
    path = tmp_path / "inbox"
    path.write_text("")
    return str(path)


FAST = DotlockSettings(retry_min=0.001, retry_max=0.02)


def test_provides_ilock(target):
    """
    L{DotLock} provides L{ILock}.
    """
    assert ILock.providedBy(DotLock(target))


def test_acquire_creates_regular_lock_file_naming_holder(target):
    """
    Acquiring creates C{path + ".lock"}, a regular file with mode 0600 and
    content "hostname pid token", and leaves no unique file behind; releasing
    removes it.
    """
    lock = DotLock(target, DotlockSettings(hostname="node1"))
    lock.acquire()
    try:
        st = os.lstat(target + ".lock")
        assert stat.S_ISREG(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_nlink == 1
        with open(target + ".lock") as f:
            assert f.read().startswith(f"node1 {os.getpid()} ")
        assert sorted(os.listdir(os.path.dirname(target))) == ["inbox", "inbox.lock"]
        assert lock.held
    finally:
        lock.release()
    assert not lock.held
    assert os.listdir(os.path.dirname(target)) == ["inbox"]


def test_mode_and_suffix_from_settings(target):
    """
    The lock file gets the configured mode even if the umask would remove
    bits, and the configured suffix.
    """
    old = os.umask(0o077)
    try:
        with DotLock(target, DotlockSettings(mode=0o640, lock_suffix=".lck")):
            st = os.lstat(target + ".lck")
            assert stat.S_IMODE(st.st_mode) == 0o640
    finally:
        os.umask(old)
    assert not os.path.exists(target + ".lck")


def test_context_manager(target):
    """
    C{with lock:} holds the lock inside the block only.
    """
    lock = DotLock(target)
    with lock as entered:
        assert entered is lock
        assert lock.held
    assert not lock.held
    assert not os.path.exists(target + ".lock")


def test_not_reentrant(target):
    """
    Acquiring a held lock again through the same object is an error, not a
    deadlock.
    """
    with DotLock(target) as lock:
        with pytest.raises(LockError):
            lock.acquire(0)


def test_release_when_not_held_is_noop(target):
    """
    Releasing a lock that was never acquired does nothing.
    """
    DotLock(target).release()


def test_timeout_names_holder_and_age(target):
    """
    A second holder times out with L{LockTimeout} naming the first holder
    (the lock file's content) and the lock's age by the server's clock.
    """
    with DotLock(target, DotlockSettings(hostname="alpha")):
        _age(target + ".lock", 42)
        start = time.monotonic()
        with pytest.raises(LockTimeout) as info:
            DotLock(target, FAST).acquire(timeout=0.2)
        assert 0.15 < time.monotonic() - start < 2
    error = info.value
    assert error.holder.startswith(f"alpha {os.getpid()} ")
    assert 41 <= error.age <= 45
    assert f"alpha {os.getpid()}" in str(error)
    assert "42." in str(error) or "43." in str(error)


def test_waits_for_release(target):
    """
    A waiter gets the lock soon after the holder (another thread) releases.
    """
    holder = DotLock(target)
    holder.acquire()
    threading.Timer(0.2, holder.release).start()
    waiter = DotLock(target, FAST)
    waiter.acquire(timeout=5)
    assert waiter.held
    waiter.release()


def test_link_raises_after_succeeding(target):
    """
    A link() that reports failure although it succeeded (a retransmitted
    NFS LINK) still yields the lock: only the link count counts.
    """
    fake = FaultyOS()

    def link(src, dst):
        os.link(src, dst)
        raise OSError(errno.EEXIST, "File exists (retransmitted)")

    fake.link = link
    lock = DotLock(target, _os=fake)
    lock.acquire(timeout=0)
    assert lock.held
    lock.release()
    assert os.listdir(os.path.dirname(target)) == ["inbox"]


def test_link_count_one_does_not_own(target):
    """
    If link() succeeds but the unique file's link count reads 1, we must not
    believe we own the lock: acquire times out and the unique file is gone.
    """
    fake = FaultyOS()

    def stat_(path, *args, **kwargs):
        st = os.stat(path, *args, **kwargs)
        if _is_unique(path):
            return _WithNlink(st, 1)
        return st

    fake.stat = stat_
    lock = DotLock(target, FAST, _os=fake)
    with pytest.raises(LockTimeout):
        lock.acquire(timeout=0.1)
    assert not lock.held
    assert not [n for n in os.listdir(os.path.dirname(target)) if _is_unique(n)]


def test_link_unsupported_is_cannot_lock(target):
    """
    A file system that refuses hard links (EPERM, no lock file exists) gives
    L{CannotLock} at once instead of waiting for the timeout.
    """
    fake = FaultyOS()

    def link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    fake.link = link
    start = time.monotonic()
    with pytest.raises(CannotLock) as info:
        DotLock(target, _os=fake).acquire(timeout=10)
    assert time.monotonic() - start < 1
    assert "hard links" in str(info.value)
    assert os.listdir(os.path.dirname(target)) == ["inbox"]


def _hold_then_sleep(path, hostname, ready):
    lock = DotLock(path, DotlockSettings(hostname=hostname))
    lock.acquire()
    ready.send("locked")
    time.sleep(60)


def test_stale_lock_of_killed_process_is_broken_at_once(target):
    """
    A lock left by a process of this host killed with SIGKILL is stale at
    once (its pid no longer runs): it is broken, and the breaking is logged.
    """
    settings = DotlockSettings(hostname="thishost")
    parent, child = FORK.Pipe()
    proc = FORK.Process(target=_hold_then_sleep, args=(target, "thishost", child))
    proc.start()
    assert parent.recv() == "locked"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert os.path.exists(target + ".lock")
    with capturedLogs() as events:
        start = time.monotonic()
        lock = DotLock(target, settings)
        lock.acquire(timeout=5)
        assert time.monotonic() - start < 1
    assert lock.held
    text = _messages(events)
    assert "Broke stale lock" in text
    assert f"thishost {proc.pid}" in text
    lock.release()
    assert os.listdir(os.path.dirname(target)) == ["inbox"]


def test_killed_process_of_other_host_waits_for_age(target):
    """
    A lock left by a SIGKILLed process whose content names another host
    cannot be checked by pid: it is stale only once it is older than
    C{stale_age} by the file server's clock (aged here with os.utime).
    """
    parent, child = FORK.Pipe()
    proc = FORK.Process(target=_hold_then_sleep, args=(target, "elsewhere", child))
    proc.start()
    assert parent.recv() == "locked"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    settings = DotlockSettings(hostname="here", stale_age=300, retry_max=0.02)
    _age(target + ".lock", 250)
    with pytest.raises(LockTimeout) as info:
        DotLock(target, settings).acquire(timeout=0.1)
    assert info.value.holder.startswith(f"elsewhere {proc.pid} ")
    assert 249 <= info.value.age <= 252
    _age(target + ".lock", 310)
    lock = DotLock(target, settings)
    lock.acquire(timeout=0)
    assert lock.held
    lock.release()


def test_same_host_dead_pid_stale_at_once(target):
    """
    A fresh lock naming this host and a pid that does not run is stale at
    once; the same content with another host is not.
    """
    proc = FORK.Process(target=os._exit, args=(0,))
    proc.start()
    proc.join()
    _write_lock(target + ".lock", f"otherhost {proc.pid}\n")
    with pytest.raises(LockTimeout):
        DotLock(target, DotlockSettings(hostname="myhost", retry_max=0.02)).acquire(0.1)
    _write_lock(target + ".lock", f"myhost {proc.pid}\n")
    with DotLock(target, DotlockSettings(hostname="myhost")) as lock:
        assert lock.held


def test_same_host_live_pid_not_stale(target):
    """
    A fresh lock naming this host and a running pid (our parent) is kept.
    """
    _write_lock(target + ".lock", f"myhost {os.getppid()}\n")
    with pytest.raises(LockTimeout):
        DotLock(target, DotlockSettings(hostname="myhost", retry_max=0.02)).acquire(0.1)


def test_future_mtime_is_not_stale(target):
    """
    A lock whose mtime is far in the future relative to us (a server clock
    ahead of ours) is not stale: its age is negative.
    """
    _write_lock(target + ".lock", "there 1\n")
    _age(target + ".lock", -3600)
    with pytest.raises(LockTimeout) as info:
        DotLock(target, DotlockSettings(stale_age=5, retry_max=0.02)).acquire(0.1)
    assert info.value.age < -3000


def test_past_mtime_beyond_stale_age_is_stale(target):
    """
    A lock whose mtime is further in the past than C{stale_age} is broken.
    """
    _write_lock(target + ".lock", "there 1\n")
    _age(target + ".lock", 11)
    with DotLock(target, DotlockSettings(stale_age=10)) as lock:
        assert lock.held


def test_local_clock_is_never_used_for_age(target, monkeypatch):
    """
    Staleness compares mtimes only: a local clock that is wildly wrong
    (time.time() off by ten days either way) changes nothing.
    """
    settings = DotlockSettings(stale_age=100, retry_max=0.02)
    real_time = time.time
    for skew in (10 * 86400, -10 * 86400):
        monkeypatch.setattr(time, "time", lambda skew=skew: real_time() + skew)
        _write_lock(target + ".lock", "there 1\n")
        _age(target + ".lock", 50)
        with pytest.raises(LockTimeout):
            DotLock(target, settings).acquire(0.05)
        _age(target + ".lock", 150)
        with DotLock(target, settings) as lock:
            assert lock.held


def test_unreadable_or_empty_lock_uses_age(target):
    """
    An empty lock file (as Python's mailbox module writes) has an unknown
    holder: it is kept until it is older than C{stale_age}.
    """
    _write_lock(target + ".lock", "")
    with pytest.raises(LockTimeout) as info:
        DotLock(target, DotlockSettings(stale_age=10, retry_max=0.02)).acquire(0.05)
    assert "unknown holder" in str(info.value)
    _age(target + ".lock", 20)
    with DotLock(target, DotlockSettings(stale_age=10)):
        pass


def test_second_breaker_does_not_remove_fresh_lock(target):
    """
    Two processes judge the same lock stale; the first breaks it and a new
    holder takes the lock; the second breaker (acting on its old judgement)
    must not remove the new holder's lock.
    """
    settings = DotlockSettings(stale_age=10, retry_max=0.02)
    _write_lock(target + ".lock", "there 1\n")
    _age(target + ".lock", 20)
    first = DotLock(target, settings)
    second = DotLock(target, settings)
    # Both observe the stale lock before anyone acts.
    fd, probe = tempfile.mkstemp(dir=os.path.dirname(target))
    os.close(fd)
    probe_st = os.stat(probe)
    os.unlink(probe)
    seen1 = first._observe(probe_st)
    seen2 = second._observe(probe_st)
    assert seen1.stale and seen2.stale
    assert first._break(seen1, Backoff(1, 0.001, 0.01))
    holder = DotLock(target, settings)
    holder.acquire(0)
    assert not second._break(seen2, Backoff(1, 0.001, 0.01))
    assert os.path.exists(target + ".lock")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        holder.release()
    assert not holder.lost


def test_breaker_puts_back_lock_replaced_during_break(target):
    """
    If the file renamed away while breaking turns out to be a different
    (fresh) lock than the one judged stale, it is put back and not broken.
    """
    settings = DotlockSettings(stale_age=10)
    _write_lock(target + ".lock", "there 1\n")
    _age(target + ".lock", 20)
    breaker = DotLock(target, settings)
    fd, probe = tempfile.mkstemp(dir=os.path.dirname(target))
    os.close(fd)
    probe_st = os.stat(probe)
    os.unlink(probe)
    seen = breaker._observe(probe_st)
    fake = FaultyOS()
    swapped = []

    def rename(src, dst):
        # Just before the rename the stale holder releases and a fresh
        # holder takes the lock.
        if not swapped:
            os.unlink(target + ".lock")
            swapped.append(DotLock(target, settings))
            swapped[0].acquire(0)
        os.rename(src, dst)

    fake.rename = rename
    breaker._os = fake
    assert not breaker._break(seen, Backoff(1, 0.001, 0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        swapped[0].release()
    assert not swapped[0].lost
    assert not os.path.exists(target + ".lock")


def test_refresh_cancels_break(target):
    """
    A holder that refreshes between a breaker's judgement and its break
    keeps the lock: the breaker re-checks the mtime under the break-lock.
    """
    settings = DotlockSettings(stale_age=10)
    holder = DotLock(target, settings)
    holder.acquire()
    _age(target + ".lock", 20)
    breaker = DotLock(target, settings)
    fd, probe = tempfile.mkstemp(dir=os.path.dirname(target))
    os.close(fd)
    probe_st = os.stat(probe)
    os.unlink(probe)
    seen = breaker._observe(probe_st)
    assert seen.stale
    time.sleep(0.01)
    holder.refresh()
    assert not breaker._break(seen, Backoff(1, 0.001, 0.01))
    holder.release()
    assert not holder.lost


def test_stale_break_lock_of_dead_breaker(target):
    """
    A break-lock left by a breaker that died (this host, pid gone) does not
    block breaking the stale lock.
    """
    proc = FORK.Process(target=os._exit, args=(0,))
    proc.start()
    proc.join()
    settings = DotlockSettings(hostname="h", stale_age=10)
    _write_lock(target + ".lock", "other 1\n")
    _age(target + ".lock", 20)
    _write_lock(target + ".lock.break", f"h {proc.pid}\n")
    with DotLock(target, settings) as lock:
        assert lock.held
    assert sorted(os.listdir(os.path.dirname(target))) == ["inbox"]


def test_cannot_lock_injected_eacces(target):
    """
    A directory we may not create files in (EACCES from the create step)
    gives L{CannotLock} naming the directory, its mode and owner and what to
    change; no file is written.
    """
    directory = os.path.dirname(target)
    os.chmod(directory, 0o775)
    fake = FaultyOS()

    def open_(path, flags, mode=0o777, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(errno.EACCES, "Permission denied", path)
        return os.open(path, flags, mode, **kwargs)

    fake.open = open_
    with pytest.raises(CannotLock) as info:
        DotLock(target, _os=fake).acquire(timeout=5)
    message = str(info.value)
    assert directory in message
    assert "mode 0775" in message
    assert "owner " in message
    assert "1777" in message and "group-writable" in message and "fcntl" in message
    assert info.value.directory == directory
    assert isinstance(info.value, LockError)
    assert os.listdir(directory) == ["inbox"]


def test_cannot_lock_read_only_fs(target):
    """
    EROFS is L{CannotLock} too, advising fcntl-only locking.
    """
    fake = FaultyOS()

    def open_(path, flags, mode=0o777, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", path)

    fake.open = open_
    with pytest.raises(CannotLock) as info:
        DotLock(target, _os=fake).acquire()
    assert "read-only" in str(info.value)


def _try_lock_as_nobody(path, reply):
    try:
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        DotLock(path).acquire(timeout=1)
        reply.send(("locked", ""))
    except Exception as e:
        reply.send((type(e).__name__, str(e)))


def test_cannot_lock_real_unwritable_directory():
    """
    A real 0775 root-owned spool: an unprivileged process (a child that
    drops root to nobody, since tests run as root) gets L{CannotLock}
    naming the directory and its mode.
    """
    base = tempfile.mkdtemp()
    try:
        os.chmod(base, 0o755)
        spool = os.path.join(base, "spool")
        os.mkdir(spool)
        os.chmod(spool, 0o775 if os.geteuid() == 0 else 0o555)
        path = os.path.join(spool, "user")
        parent, child = FORK.Pipe()
        proc = FORK.Process(target=_try_lock_as_nobody, args=(path, child))
        proc.start()
        kind, message = parent.recv()
        proc.join()
        assert kind == "CannotLock", message
        assert spool in message
        assert "mode 0775" in message or "mode 0555" in message
        assert os.listdir(spool) == []
    finally:
        os.chmod(os.path.join(base, "spool"), 0o755)
        os.rmdir(os.path.join(base, "spool"))
        os.rmdir(base)


@pytest.mark.parametrize("step", ["open", "write", "close"])
def test_enospc_while_creating(target, step):
    """
    ENOSPC while creating the unique file (at open, a short write or a
    deferred error at close) is a clear L{LockError} (not a timeout, not
    L{CannotLock}) and leaves no file behind.
    """
    fake = FaultyOS()

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if step == "open":
        fake.open = fail
    elif step == "write":
        fake.write = lambda fd, data: 0
    else:
        def close(fd):
            os.close(fd)
            fail()
        fake.close = close
    with pytest.raises(LockError) as info:
        DotLock(target, _os=fake).acquire(timeout=5)
    assert not isinstance(info.value, (CannotLock, LockTimeout))
    assert "no space" in str(info.value)
    assert os.listdir(os.path.dirname(target)) == ["inbox"]


def test_lock_removed_while_held_is_noticed(target):
    """
    If somebody removes our lock file while we hold it, release() logs it
    and warns with L{LockLost}, without raising.
    """
    lock = DotLock(target)
    lock.acquire()
    os.unlink(target + ".lock")
    with capturedLogs() as events, pytest.warns(LockLost):
        lock.release()
    assert lock.lost
    assert not lock.held
    assert "removed by someone else" in _messages(events)


def test_lock_replaced_while_held_is_not_removed(target):
    """
    If our lock file was replaced by another holder's, release() warns and
    leaves the other holder's lock in place.
    """
    lock = DotLock(target)
    lock.acquire()
    os.unlink(target + ".lock")
    other = DotLock(target)
    other.acquire(0)
    with capturedLogs() as events, pytest.warns(LockLost):
        lock.release()
    assert "replaced by someone else" in _messages(events)
    assert os.path.exists(target + ".lock")
    other.release()
    assert not other.lost


def test_lock_rewritten_in_place_within_one_clock_tick_is_not_removed(target):
    """
    A writer that ignores O_EXCL and rewrites our lock file in place keeps
    its device and inode, and on a coarse file clock its mtime too: the
    size still tells it apart, and release() leaves the other writer's
    content alone.
    """
    lock = DotLock(target)
    lock.acquire()
    path = target + ".lock"
    before = os.stat(path)
    with open(path, "w") as f:
        f.write("elsewhere 12345\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_ino == before.st_ino
    with capturedLogs() as events, pytest.warns(LockLost):
        lock.release()
    assert "replaced by someone else" in _messages(events)
    with open(path) as f:
        assert f.read() == "elsewhere 12345\n"


def test_refresh_touches_and_detects_loss(target):
    """
    refresh() moves the lock's mtime to the server's now, so a long hold
    does not look stale; after the lock file is removed it raises
    L{LockLost}; without the lock it raises L{LockError}.
    """
    lock = DotLock(target)
    with pytest.raises(LockError):
        lock.refresh()
    lock.acquire()
    _age(target + ".lock", 1000)
    lock.refresh()
    assert time.time() - os.stat(target + ".lock").st_mtime < 60
    os.unlink(target + ".lock")
    with pytest.raises(LockLost):
        lock.refresh()
    with pytest.warns(LockLost):
        lock.release()


def test_background_refresher(target):
    """
    With C{refresh_interval}, a thread keeps touching the lock while held
    and stops at release.
    """
    settings = DotlockSettings(refresh_interval=0.05)
    lock = DotLock(target, settings)
    lock.acquire()
    refresher = lock._refresher
    _age(target + ".lock", 1000)
    deadline = time.monotonic() + 5
    while time.time() - os.stat(target + ".lock").st_mtime > 60:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    lock.release()
    assert not refresher.is_alive()
    assert not os.path.exists(target + ".lock")


def _release_inherited(lock, reply):
    lock.release()
    reply.send(lock.held)


def test_forked_child_does_not_release_parents_lock(target):
    """
    A child forked while we hold the lock inherits the object; its release()
    forgets the lock without removing our lock file.
    """
    with DotLock(target) as lock:
        parent, child = FORK.Pipe()
        proc = FORK.Process(target=_release_inherited, args=(lock, child))
        proc.start()
        assert parent.recv() is False
        proc.join()
        assert os.path.exists(target + ".lock")
        assert lock.held
    assert not lock.lost


def test_unremovable_stale_lock_times_out(target):
    """
    A stale lock we may not remove (rename fails with EPERM, as for another
    user's lock in a sticky 1777 spool) is logged and waited for: the
    result is a L{LockTimeout}, not a crash, and the lock stays.
    """
    _write_lock(target + ".lock", "there 1\n")
    _age(target + ".lock", 20)
    fake = FaultyOS()

    def rename(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    fake.rename = rename
    with capturedLogs() as events:
        with pytest.raises(LockTimeout):
            DotLock(target, DotlockSettings(stale_age=10, retry_max=0.02),
                    _os=fake).acquire(0.1)
    assert "Cannot break stale lock" in _messages(events)
    assert sorted(os.listdir(os.path.dirname(target))) == ["inbox", "inbox.lock"]
