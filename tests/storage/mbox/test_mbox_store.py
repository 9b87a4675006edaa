# -*- test-case-name: tests.storage.mbox.test_mbox_store -*-
"""
The mbox store through its interfaces: append/expunge/copy round trips,
flag changes written in place, mailbox names, subscriptions, the registry
factory and C{verifyObject}.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest
from zope.interface.verify import verifyObject

from storage.errors import (
    InvalidMailboxName,
    MailboxExists,
    MailboxNotFound,
    MailboxReadOnly,
    MessageExpunged,
    StoreError,
)
from storage.interfaces import IMailbox, IStore, ITransaction
from storage.location import parse_location
from storage.mbox import open_mbox_store
from storage.mbox.state import parse

from storage_mbox_testutil import fixture_store, new_store, read, write

MSG = b"From: a@example.org\r\nSubject: %d\r\n\r\nbody %d\r\nFrom me, with love\r\n"


def _append(box, n, flags=(), date=None):
    t = box.transaction()
    for i in range(n):
        t.append(MSG % (i, i), flags, date)
    return t.commit()


def test_interfaces(tmp_path):
    """The store, a mailbox and a transaction provide their interfaces."""
    store = new_store(tmp_path)
    assert verifyObject(IStore, store)
    box = store.open("INBOX")
    assert verifyObject(IMailbox, box)
    assert verifyObject(ITransaction, box.transaction())


def test_append_read_expunge_round_trip(tmp_path):
    """
    Appended messages read back byte for byte (a body 'From ' line is
    quoted on disk and unquoted on read), with sizes equal to the bytes
    served, flags and INTERNALDATE; expunge removes exactly what it should.
    """
    store = new_store(tmp_path)
    box = store.open("INBOX")
    uidvalidity = box.uidvalidity
    date = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    result = _append(box, 3, ["\\Seen", "$Work"], date)
    assert result.appended == (1, 2, 3)
    assert result.uidvalidity == uidvalidity
    assert b"\n>From me, with love\n" in read(store.layout.inbox)
    snap = box.sync()
    assert [m.uid for m in snap.messages] == [1, 2, 3]
    for m in snap.messages:
        data = box.read(m.uid)
        assert data == MSG % (m.uid - 1, m.uid - 1)
        assert m.size == len(data)
        assert m.flags == {"\\Seen", "$Work"}
        assert m.internaldate == date
    assert snap.recent == {1, 2, 3}
    t = box.transaction()
    t.expunge(2)
    assert t.commit().expunged == (2,)
    snap = box.sync()
    assert [m.uid for m in snap.messages] == [1, 3]
    assert snap.uidnext == 4
    with pytest.raises(MessageExpunged):
        box.read(2)
    # Expunging everything keeps UIDVALIDITY and the next UID (pseudo message).
    t = box.transaction()
    t.expunge(1)
    t.expunge(3)
    t.commit()
    snap = store.open("INBOX").sync()
    assert snap.messages == ()
    assert snap.uidvalidity == uidvalidity and snap.uidnext == 4
    assert _append(box, 1).appended == (4,)


def test_recent_goes_to_one_mailbox(tmp_path):
    """The first writable sync claims new mail (Status: O); others don't see it recent."""
    store = new_store(tmp_path)
    _append(store.open("INBOX"), 2)
    assert store.status("INBOX").recent == 2
    first = store.open("INBOX")
    second = store.open("INBOX")
    assert first.sync().recent == {1, 2}
    assert second.sync().recent == frozenset()
    assert store.status("INBOX").recent == 0


def test_flag_change_in_place(tmp_path):
    """
    A flag change that fits the padding rewrites only the flag lines: the
    file keeps its size and inode, every other byte stays.
    """
    store = fixture_store(tmp_path)
    path = store.layout.inbox
    before = read(path)
    inode = os.stat(path).st_ino
    box = store.open("INBOX")
    t = box.transaction()
    t.set_flags(9, frozenset({"\\Answered", "\\Flagged", "\\Draft", "project-x", "$Label1"}))
    t.set_flags(1, frozenset({"\\Seen"}))
    assert set(t.commit().flags_changed) == {1, 9}
    after = read(path)
    assert len(after) == len(before) and os.stat(path).st_ino == inode
    diff = [i for i in range(len(before)) if before[i] != after[i]]
    state = parse(before, 1)
    blocks = [e.block for e in state.entries if e.uid in (1, 9)]
    assert all(any(s <= i < e for s, e in blocks) for i in diff)
    snap = store.open("INBOX", readonly=True).sync()
    flags = {m.uid: m.flags for m in snap.messages}
    assert flags[9] == {"\\Answered", "\\Flagged", "\\Draft", "project-x", "$Label1"}
    assert flags[1] == {"\\Seen"}


def test_flag_change_that_does_not_fit_rewrites(tmp_path):
    """Keywords longer than the padding: the file is rewritten, UIDs kept."""
    store = new_store(tmp_path)
    box = store.open("INBOX")
    _append(box, 2)
    box.sync()
    many = frozenset(f"keyword{i}" for i in range(30))
    t = box.transaction()
    t.set_flags(1, many)
    t.commit()
    snap = store.open("INBOX", readonly=True).sync()
    assert {m.uid: m.flags for m in snap.messages} == {1: many, 2: frozenset()}


def test_copy_between_mailboxes(tmp_path):
    """COPY keeps bytes, flags and INTERNALDATE; UIDPLUS data is right."""
    store = new_store(tmp_path)
    store.create("Archive")
    inbox = store.open("INBOX")
    date = datetime(2023, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    _append(inbox, 3, ["\\Flagged"], date)
    inbox.sync()
    archive = store.open("Archive")
    t = archive.transaction()
    t.copy_from(inbox, [3, 1])
    result = t.commit()
    assert result.appended == (1, 2) and result.source_uids == (3, 1)
    snap = archive.sync()
    assert [archive.read(m.uid) for m in snap.messages] == [inbox.read(3), inbox.read(1)]
    assert all(m.flags == {"\\Flagged"} and m.internaldate == date for m in snap.messages)


def test_readonly_and_bad_flags(tmp_path):
    """EXAMINE cannot write; unknown system flags are refused."""
    store = new_store(tmp_path)
    with pytest.raises(MailboxReadOnly):
        store.open("INBOX", readonly=True).transaction().append(b"x\r\n")
    with pytest.raises(StoreError):
        store.open("INBOX").transaction().append(b"x\r\n", ["\\Bogus"])


def test_client_cannot_fake_metadata(tmp_path):
    """
    X-UID/Status/X-IMAPbase/Content-Length lines of an APPENDed message do
    not count as ours (stored escaped) and read back exactly; so do header
    and body lines that look like separators.
    """
    store = new_store(tmp_path)
    box = store.open("INBOX")
    data = (b"X-UID: 999\r\nStatus: RO\r\nX-IMAPbase: 1 999\r\nSubject: s\r\n"
            b"Content-Length: 1\r\n>From x Tue Nov 14 22:13:20 2023\r\n"
            b"X-Keywords: $Junk\r\n\r\nb\r\n\r\nFrom x Tue Nov 14 22:13:20 2023\r\n")
    t = box.transaction()
    t.append(data)
    assert t.commit().appended == (1,)
    snap = box.sync()
    assert snap.uidnext == 2
    assert snap.messages[0].flags == frozenset()
    assert box.read(1) == data
    assert snap.messages[0].size == len(data)


@pytest.mark.parametrize("name", [
    "", "/abs", "~user", "a//b", "../x", "a/../b", "a/./b", ".hidden", "a/.b",
    "x.lock", "nul\x00", "tab\tname", "del\x7f", "back\\slash",
])
def test_invalid_names(tmp_path, name):
    """Names that could escape the root or clash with control files."""
    store = new_store(tmp_path)
    with pytest.raises(InvalidMailboxName):
        store.create(name)


def test_symlink_out_of_root_refused(tmp_path):
    """A level that is a symbolic link out of the root is refused."""
    store = new_store(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, os.path.join(store.root, "link"))
    with pytest.raises(InvalidMailboxName):
        store.create("link/x")


def test_hierarchy_create_delete_rename(tmp_path):
    """Directories are \\Noselect parents; rename carries children."""
    store = new_store(tmp_path)
    store.create("Work/2024/Q1")
    names = {i.name: i.attributes for i in store.list_mailboxes()}
    assert "\\Noselect" in names["Work"] and "\\HasChildren" in names["Work"]
    assert "\\Noselect" not in names["Work/2024/Q1"]
    with pytest.raises(MailboxExists):
        store.create("Work/2024/Q1")
    with pytest.raises(MailboxExists):
        store.create("Work")
    store.rename("Work", "Job")
    names = {i.name for i in store.list_mailboxes()}
    assert "Job/2024/Q1" in names and "Work" not in names
    with pytest.raises(StoreError):
        store.delete("Job")
    store.delete("Job/2024/Q1")
    with pytest.raises(MailboxNotFound):
        store.open("Job/2024/Q1")
    with pytest.raises(StoreError):
        store.delete("INBOX")
    store.create("Ünïcode")
    assert os.path.isfile(os.path.join(store.root, "&ANw-n&AO8-code"))


def test_no_mailbox_below_a_mailbox_file(tmp_path):
    """
    A name below an mbox file can neither be created (a permanent refusal,
    NO [CANNOT], not the temporary UNAVAILABLE) nor exist (DELETE says
    NONEXISTENT), as Dovecot answers; found by the differential harness.
    """
    store = new_store(tmp_path)
    store.create("Archive")
    with pytest.raises(InvalidMailboxName):
        store.create("Archive/2026")
    with pytest.raises(InvalidMailboxName):
        store.create("Archive/2026/Q1")
    with pytest.raises(MailboxNotFound):
        store.delete("Archive/2026")
    assert [i.name for i in store.list_mailboxes() if i.name.startswith("Archive")] == ["Archive"]


def test_rename_inbox(tmp_path):
    """INBOX's messages move, INBOX stays with its UIDVALIDITY and next UID."""
    store = new_store(tmp_path)
    box = store.open("INBOX")
    uidvalidity = box.uidvalidity
    _append(box, 2)
    store.rename("INBOX", "Old")
    assert [m.uid for m in store.open("Old").sync().messages] == [1, 2]
    snap = store.open("INBOX").sync()
    assert snap.messages == () and snap.uidvalidity == uidvalidity and snap.uidnext == 3


def test_subscriptions_dovecot_and_pine(tmp_path):
    """.subscriptions (Dovecot v2) is written; pine's .mailboxlist is read too."""
    store = new_store(tmp_path)
    write(os.path.join(store.root, ".mailboxlist"), b"old/folder\n")
    store.subscribe("Ünïcode")
    store.subscribe("a/b")
    assert store.subscriptions() == ["Ünïcode", "a/b", "old/folder"]
    assert read(os.path.join(store.root, ".subscriptions")) == b"V\t2\n\n&ANw-n&AO8-code\na\tb\n"
    store.unsubscribe("old/folder")
    assert store.subscriptions() == ["Ünïcode", "a/b"]
    with pytest.raises(MailboxNotFound):
        store.unsubscribe("never")


def test_registry_factory(tmp_path):
    """mbox:<root>/%u puts INBOX at <root>/<user>/inbox; INBOX= moves it."""
    location = parse_location(f"mbox:{tmp_path}/%u", "joe")
    store = open_mbox_store(location, "joe", None)
    _append(store.open("INBOX"), 1)
    assert os.path.isfile(tmp_path / "joe" / "inbox")
    location = parse_location(f"mbox:{tmp_path}/m/%u:INBOX={tmp_path}/spool/%u", "ann")
    os.makedirs(tmp_path / "spool")
    store = open_mbox_store(location, "ann", None)
    _append(store.open("INBOX"), 1)
    assert os.path.isfile(tmp_path / "spool" / "ann")
    assert [i.name for i in store.list_mailboxes()] == ["INBOX"]


@pytest.mark.parametrize("data", [
    b"Subject: cr\r\n\r\n\r\r\r\nHELLO\r\n",
    b"Subject: cr\r\r\nX: y\r\n\r\nbody\r\r\n\r\n",
    b"\r\nno header\r\n",
    b"Subject: no body\r\n",
])
def test_awkward_line_endings_round_trip(tmp_path, data):
    """CR before CRLF, an empty header, no body: BODY[] is what was appended."""
    store = new_store(tmp_path)
    box = store.open("INBOX")
    t = box.transaction()
    t.append(data)
    t.append(b"Subject: next\r\n\r\nx\r\n")
    t.commit()
    snap = box.sync()
    assert box.read(1) == data and snap.messages[0].size == len(data)
    assert box.read(2) == b"Subject: next\r\n\r\nx\r\n"


UW_FILE = (
    b"From MAILER-DAEMON Fri Jan  5 10:00:00 2024\n"
    b"Date: Fri, 5 Jan 2024 10:00:00 +0000\n"
    b"From: Mail System Internal Data <MAILER-DAEMON@uw.example>\n"
    b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
    b"X-IMAP: 1704448800 0000000007 $Todo\n"
    b"Status: RO\n\n"
    b"This text is part of the internal format of your mail folder.\n\n"
    b"From bob@example.org Fri Jan  5 11:00:00 2024\n"
    b"Subject: first\n"
    b"Status: RO\nX-Status: F\nX-Keywords: $Todo\nX-UID: 3\n\n"
    b"one\n\n"
    b"From bob@example.org Fri Jan  5 12:00:00 2024\n"
    b"Subject: second\n"
    b"Status: O\nX-UID: 6\n\n"
    b"two\n\n"
)


def test_uw_pseudo_message_read_kept_hidden(tmp_path):
    """
    UW-IMAP's folder: the pseudo message's X-IMAP gives UIDVALIDITY and the
    last UID; it is never shown, and it survives a rewrite (with the new
    last UID) while X-IMAPbase is not added to the first real message.
    """
    store = new_store(tmp_path)
    path = os.path.join(store.root, "uw")
    write(path, UW_FILE)
    box = store.open("uw")
    snap = box.sync()
    assert snap.uidvalidity == 1704448800 and snap.uidnext == 8
    assert [(m.uid, set(m.flags)) for m in snap.messages] == [
        (3, {"\\Seen", "\\Flagged", "$Todo"}), (6, set())]
    assert box.read(3) == b"Subject: first\r\n\r\none\r\n"
    t = box.transaction()
    t.expunge(6)
    t.append(b"Subject: third\r\n\r\nthree\r\n")
    assert t.commit().appended == (8,)
    data = read(path)
    assert data.startswith(b"From MAILER-DAEMON Fri Jan  5 10:00:00 2024\n")
    assert b"X-IMAP: 1704448800 0000000008 $Todo" in data
    assert b"X-IMAPbase" not in data
    snap = store.open("uw", readonly=True).sync()
    assert [m.uid for m in snap.messages] == [3, 8] and snap.uidnext == 9


def test_new_keyword_added_in_place(tmp_path):
    """
    A keyword new to the mailbox goes into X-IMAPbase's padding: the file
    keeps its inode and size, only that line and the flag block change;
    once the padding is used up, a rewrite pads the line again.
    """
    store = new_store(tmp_path)
    box = store.open("INBOX")
    _append(box, 3)
    box.sync()
    path = store.layout.inbox
    before = read(path)
    inode = os.stat(path).st_ino
    t = box.transaction()
    t.set_flags(2, frozenset({"$Important", "\\Seen"}))
    t.commit()
    after = read(path)
    assert len(after) == len(before) and os.stat(path).st_ino == inode
    old_state, new_state = parse(before, 1), parse(after, 1)
    assert new_state.keywords == ("$Important",)
    spans = [old_state.base_span, old_state.entries[1].block]
    assert all(any(s <= i < e for s, e in spans)
               for i in range(len(before)) if before[i] != after[i])
    fresh = store.open("INBOX", readonly=True)
    assert {m.uid: m.flags for m in fresh.sync().messages}[2] == {"$Important", "\\Seen"}
    assert fresh.last_snapshot.keywords[:1] == ("$Important",)
    # The same object knows the keyword is listed now: a second message
    # with it is a flag-block write only.
    t = box.transaction()
    t.set_flags(3, frozenset({"$Important"}))
    t.commit()
    assert len(read(path)) == len(before) and os.stat(path).st_ino == inode
    # Keywords until the padding runs out: then one rewrite, padded again.
    for i in range(12):
        t = box.transaction()
        t.set_flags(1, frozenset({f"kw{i:02d}longer"}))
        t.commit()
    assert os.stat(path).st_ino != inode
    state = parse(read(path), 1)
    assert state.keywords[:2] == ("$Important", "kw00longer")
    assert len(state.keywords) == 13
    line = read(path)[state.base_span[0]:state.base_span[1]]
    assert line.endswith(b" " * 20 + b"\n")
    snap = store.open("INBOX", readonly=True).sync()
    assert {m.uid: m.flags for m in snap.messages} == {
        1: {"kw11longer"}, 2: {"$Important", "\\Seen"}, 3: {"$Important"}}
