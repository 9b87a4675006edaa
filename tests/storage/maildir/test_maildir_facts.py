# -*- test-case-name: tests.storage.maildir.test_maildir_facts -*-
"""
INTERNALDATE and RFC822.SIZE of Maildir messages are computed on first
use (L{storage.maildir.mailbox._Facts}), not by the sync: a SELECT reads
no message file, and the values are still right when another program
renamed or deleted the file meanwhile.
"""

from __future__ import annotations

import builtins
import os
from datetime import datetime, timezone

import pytest

from storage.errors import MessageExpunged
from storage.maildir import mailbox as mailbox_module

from storage_maildir_testutil import make_store

BODY = b"Subject: x\n\nline one\nline two\n"


def _deliver(store, name, mtime, data=BODY):
    path = os.path.join(store.root, "cur", name)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))
    return path


def test_sync_reads_and_stats_no_message(tmp_path, monkeypatch):
    """The sync lists directories only; the record's facts are still unknown."""
    store = make_store(tmp_path)
    for i in range(3):
        _deliver(store, f"1700000000.M{i}P1.host:2,S", 1_600_000_000 + i)
    # Files without UIDs are statted once, to number them by mtime (rule
    # 5); then a new process (no shared state) opens the mailbox.
    store.open("INBOX").sync()
    mailbox_module._shared.clear()
    cur = os.path.join(store.root, "cur")
    real_open, real_stat = builtins.open, os.stat

    def watched_open(path, *args, **kwargs):
        assert not str(path).startswith(cur), f"message file opened: {path}"
        return real_open(path, *args, **kwargs)

    def watched_stat(path, *args, **kwargs):
        assert os.path.dirname(str(path)) != cur, f"message file statted: {path}"
        return real_stat(path, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", watched_open)
    monkeypatch.setattr(os, "stat", watched_stat)
    snap = store.open("INBOX").sync()
    monkeypatch.undo()
    assert [m.uid for m in snap.messages] == [1, 2, 3]
    assert all(m.known_size is None and m.known_internaldate is None for m in snap.messages)
    first = snap.messages[0]
    # CRLF size (RFC 3501 section 2.3.4) and the file's mtime.
    assert first.size == len(BODY) + BODY.count(b"\n")
    assert first.internaldate == datetime.fromtimestamp(1_600_000_000, timezone.utc)


def test_size_from_name_needs_no_read(tmp_path):
    """A C{,W=} field in the base name is the size, known at once."""
    store = make_store(tmp_path)
    _deliver(store, "1700000000.M1P1.host,S=29,W=33:2,", 1_600_000_000)
    (record,) = store.open("INBOX").sync().messages
    assert record.known_size == 33


def test_facts_follow_a_foreign_rename(tmp_path):
    """Another program changed the flags (renamed the file) before the ask."""
    store = make_store(tmp_path)
    path = _deliver(store, "1700000000.M1P1.host:2,", 1_600_000_000)
    (record,) = store.open("INBOX").sync().messages
    os.rename(path, path + "FS")
    assert record.internaldate == datetime.fromtimestamp(1_600_000_000, timezone.utc)
    assert record.size == len(BODY) + BODY.count(b"\n")


def test_facts_of_a_deleted_message(tmp_path):
    """A file deleted by another program before the ask: MessageExpunged."""
    store = make_store(tmp_path)
    path = _deliver(store, "1700000000.M1P1.host:2,", 1_600_000_000)
    (record,) = store.open("INBOX").sync().messages
    os.unlink(path)
    with pytest.raises(MessageExpunged):
        record.size
    with pytest.raises(MessageExpunged):
        record.internaldate


def test_read_teaches_the_size(tmp_path):
    """
    Reading a message for its content makes its size known, also to
    records built before the read: no second read (the file is gone, so
    a read would fail).
    """
    store = make_store(tmp_path)
    path = _deliver(store, "1700000000.M1P1.host:2,", 1_600_000_000)
    mailbox = store.open("INBOX")
    mailbox.sync()
    record = mailbox.record(1)
    assert record.known_size is None
    data = mailbox.read(1)
    os.unlink(path)
    assert record.size == len(data)


def test_one_listing_serves_many_foreign_renames(tmp_path, monkeypatch):
    """Another program renamed every file: the facts list the Maildir once, not per file."""
    store = make_store(tmp_path)
    paths = [_deliver(store, f"1700000000.M{i}P1.host:2,", 1_600_000_000 + i) for i in range(5)]
    records = store.open("INBOX").sync().messages
    for path in paths:
        os.rename(path, path + "S")
    listings = []
    real_scan = mailbox_module.scan
    monkeypatch.setattr(mailbox_module, "scan",
                        lambda *a, **k: listings.append(1) or real_scan(*a, **k))
    assert [r.size for r in records] == [len(BODY) + BODY.count(b"\n")] * 5
    assert len(listings) == 1
