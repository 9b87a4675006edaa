# -*- test-case-name: tests.storage.mbox.test_mbox_interop -*-
"""
Concurrent writers: our store and Python's C{mailbox.mbox} (which takes
C{lockf} and a dotlock, like mutt and procmail) append and expunge in a
loop in separate processes.  No message may be lost or duplicated, and
the UIDs our store gave stay unique.

C{mailbox.mbox} opens the file before it locks it and keeps that
descriptor; since our rewrites replace the file by rename, the other
program must check after locking that it holds the current file (as
careful MUAs do), which the helper below does.
"""

from __future__ import annotations

import mailbox
import multiprocessing
import os
import random
import re
import time

from storage.errors import MessageExpunged
from storage.mbox.store import MboxStore

FORK = multiprocessing.get_context("fork")
ROUNDS = 60


def _msg(who: str, n: int) -> bytes:
    return (b"Message-ID: <%s-%d@test>\r\nSubject: %s %d\r\n\r\n"
            b"From the %s side, message %d\r\n" % (who.encode(), n, who.encode(), n,
                                                    who.encode(), n))


def _ours(root: str, queue, who: str = "ours") -> None:
    rng = random.Random(who)
    store = MboxStore(root, "user", fsync=False)
    added, removed = [], []
    for n in range(ROUNDS):
        box = store.open("INBOX")
        t = box.transaction()
        t.append(_msg(who, n))
        t.commit()
        added.append(f"{who}-{n}")
        if n % 3 == 2:
            snap = box.sync()
            mine = {}
            for m in snap.messages:
                try:
                    data = box.read(m.uid)
                except MessageExpunged:
                    continue  # expunged by the other writer since our sync
                mid = re.search(rb"<(%s-\d+)@test>" % who.encode(), data)
                if mid and mid.group(1).decode() not in removed:
                    mine[mid.group(1).decode()] = m.uid
            victim = rng.choice(sorted(mine))
            t = box.transaction()
            t.expunge(mine[victim])
            if t.commit().expunged:
                removed.append(victim)
        box.close()
    queue.put((added, removed))


def _locked_mbox(path: str) -> mailbox.mbox:
    """mailbox.mbox locked on the file that is at C{path} now."""
    while True:
        box = mailbox.mbox(path, create=False)
        try:
            box.lock()
        except mailbox.ExternalClashError:
            box.close()
            time.sleep(random.uniform(0.001, 0.01))
            continue
        if os.fstat(box._file.fileno()).st_ino == os.stat(path).st_ino:
            return box
        box.unlock()
        box.close()


def _theirs(path: str, queue) -> None:
    rng = random.Random(2)
    added, removed = [], []
    for n in range(ROUNDS):
        box = _locked_mbox(path)
        try:
            box.add(_msg("theirs", n).replace(b"\r\n", b"\n"))
            added.append(f"theirs-{n}")
            if n % 3 == 2:
                mine = {}
                for key, message in box.iteritems():
                    mid = re.search(r"<(theirs-\d+)@test>", message["Message-ID"] or "")
                    if mid and mid.group(1) not in removed:
                        mine[mid.group(1)] = key
                victim = rng.choice(sorted(mine))
                box.remove(mine[victim])
                removed.append(victim)
            box.flush()
        finally:
            box.unlock()
            box.close()
    queue.put((added, removed))


def test_concurrent_writers_with_python_mailbox(tmp_path):
    """Appends and expunges from both sides: every message once, none lost."""
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = MboxStore(root, "user", fsync=False)
    store.open("INBOX").close()
    path = store.layout.inbox
    queue = FORK.Queue()
    procs = [FORK.Process(target=_ours, args=(root, queue)),
             FORK.Process(target=_theirs, args=(path, queue))]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    expected = set()
    for added, removed in results:
        expected |= set(added) - set(removed)
    box = store.open("INBOX")
    snap = box.sync()
    found = []
    for m in snap.messages:
        data = box.read(m.uid)
        found.append(re.search(rb"<([a-z]+-\d+)@test>", data).group(1).decode())
        assert b"side, message" in data
    assert sorted(found) == sorted(expected)
    assert len(set(m.uid for m in snap.messages)) == len(snap.messages)
    # Python's view agrees (it shows UW's pseudo message, which IMAP hides).
    other = mailbox.mbox(path, create=False)
    subjects = [m["Subject"] for m in other]
    assert subjects[0] == "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA"
    assert len(subjects) - 1 == len(expected)


def test_two_server_processes(tmp_path):
    """Two processes of our own (two nodes) appending and expunging at once."""
    root = str(tmp_path / "mail")
    os.makedirs(root)
    store = MboxStore(root, "user", fsync=False)
    store.open("INBOX").close()
    queue = FORK.Queue()
    procs = [FORK.Process(target=_ours, args=(root, queue, who)) for who in ("oursa", "oursb")]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    expected = set()
    for added, removed in results:
        expected |= set(added) - set(removed)
    box = store.open("INBOX")
    snap = box.sync()
    found = [re.search(rb"<([a-z]+-\d+)@test>", box.read(m.uid)).group(1).decode()
             for m in snap.messages]
    assert sorted(found) == sorted(expected)
    assert snap.uidnext == 2 * ROUNDS + 1
