# -*- test-case-name: tests.storage.mbox.test_mbox_crash -*-
"""
Crash safety of full rewrites (DESIGN.md rule 4): a child process rewrites
the mbox in a loop (each commit expunges the oldest message and appends a
copy of it, which forces a rewrite by rename) and is killed with SIGKILL
after a random delay.  Every time, the file must hold every message
exactly once and none torn.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import signal
import time

from storage.mbox.store import MboxStore

FORK = multiprocessing.get_context("fork")
COUNT = 20
KILLS = 20


def _message(i: int) -> bytes:
    body = b"".join(b"line %d of message %d\r\n" % (n, i) for n in range(200))
    return b"Message-ID: <m%d@test>\r\nSubject: %d\r\n\r\n" % (i, i) + body


def _store(root: str) -> MboxStore:
    return MboxStore(root, "user", fsync=True)


def _rewriter(root: str, ready) -> None:
    store = _store(root)
    box = store.open("INBOX")
    ready.set()
    while True:
        snap = box.sync()
        oldest = snap.messages[0]
        data = box.read(oldest.uid)
        t = box.transaction()
        t.expunge(oldest.uid)
        t.append(data, oldest.flags, oldest.internaldate)
        t.commit()


def _check(root: str) -> None:
    box = _store(root).open("INBOX", readonly=True)
    snap = box.sync()
    seen = {}
    for m in snap.messages:
        data = box.read(m.uid)
        assert len(data) == m.size
        i = int(re.search(rb"Message-ID: <m(\d+)@test>", data).group(1))
        assert i not in seen, f"message {i} twice"
        assert data == _message(i), f"message {i} torn"
        seen[i] = m.uid
    assert sorted(seen) == list(range(COUNT))
    uids = [m.uid for m in snap.messages]
    assert len(set(uids)) == len(uids)


def test_sigkill_during_rewrites(tmp_path):
    """~20 SIGKILLs at random points of rewrites never lose or tear a message."""
    root = str(tmp_path / "mail")
    os.makedirs(root)
    box = _store(root).open("INBOX")
    t = box.transaction()
    for i in range(COUNT):
        t.append(_message(i))
    t.commit()
    rng = random.Random(5)
    deadline = time.monotonic() + 25
    for _ in range(KILLS):
        ready = FORK.Event()
        proc = FORK.Process(target=_rewriter, args=(root, ready))
        proc.start()
        assert ready.wait(10)
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        _check(root)
        if time.monotonic() > deadline:
            break
    # Sessions opened after the crashes still write: a stale dotlock of a
    # killed holder is broken (this host, dead pid).
    box = _store(root).open("INBOX")
    first = box.sync().messages[0]
    t = box.transaction()
    t.set_flags(first.uid, frozenset({"\\Seen"}))
    t.commit()
    _check(root)


def test_stale_rewrite_temp_files_removed(tmp_path, monkeypatch):
    """A crashed rewrite's temporary file, an hour older than the mbox, goes."""
    import storage.mbox.mailbox as mailbox

    # Every open looks (the default looks once in CLEAN_EVERY per file).
    monkeypatch.setattr(mailbox, "CLEAN_EVERY", 0.0)
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root)
    store.open("INBOX").close()
    stale = os.path.join(root, ".imapd-rewrite.inbox.1.2")
    fresh = os.path.join(root, ".imapd-rewrite.inbox.3.4")
    for p in (stale, fresh):
        with open(p, "wb") as f:
            f.write(b"partial")
    old = os.stat(store.layout.inbox).st_mtime - 7200
    os.utime(stale, (old, old))
    store.open("INBOX").close()
    assert not os.path.exists(stale) and os.path.exists(fresh)
    assert [i.name for i in store.list_mailboxes()] == ["INBOX"]


def test_the_spool_is_listed_for_old_temp_files_once_in_a_while(tmp_path, monkeypatch):
    """
    Opening a mailbox to write (each APPEND, each delivery) does not list
    its whole directory every time: in a /var/mail of many users that cost
    as much as the write.  One look per CLEAN_EVERY seconds per file; a
    stale file goes at the first open after that.
    """
    import storage.mbox.mailbox as mailbox

    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = _store(root)
    listed = []
    real = os.listdir
    monkeypatch.setattr(mailbox.os, "listdir", lambda d: listed.append(d) or real(d))
    clock = [1000.0]
    monkeypatch.setattr(mailbox.time, "monotonic", lambda: clock[0])
    for _ in range(3):
        store.open("INBOX").close()
    assert listed == [root]
    stale = os.path.join(root, ".imapd-rewrite.inbox.1.2")
    with open(stale, "wb") as f:
        f.write(b"partial")
    old = os.stat(store.layout.inbox).st_mtime - 7200
    os.utime(stale, (old, old))
    clock[0] += mailbox.CLEAN_EVERY + 1
    store.open("INBOX").close()
    assert listed == [root, root]
    assert not os.path.exists(stale)


def test_rewrite_in_place_where_no_temp_file_can_be_made(tmp_path, monkeypatch):
    """
    A directory we may not create files in (a 0775 spool): the rewrite
    goes in place, with a warning that it is not crash-safe.
    """
    import storage.mbox.rewrite as rewrite
    from twisted.logger import formatEvent, globalLogPublisher

    root = str(tmp_path / "mail")
    os.makedirs(root)
    box = MboxStore(root, "user", fsync=False).open("INBOX")
    t = box.transaction()
    for i in range(3):
        t.append(_message(i))
    t.commit()
    real_open = os.open

    def refuse_temp(path, *args, **kw):
        if os.path.basename(str(path)).startswith(rewrite.TEMP_PREFIX):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kw)

    monkeypatch.setattr(rewrite.os, "open", refuse_temp)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        box.sync()
        t = box.transaction()
        t.expunge(2)
        t.commit()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert any("in place" in formatEvent(e) for e in events)
    monkeypatch.undo()
    fresh = MboxStore(root, "user", fsync=False).open("INBOX", readonly=True)
    assert [(m.uid, fresh.read(m.uid)) for m in fresh.sync().messages] == [
        (1, _message(0)), (3, _message(2))]
