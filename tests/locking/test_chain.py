# -*- test-case-name: tests.locking.test_chain -*-
"""
Tests for L{locking.chain.LockChain}: building from configuration names,
order, all-or-nothing, one timeout for the whole chain, C{dotlock_try}, and
a fault-injecting L{ILock} standing in for a real lock.
"""

from __future__ import annotations

import errno
import os

import pytest
from twisted.logger import capturedLogs, formatEvent
from zope.interface import implementer
from zope.interface.verify import verifyObject

from locking import (
    CannotLock,
    DotLock,
    DotlockSettings,
    FcntlLock,
    FlockLock,
    ILock,
    LockChain,
    LockError,
    LockTimeout,
)


@implementer(ILock)
class RecordingLock:
    """
    An L{ILock} that records calls in a shared journal and can be told to
    fail, as a store's tests would use it.
    """

    def __init__(self, name, journal, fail=None):
        self.name = name
        self.journal = journal
        self.fail = fail
        self.held = False
        self.timeouts = []

    def acquire(self, timeout=None):
        self.timeouts.append(timeout)
        if self.fail is not None:
            raise self.fail
        self.journal.append(("acquire", self.name))
        self.held = True

    def release(self):
        if self.held:
            self.journal.append(("release", self.name))
        self.held = False

    def refresh(self):
        self.journal.append(("refresh", self.name))

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


@pytest.fixture
def target(tmp_path):
    """
    An existing file to protect.
    """
    path = tmp_path / "mbox"
    path.write_text("")
    return str(path)


class FaultyOS:
    """
    The L{os} module, except that creating files fails with C{errno}.
    """

    def __init__(self, error):
        self.error = error

    def open(self, path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(self.error, os.strerror(self.error), path)
        return os.open(path, flags, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(os, name)


def test_from_names_builds_in_order(target):
    """
    Names map to lock classes in the configured order; the chain and its
    parts provide L{ILock}.
    """
    chain = LockChain.from_names(["dotlock", "fcntl", "flock"], target)
    assert [type(lock) for lock in chain.locks] == [DotLock, FcntlLock, FlockLock]
    assert chain.locks[0].lock_path == target + ".lock"
    verifyObject(ILock, chain)
    for lock in chain.locks:
        verifyObject(ILock, lock)
    verifyObject(ILock, LockChain.from_names(["dotlock_try"], target).locks[0])


def test_from_names_settings_and_shared(target):
    """
    The dotlock settings reach the dotlock (suffix, timeout); C{exclusive}
    reaches the kernel locks.
    """
    settings = DotlockSettings(lock_suffix=".lk", timeout=7)
    chain = LockChain.from_names(["dotlock", "fcntl"], target, settings, exclusive=False)
    assert chain.locks[0].lock_path == target + ".lk"
    assert chain.timeout == 7
    assert chain.locks[1].exclusive is False


@pytest.mark.parametrize("names", [["dotlock", "nfs"], "dotlock", ["fcntl", "fcntl"],
                                   ["dotlock", "dotlock_try"]])
def test_from_names_rejects(target, names):
    """
    Unknown or repeated names, a bare string, or dotlock with dotlock_try
    are configuration errors.
    """
    with pytest.raises(ValueError):
        LockChain.from_names(names, target)


def test_order_and_reverse_release():
    """
    Locks are acquired in order and released in reverse.
    """
    journal = []
    chain = LockChain([RecordingLock(n, journal) for n in "abc"])
    with chain:
        assert chain.held
        chain.refresh()
    assert journal == [("acquire", "a"), ("acquire", "b"), ("acquire", "c"),
                       ("refresh", "a"), ("refresh", "b"), ("refresh", "c"),
                       ("release", "c"), ("release", "b"), ("release", "a")]
    assert not chain.held


def test_all_or_nothing():
    """
    If a later lock fails, those already taken are released (in reverse)
    and the error propagates; nothing stays held.
    """
    journal = []
    locks = [RecordingLock("a", journal), RecordingLock("b", journal),
             RecordingLock("c", journal, fail=LockTimeout("busy"))]
    chain = LockChain(locks)
    with pytest.raises(LockTimeout):
        chain.acquire(1)
    assert journal == [("acquire", "a"), ("acquire", "b"),
                       ("release", "b"), ("release", "a")]
    assert not chain.held and not any(lock.held for lock in locks)


def test_one_timeout_for_whole_chain():
    """
    Each lock gets what is left of the chain's single timeout, never more.
    """
    journal = []
    locks = [RecordingLock(n, journal) for n in "ab"]
    LockChain(locks).acquire(2.0)
    assert 0 < locks[1].timeouts[0] <= locks[0].timeouts[0] <= 2.0


def test_chain_timeout_real(target):
    """
    With the dotlock held elsewhere, a real chain times out within its
    timeout and leaves the fcntl lock untaken.
    """
    with DotLock(target):
        chain = LockChain.from_names(["dotlock", "fcntl"], target)
        with pytest.raises(LockTimeout):
            chain.acquire(0.1)
        assert not chain.locks[1].held
        with FcntlLock(target, exclusive=True):
            pass


def test_dotlock_in_unwritable_dir_is_cannot_lock(target):
    """
    C{dotlock} in a directory we cannot write: L{CannotLock}, and the
    fcntl lock after it is not left held.
    """
    chain = LockChain.from_names(["dotlock", "fcntl"], target)
    chain.locks[0]._os = FaultyOS(errno.EACCES)
    with pytest.raises(CannotLock):
        chain.acquire(1)
    assert not chain.held and not chain.locks[1].held


def test_dotlock_try_goes_on_with_warning(target):
    """
    C{dotlock_try} in a directory we cannot write logs a warning and takes
    the rest of the chain.
    """
    chain = LockChain.from_names(["dotlock_try", "fcntl"], target)
    chain.locks[0].lock._os = FaultyOS(errno.EACCES)
    with capturedLogs() as events:
        chain.acquire(1)
    try:
        assert chain.held and chain.locks[1].held
        assert chain.locks[0].skipped
        assert not os.path.exists(target + ".lock")
        chain.refresh()
    finally:
        chain.release()
    text = "\n".join(formatEvent(e) for e in events)
    assert "without dotlock" in text and target in text


def test_dotlock_try_uses_dotlock_when_possible(target):
    """
    C{dotlock_try} takes the dotlock when it can and still times out when
    somebody else holds it (only "cannot create" is skipped).
    """
    chain = LockChain.from_names(["dotlock_try"], target)
    with chain:
        assert os.path.exists(target + ".lock")
        assert not chain.locks[0].skipped
        with pytest.raises(LockTimeout):
            LockChain.from_names(["dotlock_try"], target).acquire(0.05)
    assert not os.path.exists(target + ".lock")


def test_release_continues_after_failure():
    """
    One lock failing to release does not keep the others held.
    """
    journal = []

    class Broken(RecordingLock):
        def release(self):
            raise OSError("boom")

    chain = LockChain([RecordingLock("a", journal), Broken("b", journal)])
    chain.acquire(1)
    with capturedLogs():
        chain.release()
    assert ("release", "a") in journal
    assert not chain.held


def test_not_reentrant(target):
    """
    Acquiring a held chain again is an error.
    """
    with LockChain.from_names(["fcntl"], target) as chain:
        with pytest.raises(LockError):
            chain.acquire(0)


def test_server_time_is_the_dotlock_files_mtime_while_held(tmp_path):
    """
    A chain with a dotlock tells the file server's clock at acquisition
    (the lock file's mtime), which mbox syncs compare with file times
    instead of the local clock; without a held dotlock it is None.
    """
    target = tmp_path / "mbox"
    target.write_bytes(b"")
    chain = LockChain.from_names(["dotlock", "fcntl"], str(target))
    assert chain.server_time is None
    chain.acquire(5)
    try:
        assert chain.server_time == os.stat(str(target) + ".lock").st_mtime_ns / 1e9
    finally:
        chain.release()
    assert chain.server_time is None
    fcntl_only = LockChain.from_names(["fcntl"], str(target))
    with fcntl_only:
        assert fcntl_only.server_time is None
