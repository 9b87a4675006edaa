# -*- test-case-name: tests.storage.mbox.test_mbox_journal -*-
"""
Crash safety of the writes that change an mbox in place
(L{storage.mbox.journal}): our appends, and whole rewrites where the spool
directory is not writable (forced here with the store's
C{rewrite_in_place}, since the tests may run as root, for whom C{chmod}
forbids nothing).

Child processes write in a loop and are killed with SIGKILL at random
points; a child killed at an exact point (inside the write, by a patched
write function) checks each recovery branch.  After each kill the file
must hold every committed message exactly once, show nothing torn, keep
mail another program appended after the crash, and never give a UID to
two messages.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import signal
import time

import pytest
from twisted.logger import formatEvent, globalLogPublisher

import storage.mbox.journal as journal_module
from locking import DotlockSettings
from storage.mbox.journal import Journal, common_prefix, overwrite
from storage.mbox.mailbox import LockSettings
from storage.mbox.store import MboxStore

FORK = multiprocessing.get_context("fork")


def _message(i: int, lines: int = 2000) -> bytes:
    body = b"".join(b"line %d of message %d, padded to span pages\r\n" % (n, i)
                    for n in range(lines))
    return b"Message-ID: <m%d@test>\r\nSubject: %d\r\n\r\n" % (i, i) + body


def _mda_message(i: int) -> bytes:
    return b"Message-ID: <mda%d@test>\r\nSubject: mda %d\r\n\r\ndelivered\r\n" % (i, i)


def _store(root: str, in_place: bool = False, fsync: bool = False) -> MboxStore:
    return MboxStore(root, "user", fsync=fsync, rewrite_in_place=in_place)


def _mda_append(path: str, i: int) -> None:
    """Append like an MDA (dotlock + fcntl, at the end of whatever is there)."""
    chain = LockSettings().chain(path, write=True)
    chain.acquire(10)
    try:
        with open(path, "ab") as f:
            f.write(b"From mda@example.org Mon Nov 23 10:00:00 2026\n"
                    + _mda_message(i).replace(b"\r\n", b"\n") + b"\n")
    finally:
        chain.release()


class Ledger:
    """What the checks saw so far: UID -> message, to catch a reused UID."""

    def __init__(self) -> None:
        self.uids: dict[int, bytes] = {}

    def check(self, root: str, committed: set[int], maybe: set[int], mda: set[int],
              readonly: bool = True) -> dict[tuple[bytes, int], int]:
        """Check the INBOX; return C{(kind, number) -> UID}."""
        box = _store(root).open("INBOX", readonly=readonly)
        snap = box.sync()
        seen: dict[tuple[bytes, int], int] = {}
        for m in snap.messages:
            data = box.read(m.uid)
            assert len(data) == m.size
            mid = re.search(rb"Message-ID: <(m|mda)(\d+)@test>", data)
            assert mid is not None, f"UID {m.uid} is not one of ours: {data[:80]!r}"
            key = (mid.group(1), int(mid.group(2)))
            expected = _message(key[1]) if key[0] == b"m" else _mda_message(key[1])
            assert data == expected, f"{key!r} torn"
            assert key not in seen, f"{key!r} twice"
            seen[key] = m.uid
            assert self.uids.setdefault(m.uid, key) == key, f"UID {m.uid} reused"
        ours = {i for kind, i in seen if kind == b"m"}
        theirs = {i for kind, i in seen if kind == b"mda"}
        assert committed <= ours, f"lost committed messages {sorted(committed - ours)}"
        assert ours <= committed | maybe, f"unexpected {sorted(ours - committed - maybe)}"
        assert theirs == mda
        box.close()
        return seen


def _appender(root: str, start: int, log: str, ready) -> None:
    box = _store(root).open("INBOX")
    ready.set()
    i = start
    while True:
        box.sync()
        t = box.transaction()
        t.append(_message(i))
        t.commit()
        # O_APPEND of one short line: whole or absent after a SIGKILL.
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, b"%d\n" % i)
        os.close(fd)
        i += 1


def _committed(log: str) -> list[int]:
    if not os.path.exists(log):
        return []
    with open(log, "rb") as f:
        return [int(x) for x in f.read().split()]


@pytest.fixture
def logged():
    events: list[str] = []

    def observer(event):
        events.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def test_sigkill_during_appends(tmp_path, logged):
    """
    ~25 SIGKILLs at random points of APPENDs (and sometimes an MDA's
    delivery right after the kill, before any repair): every committed
    message once, nothing torn shown, the MDA's mail kept, no UID reused.
    """
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root)
    store.open("INBOX").close()
    path = store.layout.inbox
    log = str(tmp_path / "committed")
    rng = random.Random(11)
    ledger = Ledger()
    mda: set[int] = set()
    maybe: set[int] = set()
    start = 0
    deadline = time.monotonic() + 30
    for kill in range(25):
        ready = FORK.Event()
        proc = FORK.Process(target=_appender, args=(root, start, log, ready))
        proc.start()
        assert ready.wait(10)
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        committed = set(_committed(log))
        in_flight = max(committed | {start - 1}) + 1
        maybe.add(in_flight)
        if kill % 3 == 1:
            # An MDA that broke our stale dotlock delivers before anyone
            # of ours looks at the file.
            _mda_append(path, kill)
            mda.add(kill)
        # A read-only look first (it repairs or hides), then a writer's.
        seen = ledger.check(root, committed, maybe, mda)
        ledger.check(root, committed, maybe, mda, readonly=False)
        start = in_flight + 1
        if time.monotonic() > deadline:
            break
    assert len(seen) >= 3
    # A journal left by a kill before the append began (the file unchanged,
    # so readers had no reason to look) goes with the next write.
    box = store.open("INBOX")
    t = box.transaction()
    t.append(_message(start))
    t.commit()
    assert not Journal(store.journal_dir, "INBOX").pending()
    ledger.check(root, committed | {start}, maybe, mda)


def _killed_inside(target, *args) -> None:
    """Run C{target} in a child that SIGKILLs itself at the patched point."""
    proc = FORK.Process(target=target, args=args)
    proc.start()
    proc.join(20)
    assert proc.exitcode == -signal.SIGKILL


def _append_torn(root: str, written: int) -> None:
    """Append one message, dying after C{written} bytes reached the file."""
    real = journal_module._pwrite_all

    def dying(fd, data, offset):
        real(fd, bytes(data[:written]), offset)
        os.kill(os.getpid(), signal.SIGKILL)

    # Offset 0 is the journal file; the mbox append is at its old end.
    journal_module._pwrite_all = lambda fd, data, offset: (
        dying(fd, data, offset) if offset else real(fd, data, offset))
    box = _store(root).open("INBOX")
    t = box.transaction()
    t.append(_message(99))
    t.commit()


@pytest.mark.parametrize("written, mda_after", [
    (0, False), (5, False), (30000, False), (30000, True), (0, True)])
def test_torn_append_is_cut(tmp_path, logged, written, mda_after):
    """
    An append killed after C{written} bytes: readers never show it, and
    the next writer cuts it out, keeping mail an MDA appended after it.
    """
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root)
    box = store.open("INBOX")
    t = box.transaction()
    t.append(_message(1))
    t.commit()
    before = os.path.getsize(store.layout.inbox)
    _killed_inside(_append_torn, root, written)
    assert os.path.getsize(store.layout.inbox) > before
    assert Journal(store.journal_dir, "INBOX").pending()
    if mda_after:
        _mda_append(store.layout.inbox, 7)
    ledger = Ledger()
    # A reader that cannot take the write lock (a dotlock directory it may
    # not write, simulated by a lock that is always held) hides the tail.
    held = LockSettings(write=("dotlock",), dotlock=DotlockSettings(timeout=0.1))
    blocker = held.chain(store.layout.inbox, write=True)
    blocker.acquire(1)
    try:
        reader = MboxStore(root, "user", fsync=False, locks=LockSettings(
            read=("fcntl",), write=("dotlock",), dotlock=DotlockSettings(timeout=0.1),
            timeout=0.1))
        snap = reader.open("INBOX", readonly=True).sync()
        assert [m.uid for m in snap.messages] == [1]
    finally:
        blocker.release()
    ledger.check(root, {1}, set(), {7} if mda_after else set(), readonly=False)
    assert not Journal(store.journal_dir, "INBOX").pending()
    assert any("Recovered" in e for e in logged)
    # The next append works and gets a fresh UID.
    box = store.open("INBOX")
    t = box.transaction()
    t.append(_message(2))
    result = t.commit()
    seen = ledger.check(root, {1, 2}, set(), {7} if mda_after else set())
    assert seen[(b"m", 2)] == result.appended[0]


def test_append_error_truncates_back(tmp_path, monkeypatch):
    """A write error in the middle of an APPEND (a full disk) leaves no trace."""
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root)
    box = store.open("INBOX")
    t = box.transaction()
    t.append(_message(1))
    t.commit()
    before = open(store.layout.inbox, "rb").read()
    real = journal_module._pwrite_all

    def full(fd, data, offset):
        real(fd, bytes(data[:100]), offset)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_module, "_pwrite_all", full)
    t = box.transaction()
    t.append(_message(2))
    with pytest.raises(Exception, match="No space"):
        t.commit()
    monkeypatch.undo()
    assert open(store.layout.inbox, "rb").read() == before
    assert not Journal(store.journal_dir, "INBOX").pending()


# -- rewrites in place ------------------------------------------------------------

COUNT = 12


def _rewriter(root: str, seed: int, ready) -> None:
    # fsync widens the journaled part of each write, where kills matter.
    box = _store(root, in_place=True, fsync=True).open("INBOX")
    ready.set()
    n = 0
    while True:
        snap = box.sync()
        oldest = snap.messages[0]
        data = box.read(oldest.uid)
        t = box.transaction()
        if n % 2:
            # Shrinks, then grows: expunge the oldest and append it again.
            t.expunge(oldest.uid)
            t.append(data, oldest.flags, oldest.internaldate)
        else:
            # Grows by a keyword on many messages (a rewrite from the first
            # message on, longer than before).
            for m in snap.messages:
                t.set_flags(m.uid, m.flags | {f"k{seed}x{n}", "longerkeywordforgrowth" * 3})
        t.commit()
        n += 1


def test_sigkill_during_in_place_rewrites(tmp_path, logged):
    """
    ~20 SIGKILLs at random points of rewrites in place, sometimes followed
    by an MDA's delivery: every message once, none torn, UIDs unique.
    """
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root, in_place=True)
    box = store.open("INBOX")
    t = box.transaction()
    for i in range(COUNT):
        t.append(_message(i, 1500))
    t.commit()
    inode = os.stat(store.layout.inbox).st_ino
    rng = random.Random(7)
    mda: set[int] = set()
    journals = 0
    deadline = time.monotonic() + 30
    for kill in range(40):
        ready = FORK.Event()
        proc = FORK.Process(target=_rewriter, args=(root, kill, ready))
        proc.start()
        assert ready.wait(10)
        time.sleep(rng.uniform(0.01, 0.12))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        journals += Journal(store.journal_dir, "INBOX").pending()
        if kill % 4 == 3:
            _mda_append(store.layout.inbox, kill)
            mda.add(kill)
        check = _store(root).open("INBOX", readonly=True)
        seen = []
        for m in check.sync().messages:
            data = check.read(m.uid)
            mid = re.search(rb"<(m|mda)(\d+)@test>", data)
            assert mid is not None, data[:100]
            i = int(mid.group(2))
            expected = _message(i, 1500) if mid.group(1) == b"m" else _mda_message(i)
            assert data == expected, f"{mid.group(0)!r} torn"
            seen.append(mid.group(0))
        assert len(seen) == len(set(seen)), "a message twice"
        assert sorted(s for s in seen if b"mda" not in s) == sorted(
            b"<m%d@test>" % i for i in range(COUNT))
        assert sorted(s for s in seen if b"mda" in s) == sorted(b"<mda%d@test>" % i for i in mda)
        if time.monotonic() > deadline:
            break
    print(journals, "kills left a journal;", sum("Recovered" in e for e in logged), "recoveries")
    assert os.stat(store.layout.inbox).st_ino == inode


# -- each recovery branch, at an exact point -----------------------------------


def _overwrite_killed(path: str, jdir: str, old: bytes, new: bytes, after: int,
                      base: int) -> None:
    """
    L{overwrite} (of the file from C{base} on) in a child that dies after
    C{after} bytes of its write.
    """
    real = journal_module._pwrite_all

    def dying(fd, data, offset):
        if fd != target:
            return real(fd, data, offset)
        real(fd, bytes(data[:after]), offset)
        os.kill(os.getpid(), signal.SIGKILL)

    journal_module._pwrite_all = dying
    target = os.open(path, os.O_RDWR)
    overwrite(target, old[base:], new[base:], Journal(jdir, "box"), fsync=False, base=base)


def _mbox(n: int, tag: bytes) -> bytes:
    return b"".join(b"From a@b Mon Nov 23 10:00:00 2026\nSubject: %s %d\n\n%s\n\n"
                    % (tag, i, b"x" * (50 * i)) for i in range(n))


@pytest.mark.parametrize("base", [0, 200])
@pytest.mark.parametrize("grow", [False, True])
@pytest.mark.parametrize("after", [0, 1, 100, 10**9])
@pytest.mark.parametrize("appended", [b"", b"From mda@x Mon Nov 23 10:00:00 2026\n\nhi\n"])
def test_overwrite_recovery_branches(tmp_path, grow, after, appended, base):
    """
    An in-place overwrite killed after C{after} bytes (and maybe followed
    by an MDA's append) is rolled back or finished, never left torn, and
    the MDA's bytes are kept.
    """
    path = str(tmp_path / "box")
    jdir = str(tmp_path / "journal")
    old = _mbox(10, b"old")
    new = old[:300] + (_mbox(12, b"grown") if grow else _mbox(3, b"cut"))
    with open(path, "wb") as f:
        f.write(old)
    _killed_inside(_overwrite_killed, path, jdir, old, new, after, base)
    journal = Journal(jdir, "box")
    assert journal.pending()
    if appended:
        with open(path, "ab") as f:
            f.write(appended)
    fd = os.open(path, os.O_RDWR)
    try:
        notes = journal_module.recover(fd, journal, False, None)
    finally:
        os.close(fd)
    assert notes and not journal.pending()
    result = open(path, "rb").read()
    assert result in (old + appended, new + appended), notes
    if after >= len(new) and not appended:
        assert result == new + appended


def test_common_prefix():
    """The first differing byte is found across chunk boundaries."""
    a = bytes(200000)
    for i in (0, 1, 65535, 65536, 65537, 199999):
        b = a[:i] + b"\x01" + a[i + 1:]
        assert common_prefix(a, b) == i
    assert common_prefix(a, a) == len(a)
    assert common_prefix(a, a[:10]) == 10


def _append_torn_to(root: str, name: str) -> None:
    """Append to mailbox C{name}, dying after 5000 bytes of the message."""
    real = journal_module._pwrite_all

    def dying(fd, data, offset):
        if not offset:
            return real(fd, data, offset)
        real(fd, bytes(data[:5000]), offset)
        os.kill(os.getpid(), signal.SIGKILL)

    journal_module._pwrite_all = dying
    box = _store(root).open(name)
    t = box.transaction()
    t.append(_message(99))
    t.commit()


def test_rename_repairs_first(tmp_path):
    """A folder with a torn append is repaired before RENAME moves it."""
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root)
    store.create("a")
    box = store.open("a")
    t = box.transaction()
    t.append(_message(1))
    t.commit()
    _killed_inside(_append_torn_to, root, "a")
    assert Journal(store.journal_dir, "a").pending()
    store.rename("a", "b")
    assert not Journal(store.journal_dir, "a").pending()
    renamed = _store(root).open("b", readonly=True)
    assert [renamed.read(m.uid) for m in renamed.sync().messages] == [_message(1)]


def test_rename_repairs_children_first(tmp_path):
    """A torn child folder is repaired before RENAME of its parent moves it."""
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root)
    store.create("p/c")
    box = store.open("p/c")
    t = box.transaction()
    t.append(_message(1))
    t.commit()
    _killed_inside(_append_torn_to, root, "p/c")
    assert Journal(store.journal_dir, "p/c").pending()
    store.rename("p", "q")
    assert not Journal(store.journal_dir, "p/c").pending()
    renamed = _store(root).open("q/c", readonly=True)
    assert [renamed.read(m.uid) for m in renamed.sync().messages] == [_message(1)]


def test_an_append_syncs_twice_and_makes_no_file(tmp_path, monkeypatch):
    """
    An append into an mbox with a stored X-IMAPbase (a delivery): the
    journal record goes over the last one with one fdatasync, the message
    and the new last UID go under one fsync of the mbox, and no file is
    made, renamed or removed (each such is a commit of the file system's
    journal, which made every delivery cost three).
    """
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root, fsync=True)
    for i in (1, 2):
        box = store.open("INBOX")
        t = box.transaction()
        t.append(_message(i, lines=3))
        t.commit()
    calls = []
    for name in ("fsync", "fdatasync", "unlink", "rename"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _n=name, _r=real: (calls.append(_n), _r(*a))[1])
    box = store.open("INBOX")
    t = box.transaction()
    t.append(_message(3, lines=3))
    (uid,) = t.commit().appended
    monkeypatch.undo()
    assert sorted(c for c in calls if c in ("fsync", "fdatasync")) == ["fdatasync", "fsync"]
    assert "rename" not in calls and calls.count("unlink") <= 2  # the dotlock's own files
    assert not Journal(store.journal_dir, "INBOX").pending()
    data = open(store.layout.inbox, "rb").read()
    assert re.search(rb"X-IMAP(base)?: \d+ 0*%d " % uid, data), data[:300]


def test_the_journal_directory_is_made_when_missing_not_looked_for_each_time(
        tmp_path, monkeypatch):
    """
    An append opens its journal record directly (making sure the directory
    exists cost three calls per delivery); a journal directory that was
    removed is made again.
    """
    import shutil

    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root)
    made = []
    real = os.makedirs
    monkeypatch.setattr(journal_module.os, "makedirs",
                        lambda *a, **k: (made.append(a[0]), real(*a, **k))[1])
    for i in range(3):
        box = store.open("INBOX")
        t = box.transaction()
        t.append(_message(i, lines=3))
        t.commit()
        box.close()
    journal_dir = store.journal_dir
    assert [d for d in made if d == journal_dir] == [journal_dir]
    shutil.rmtree(journal_dir)
    box = store.open("INBOX")
    t = box.transaction()
    t.append(_message(9, lines=3))
    t.commit()
    box.close()
    assert [d for d in made if d == journal_dir] == [journal_dir, journal_dir]
    assert not Journal(journal_dir, "INBOX").pending()
    assert [m.uid for m in store.open("INBOX").sync().messages] == [1, 2, 3, 4]


def _killed_after_the_append(root: str) -> None:
    """Append one message and die after its fsync, before the record is cleared."""
    def dying():
        os.kill(os.getpid(), signal.SIGKILL)
    Journal.clear_append = lambda self: dying()
    box = _store(root, fsync=True).open("INBOX")
    t = box.transaction()
    t.append(_message(98, lines=3))
    t.commit()


def test_a_record_left_by_a_complete_append_keeps_the_message(tmp_path, logged):
    """The record a crash left after a whole append is recognised by its hash: mail kept."""
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root)
    box = store.open("INBOX")
    t = box.transaction()
    t.append(_message(1, lines=3))
    t.commit()
    _killed_inside(_killed_after_the_append, root)
    assert Journal(store.journal_dir, "INBOX").pending()
    box = store.open("INBOX")
    t = box.transaction()
    t.append(_message(2, lines=3))
    t.commit()
    assert not Journal(store.journal_dir, "INBOX").pending()
    box = store.open("INBOX", readonly=True)
    got = [box.read(m.uid) for m in box.sync().messages]
    assert [re.search(rb"Subject: (\d+)", m).group(1) for m in got] == [b"1", b"98", b"2"]
    assert [m.uid for m in box.sync().messages] == [1, 2, 3]
