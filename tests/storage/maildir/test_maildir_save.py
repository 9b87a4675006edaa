# -*- test-case-name: tests.storage.maildir.test_maildir_save -*-
"""Tests for L{storage.maildir.save}: append, copy, flags, expunge."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from storage.errors import MailboxReadOnly, MessageExpunged, StoreError
from storage.maildir.filename import size_field
from storage.maildir.save import split_flags

from storage_maildir_testutil import files, make_store

WHEN = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


def test_append_stores_lf_with_sizes(tmp_path):
    """
    APPENDed CRLF data is stored with LF, named with ,S= and ,W=, and read
    back in CRLF form with size == len(read()); INTERNALDATE is the mtime.
    """
    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    data = b"Subject: hi\r\n\r\nline one\r\nline two\r\n"
    tx = mailbox.transaction()
    tx.append(data, ["\\Seen", "\\Flagged"], WHEN)
    result = tx.commit()
    assert result.appended == (1,) and result.source_uids == ()
    (name,) = files(store.root)["cur"]
    assert name.endswith(":2,FS")
    base = name.split(":")[0]
    with open(os.path.join(store.root, "cur", name), "rb") as f:
        stored = f.read()
    assert stored == data.replace(b"\r\n", b"\n")
    assert size_field(base, "S") == len(stored)
    assert size_field(base, "W") == len(data)
    snap = mailbox.sync()
    (rec,) = snap.messages
    assert rec.flags == {"\\Seen", "\\Flagged"}
    assert rec.internaldate == WHEN
    assert rec.size == len(data)
    assert mailbox.read(1) == data
    assert not os.listdir(os.path.join(store.root, "tmp"))


def test_append_without_flags_goes_to_new(tmp_path):
    """
    A message with no flags is delivered to new/ like an MDA's; the first
    read-write sync moves it to cur/ and reports it \\Recent, once.
    """
    store = make_store(tmp_path)
    appender = store.open("INBOX")
    session = store.open("INBOX")
    other = store.open("INBOX")
    tx = appender.transaction()
    tx.append(b"x\r\n")
    tx.commit()
    assert len(files(store.root)["new"]) == 1
    # A read-only open shows it as recent and leaves it to the others.
    assert store.open("INBOX", readonly=True).sync().recent == {1}
    assert session.sync().recent == {1}
    assert other.sync().recent == frozenset()
    assert files(store.root)["new"] == []
    assert files(store.root)["cur"][0].endswith(":2,")
    assert session.sync().recent == {1}


def test_bare_lf_and_from_line(tmp_path):
    """Bare LFs become CRLF on read; a From_ line is kept as content."""
    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    tx = mailbox.transaction()
    tx.append(b"From someone Thu Jan  1 00:00:00 2020\nSubject: a\n\nbody\r\nmixed\n")
    tx.commit()
    mailbox.sync()
    data = mailbox.read(1)
    assert data == b"From someone Thu Jan  1 00:00:00 2020\r\nSubject: a\r\n\r\nbody\r\nmixed\r\n"
    assert mailbox.sync().messages[0].size == len(data)


def test_size_without_w_field(tmp_path):
    """Without ,W= the size is computed from the file (LF -> CRLF)."""
    store = make_store(tmp_path)
    with open(os.path.join(store.root, "cur", "procmail.123:2,S"), "wb") as f:
        f.write(b"a\nb\n")
    mailbox = store.open("INBOX")
    (rec,) = mailbox.sync().messages
    assert rec.size == 6 and mailbox.read(rec.uid) == b"a\r\nb\r\n"


def test_keywords_and_flags(tmp_path):
    """set_flags replaces flags, keeps P, and adds keyword letters."""
    store = make_store(tmp_path)
    with open(os.path.join(store.root, "cur", "m1:2,PS"), "wb") as f:
        f.write(b"x\n")
    mailbox = store.open("INBOX")
    mailbox.sync()
    tx = mailbox.transaction()
    tx.set_flags(1, frozenset({"\\Answered", "$Forwarded", "Work"}))
    assert tx.commit().flags_changed == (1,)
    assert files(store.root)["cur"] == ["m1:2,PRab"]
    with open(os.path.join(store.root, "dovecot-keywords"), "rb") as f:
        assert f.read() == b"0 $Forwarded\n1 Work\n"
    (rec,) = mailbox.sync().messages
    assert rec.flags == {"\\Answered", "$Forwarded", "Work"}
    tx = mailbox.transaction()
    tx.set_flags(1, frozenset())
    tx.commit()
    assert files(store.root)["cur"] == ["m1:2,P"]


def test_renamed_entry_is_what_a_listing_would_give(tmp_path):
    """
    After a flag change the transaction records each file's new name
    without parsing it; the next listing reuses that entry, so it must be
    exactly what parsing the name gives (unknown letters, a keyword
    letter with no name, extra info fields, an old 1, info part).
    """
    from storage.maildir.filename import MaildirName
    from storage.maildir.sync import scan

    store = make_store(tmp_path)
    for name in ("m1:2,PSz,XYZ", "m2:1,odd", "m3", "m4:2,FS"):
        with open(os.path.join(store.root, "cur", name), "wb") as f:
            f.write(b"x\n")
    mailbox = store.open("INBOX")
    mailbox.sync()
    tx = mailbox.transaction()
    for uid in (1, 2, 3, 4):
        tx.set_flags(uid, frozenset({"\\Answered", "Work"}))
    assert tx.commit().flags_changed == (1, 2, 3, 4)
    listed = scan(store.root)
    assert sorted(e.name for e in listed.values()) == [
        "m1:2,PRaz,XYZ", "m2:2,Ra", "m3:2,Ra", "m4:2,Ra"]
    for base, entry in listed.items():
        assert mailbox.known_entry(base) == entry
        assert entry.parsed == MaildirName.parse(entry.name)
    assert [m.flags for m in mailbox.sync().messages] == [{"\\Answered", "Work"}] * 4


def _one_message(tmp_path):
    """A store whose INBOX holds C{cur/m1:2,}, synced: (store, cur, mailbox)."""
    store = make_store(tmp_path)
    cur = os.path.join(store.root, "cur")
    with open(os.path.join(cur, "m1:2,"), "wb") as f:
        f.write(b"x\n")
    mailbox = store.open("INBOX")
    mailbox.sync()
    return store, cur, mailbox


def test_flags_after_foreign_rename(tmp_path):
    """If another program renamed the file, set_flags finds its new name."""
    store, cur, mailbox = _one_message(tmp_path)
    os.rename(os.path.join(cur, "m1:2,"), os.path.join(cur, "m1:2,T"))
    tx = mailbox.transaction()
    tx.set_flags(1, frozenset({"\\Seen"}))
    tx.commit()
    assert files(store.root)["cur"] == ["m1:2,S"]


def test_flags_on_a_file_another_program_put_back_in_new(tmp_path):
    """A file found in new/ at commit is renamed from there into cur/."""
    store, cur, mailbox = _one_message(tmp_path)
    os.rename(os.path.join(cur, "m1:2,"), os.path.join(store.root, "new", "m1"))
    tx = mailbox.transaction()
    tx.set_flags(1, frozenset({"\\Seen"}))
    assert tx.commit().flags_changed == (1,)
    assert files(store.root) == {"new": [], "cur": ["m1:2,S"]}


def test_expunge(tmp_path):
    """Expunge unlinks; the UID is never given again."""
    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    tx = mailbox.transaction()
    tx.append(b"a\r\n", ["\\Seen"])
    tx.append(b"b\r\n", ["\\Seen"])
    tx.commit()
    mailbox.sync()
    tx = mailbox.transaction()
    tx.expunge(2)
    tx.expunge(99)
    assert tx.commit().expunged == (2,)
    assert [m.uid for m in mailbox.sync().messages] == [1]
    with pytest.raises(MessageExpunged):
        mailbox.read(2)
    tx = mailbox.transaction()
    tx.append(b"c\r\n")
    assert tx.commit().appended == (3,)


def test_copy_keeps_flags_date_and_links(tmp_path):
    """
    COPY hard-links the file under a new base, keeps flags (keywords by
    name, with the target's letters) and INTERNALDATE, and reports source
    UIDs for UIDPLUS.
    """
    store = make_store(tmp_path)
    store.create("Dest")
    dest = store.open("Dest")
    tx = dest.transaction()
    tx.append(b"occupy\r\n", ["other"])  # "other" takes letter a in Dest
    tx.commit()
    src = store.open("INBOX")
    tx = src.transaction()
    tx.append(b"one\r\n", ["\\Seen", "$Label1"], WHEN)
    tx.append(b"two\r\n", [], WHEN)
    tx.commit()
    src.sync()
    tx = dest.transaction()
    tx.copy_from(src, [2, 1])
    result = tx.commit()
    assert result.appended == (2, 3) and result.source_uids == (2, 1)
    snap = {m.uid: m for m in dest.sync().messages}
    assert snap[3].flags == {"\\Seen", "$Label1"}
    assert snap[3].internaldate == WHEN == snap[2].internaldate
    assert dest.read(3) == b"one\r\n" and dest.read(2) == b"two\r\n"
    (copied,) = [n for n in files(dest.directory)["cur"] if n.endswith("Sb")]
    st = os.stat(os.path.join(dest.directory, "cur", copied))
    assert st.st_nlink == 2
    assert copied.split(":")[0] not in [n.split(":")[0] for n in files(store.root)["cur"]]


def test_copy_within_same_mailbox(tmp_path):
    """A mailbox may copy into itself."""
    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    tx = mailbox.transaction()
    tx.append(b"x\r\n", ["\\Flagged"])
    tx.commit()
    mailbox.sync()
    tx = mailbox.transaction()
    tx.copy_from(mailbox, [1])
    assert tx.commit().appended == (2,)
    assert [m.flags for m in mailbox.sync().messages] == [{"\\Flagged"}] * 2


def test_copy_of_expunged_fails_and_applies_nothing(tmp_path):
    """Copying a message that is gone raises; nothing is left in tmp/."""
    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    tx = mailbox.transaction()
    tx.append(b"x\r\n", ["\\Seen"])
    tx.commit()
    mailbox.sync()
    (name,) = files(store.root)["cur"]
    os.unlink(os.path.join(store.root, "cur", name))
    store.create("B")
    tx = store.open("B").transaction()
    with pytest.raises(MessageExpunged):
        tx.copy_from(mailbox, [1])
    tx.rollback()
    assert os.listdir(os.path.join(store.root, ".B", "tmp")) == []


def test_rollback(tmp_path):
    """Rollback removes the tmp/ files and changes nothing."""
    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    tx = mailbox.transaction()
    tx.append(b"x\r\n")
    tx.rollback()
    assert os.listdir(os.path.join(store.root, "tmp")) == []
    assert mailbox.sync().messages == ()
    with pytest.raises(StoreError):
        tx.commit()


def test_readonly_refuses_writes(tmp_path):
    """A read-only mailbox refuses every write."""
    store = make_store(tmp_path)
    tx = store.open("INBOX", readonly=True).transaction()
    with pytest.raises(MailboxReadOnly):
        tx.append(b"x\r\n")
    with pytest.raises(MailboxReadOnly):
        tx.expunge(1)


def test_split_flags():
    """System flags are matched case-insensitively; \\Recent is dropped."""
    assert split_flags(["\\seen", "\\Recent", "kw"]) == ("S", frozenset({"kw"}))
    with pytest.raises(StoreError):
        split_flags(["\\Bogus"])


def test_lock_unavailable(tmp_path, monkeypatch):
    """
    A uidlist lock held elsewhere past the timeout gives LockUnavailable
    (with the locking layer's message), and nothing is applied.
    """
    from locking import DotLock

    from storage.errors import LockUnavailable
    from storage.maildir import files as files_mod

    monkeypatch.setattr(files_mod, "LOCK_TIMEOUT", 0.3)
    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    tx = mailbox.transaction()
    tx.append(b"x\r\n", ["\\Seen"])
    holder = DotLock(os.path.join(store.root, "dovecot-uidlist"))
    holder.acquire()
    try:
        with pytest.raises(LockUnavailable) as info:
            tx.commit()
        assert str(info.value)
    finally:
        holder.release()
    assert mailbox.sync().messages == ()
    assert os.listdir(os.path.join(store.root, "tmp")) == []


def test_cannot_lock_maps_to_lock_unavailable(tmp_path, monkeypatch):
    """
    A lock that cannot be created at all (e.g. a spool directory without
    write permission) is a LockUnavailable carrying the locking layer's
    message, never a silent unlocked write (DESIGN.md rule 3).
    """
    import locking

    from storage.errors import LockUnavailable

    class Refusing:
        def __init__(self, path, settings=None):
            self.path = path

        def acquire(self, timeout=None):
            raise locking.CannotLock(f"cannot create {self.path}.lock: directory not writable")

        def release(self):
            raise AssertionError("never acquired")

    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    tx = mailbox.transaction()
    tx.append(b"x\r\n", ["\\Seen"])
    monkeypatch.setattr(locking, "DotLock", Refusing)
    with pytest.raises(LockUnavailable, match="directory not writable"):
        tx.commit()
    monkeypatch.undo()
    assert mailbox.sync().messages == ()


def _fsync_recorder(monkeypatch):
    """Record, in order, the renames and fsyncs (by the path of the fd) of this process."""
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", os.path.realpath(os.readlink(f"/proc/self/fd/{fd}"))))
        return real_fsync(fd)

    def rename(src, dst, *args, **kwargs):
        result = real_rename(src, dst, *args, **kwargs)
        if isinstance(dst, str) and not kwargs:
            events.append(("rename", os.path.realpath(os.path.dirname(dst))))
        return result
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    return events


@pytest.mark.parametrize("flags,where", [((), "new"), (("\\Seen",), "cur")])
def test_commit_makes_the_messages_name_durable(tmp_path, monkeypatch, flags, where):
    """
    An APPEND is acknowledged when commit returns: the rename of the
    message out of tmp/ is flushed (fsync of new/ or cur/) before then, so
    a power failure cannot leave it in tmp/ while the uidlist gives its UID.
    """
    store = make_store(tmp_path, fsync=True)
    mailbox = store.open("INBOX")
    events = _fsync_recorder(monkeypatch)
    tx = mailbox.transaction()
    tx.append(b"Subject: x\r\n\r\nbody\r\n", flags, WHEN)
    tx.commit()
    target = os.path.realpath(os.path.join(store.root, where))
    moved = events.index(("rename", target))
    assert ("fsync", target) in events[moved:]


def test_atomic_write_flushes_the_rename(tmp_path, monkeypatch):
    """A file replaced by rename (uidlist, keywords) has its directory fsynced after."""
    from storage.maildir.files import atomic_write

    events = _fsync_recorder(monkeypatch)
    atomic_write(str(tmp_path / "dovecot-uidlist"), b"3 V1 N1\n")
    moved = events.index(("rename", os.path.realpath(tmp_path)))
    assert ("fsync", os.path.realpath(tmp_path)) in events[moved:]
    events.clear()
    atomic_write(str(tmp_path / "other"), b"x", fsync=False)
    assert [e for e in events if e[0] == "fsync"] == []
