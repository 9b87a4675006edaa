# -*- test-case-name: tests.locking.test_locking_mbox_interop -*-
"""
Interoperation with another mail program's locking: Python's
C{mailbox.mbox.lock()} takes a C{lockf()} lock and a dotlock (the same pair
procmail and mutt use).  Our C{["dotlock", "fcntl"]} chain and it must
exclude each other, in both directions, for each lock of the pair.
"""

from __future__ import annotations

import mailbox
import multiprocessing
import os
import random
import time

import pytest

from locking import DotLock, FcntlLock, LockChain, LockTimeout

FORK = multiprocessing.get_context("fork")

MESSAGE = "From: a@example.org\nSubject: hello\n\nbody\n"


@pytest.fixture
def mbox_path(tmp_path):
    """
    An mbox with one message.
    """
    path = str(tmp_path / "inbox")
    box = mailbox.mbox(path)
    box.add(MESSAGE)
    box.close()
    return path


def _content(path):
    with open(path, "rb") as f:
        return f.read()


def _hold_with_mailbox(path, ready, done):
    box = mailbox.mbox(path)
    box.lock()
    ready.set()
    done.wait(30)
    # Write only now, while holding mailbox's locks, then let go.
    box.add(MESSAGE)
    box.flush()
    box.unlock()
    box.close()


def _hold_with_chain(path, names, ready, done):
    with LockChain.from_names(names, path):
        ready.set()
        done.wait(30)
        with open(path, "a") as f:
            f.write("From b@example.org Thu Jan  1 00:00:00 2026\n\nmore\n\n")


def _start(target, *args):
    ready, done = FORK.Event(), FORK.Event()
    proc = FORK.Process(target=target, args=args + (ready, done))
    proc.start()
    assert ready.wait(10)
    return proc, done


def test_chain_waits_for_mailbox_lock(mbox_path):
    """
    While another process holds C{mailbox.mbox.lock()}, our chain times
    out (and so do its dotlock and fcntl parts alone, each excluded by its
    counterpart), so we write nothing; afterwards we get the lock and see
    the other process's write.
    """
    before = _content(mbox_path)
    proc, done = _start(_hold_with_mailbox, mbox_path)
    try:
        chain = LockChain.from_names(["dotlock", "fcntl"], mbox_path)
        with pytest.raises(LockTimeout):
            chain.acquire(0.2)
        assert not chain.held
        with pytest.raises(LockTimeout):
            DotLock(mbox_path).acquire(0.1)
        with pytest.raises(LockTimeout) as info:
            FcntlLock(mbox_path).acquire(0.1)
        assert info.value.holder == f"pid {proc.pid}"
        assert _content(mbox_path) == before
    finally:
        done.set()
        proc.join()
    with LockChain.from_names(["dotlock", "fcntl"], mbox_path):
        assert len(mailbox.mbox(mbox_path)) == 2


@pytest.mark.parametrize("names", [["dotlock", "fcntl"], ["dotlock"], ["fcntl"]])
def test_mailbox_refused_while_chain_held(mbox_path, names):
    """
    While another process holds our chain (or only its dotlock, or only
    its fcntl lock), C{mailbox.mbox.lock()} is refused, so that program
    writes nothing; after we release, it locks fine.
    """
    before = _content(mbox_path)
    proc, done = _start(_hold_with_chain, mbox_path, names)
    try:
        box = mailbox.mbox(mbox_path)
        with pytest.raises(mailbox.ExternalClashError):
            box.lock()
        assert _content(mbox_path) == before
        box.close()
    finally:
        done.set()
        proc.join()
    box = mailbox.mbox(mbox_path)
    box.lock()
    box.unlock()
    box.close()
    assert _content(mbox_path) != before


def _mailbox_increments(path, count, start):
    # mailbox's own lock functions, as mbox.lock() calls them; they never
    # wait, so retry like a mail program would.
    start.wait()
    done = 0
    while done < count:
        with open(path, "r+") as f:
            try:
                mailbox._lock_file(f)
            except mailbox.ExternalClashError:
                time.sleep(random.uniform(0.0005, 0.002))
                continue
            try:
                value = int(f.read())
                f.seek(0)
                f.write(str(value + 1))
                f.truncate()
                f.flush()
            finally:
                mailbox._unlock_file(f)
        done += 1
    os._exit(0)


def _chain_increments(path, count, start):
    chain = LockChain.from_names(["dotlock", "fcntl"], path)
    start.wait()
    for _ in range(count):
        with chain:
            with open(path) as f:
                value = int(f.read())
            with open(path, "w") as f:
                f.write(str(value + 1))
    os._exit(0)


def test_mixed_writers_counter(tmp_path):
    """
    4 processes locking like C{mailbox.mbox} and 4 using our chain, 150
    non-atomic increments each, end at exactly 1200.
    """
    path = str(tmp_path / "counter")
    with open(path, "w") as f:
        f.write("0")
    start = FORK.Event()
    procs = [FORK.Process(target=fn, args=(path, 150, start))
             for fn in [_mailbox_increments, _chain_increments] * 4]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    with open(path) as f:
        assert int(f.read()) == 1200
