# -*- test-case-name: tests.storage.mbox.test_mbox_fixture -*-
"""
The mbox files Dovecot 2.3.19 wrote (C{testdata/dovecot-2.3.19/
make-fixture.py}) must show exactly the UIDs, UIDVALIDITY, flags, keywords,
INTERNALDATEs and sizes Dovecot showed, and keep them when we write.
"""

from __future__ import annotations

import glob
import os
from datetime import datetime, timezone

import pytest

from storage.mbox.state import parse

from storage_mbox_testutil import CORPUS, fixture_store, read

# make-fixture.py appended 14 messages with these flags, copied UIDs 1:3 to
# Archive, expunged the \Deleted ones (UIDs 7 and 13), then set \Seen on
# INBOX 2 and \Flagged on Archive 1.
INBOX = {
    1: set(),
    2: {"\\Seen"},
    3: {"\\Seen", "\\Answered"},
    4: {"\\Flagged"},
    5: {"\\Seen", "$Forwarded"},
    6: {"\\Draft"},
    8: {"$Junk"},
    9: {"project-x", "\\Seen"},
    10: {"\\Answered", "\\Flagged", "project-x"},
    11: set(),
    12: {"\\Seen"},
    14: {"$Label1"},
}
ARCHIVE = {1: {"\\Flagged"}, 2: {"\\Seen"}, 3: {"\\Seen", "\\Answered"}}
# RFC822.SIZE as Dovecot reported it (the ,W= sizes of the Maildir twin).
INBOX_SIZES = {
    1: 3173, 2: 8809, 3: 258, 4: 5818, 5: 290, 6: 290,
    8: 2174, 9: 1224, 10: 1391, 11: 977, 12: 881, 14: 627,
}


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """The From lines hold local time; the fixture was made in UTC."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _sources():
    src = sorted(glob.glob(os.path.join(CORPUS, "notmuch", "*", "cur", "*")))[:14]
    out = {}
    for i, path in enumerate(src):
        with open(path, "rb") as f:
            data = f.read()
        if data.startswith(b"From "):
            data = data.split(b"\n", 1)[1]
        out[i + 1] = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return out


def test_inbox_as_dovecot_showed_it(tmp_path):
    """INBOX: UIDVALIDITY, UIDNEXT, UIDs, flags, keywords, dates, sizes, bytes."""
    box = fixture_store(tmp_path).open("INBOX", readonly=True)
    snap = box.sync()
    assert snap.uidvalidity == 1795428228
    assert snap.uidnext == 15
    assert {m.uid: set(m.flags) for m in snap.messages} == INBOX
    assert {m.uid: m.size for m in snap.messages} == INBOX_SIZES
    assert snap.keywords == ("$Forwarded", "$Junk", "project-x", "$Label1")
    assert snap.recent == frozenset()
    for m in snap.messages:
        assert m.internaldate == datetime.fromtimestamp(
            1700000000 + (m.uid - 1) * 86400, timezone.utc)
    sources = _sources()
    for m in snap.messages:
        assert box.read(m.uid) == sources[m.uid]


def test_other_mailboxes(tmp_path):
    """Archive keeps its UIDs and flags; Sent and Ünïcode are empty files."""
    store = fixture_store(tmp_path)
    snap = store.open("Archive", readonly=True).sync()
    assert snap.uidvalidity == 1795428225
    assert snap.uidnext == 4
    assert {m.uid: set(m.flags) for m in snap.messages} == ARCHIVE
    for name in ("Sent", "Ünïcode"):
        assert store.open(name, readonly=True).sync().messages == ()
    names = {i.name: i.attributes for i in store.list_mailboxes()}
    assert set(names) == {"INBOX", "Archive", "Sent", "Ünïcode"}
    assert store.subscriptions() == ["Archive", "Ünïcode", "Sent", "INBOX"]


def test_writes_keep_dovecot_uids(tmp_path):
    """
    A writable open stores nothing (all is stored already); flag changes,
    an expunge and an append keep every other UID, flag and keyword, and
    the file stays readable as Dovecot wrote it.
    """
    store = fixture_store(tmp_path)
    path = store.layout.inbox
    before = read(path)
    box = store.open("INBOX")
    assert read(path) == before
    t = box.transaction()
    t.set_flags(11, frozenset({"\\Seen", "$Junk"}))
    t.commit()
    t = box.transaction()
    t.expunge(4)
    t.append(b"Subject: new\r\n\r\nhello\r\n", ["\\Flagged", "later"])
    result = t.commit()
    assert result.appended == (15,)
    assert result.expunged == (4,)
    snap = store.open("INBOX", readonly=True).sync()
    expected = {u: f for u, f in INBOX.items() if u != 4}
    expected[11] = {"\\Seen", "$Junk"}
    expected[15] = {"\\Flagged", "later"}
    assert {m.uid: set(m.flags) for m in snap.messages} == expected
    assert snap.uidvalidity == 1795428228
    assert snap.uidnext == 16
    sizes = {m.uid: m.size for m in snap.messages}
    assert all(sizes[u] == s for u, s in INBOX_SIZES.items() if u != 4)
    state = parse(read(path), 1)
    assert state.stored_last_uid == 15
    assert all(e.stored_uid and e.old for e in state.entries[:-1])
