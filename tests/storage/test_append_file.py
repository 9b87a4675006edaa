# -*- test-case-name: tests.storage.test_append_file -*-
"""
ITransaction.append_file (issue 18 item 4: a CATENATE message is copied
into the store from a file, chunk by chunk): on both stores, the message
stored from a file is the one L{ITransaction.append} stores from the same
bytes, whatever falls on a chunk's edge (a CRLF, a C{From } line to quote,
a CR before a CRLF that keeps the message in CRLF).
"""

from __future__ import annotations

import io
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import storage.crlf

sys.path.insert(0, str(Path(__file__).resolve().parent / "maildir"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "mbox"))

from storage_maildir_testutil import make_store  # noqa: E402
from storage_mbox_testutil import new_store  # noqa: E402
from storage.maildir.filename import size_field  # noqa: E402

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)

MESSAGES = [
    b"Subject: a\r\n\r\nbody\r\nFrom me\r\n>From you\r\nend\r\n",
    b"Subject: b\r\nX-UID: 99\r\n\r\nFrom \r\nx\r\n",
    b"Subject: c\r\n\r\nspam\r\r\nline\r\n",
    b"Subject: d\nbare LF\n\nFrom x\n",
    b"Subject: all header, no blank line\r\nX: y",
    b"\r\nFrom the first line of a body\r\n",
    b"Subject: e\r\n\r\n" + b"".join(b">" * (i % 4) + b"From %d\r\n" % i for i in range(40)),
]


def _stores(tmp_path, kind: str):
    if kind == "maildir":
        return make_store(tmp_path / "a"), make_store(tmp_path / "b")
    return new_store(tmp_path / "a"), new_store(tmp_path / "b")


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_append_file_stores_what_append_stores(tmp_path, monkeypatch, kind, chunk):
    monkeypatch.setattr(storage.crlf, "CHUNK", chunk)
    by_bytes, by_file = _stores(tmp_path, kind)
    for store, from_file in ((by_bytes, False), (by_file, True)):
        mailbox = store.open("INBOX", False)
        tx = mailbox.transaction()
        for data in MESSAGES:
            if from_file:
                f = io.BytesIO(b"ignored" + data)
                f.seek(len(b"ignored"))
                tx.append_file(f, ["\\Seen"], WHEN)
            else:
                tx.append(data, ["\\Seen"], WHEN)
        assert tx.commit().appended == tuple(range(1, len(MESSAGES) + 1))
        mailbox.close()
    a, b = by_bytes.open("INBOX", True), by_file.open("INBOX", True)
    records_a, records_b = a.sync().messages, b.sync().messages
    assert [(r.uid, r.size, r.flags, r.internaldate) for r in records_a] == \
        [(r.uid, r.size, r.flags, r.internaldate) for r in records_b]
    for record, data in zip(records_b, MESSAGES):
        assert b.read(record.uid) == a.read(record.uid)
        assert record.size == len(b.read(record.uid))
    if kind == "maildir":
        names_a = sorted(os.listdir(os.path.join(by_bytes.root, "cur")))
        names_b = sorted(os.listdir(os.path.join(by_file.root, "cur")))
        for name_a, name_b in zip(sorted(names_a, key=_uid_order(by_bytes)),
                                  sorted(names_b, key=_uid_order(by_file))):
            for key in ("S", "W"):
                assert size_field(name_a.split(":")[0], key) == \
                    size_field(name_b.split(":")[0], key)
            with open(os.path.join(by_bytes.root, "cur", name_a), "rb") as fa, \
                    open(os.path.join(by_file.root, "cur", name_b), "rb") as fb:
                assert fa.read() == fb.read()
        assert not os.listdir(os.path.join(by_file.root, "tmp"))
    a.close()
    b.close()


def _uid_order(store):
    """Sort key of a Maildir's file names by the UID the uidlist gives them."""
    with open(os.path.join(store.root, "dovecot-uidlist"), "rb") as f:
        lines = f.read().decode().splitlines()[1:]
    uid_of = {}
    for line in lines:
        uid, rest = line.split(" ", 1)
        uid_of[rest.split(":")[-1].strip()] = int(uid)
    return lambda name: uid_of.get(name.split(":")[0], 0)


def test_mbox_rewrite_writes_a_spooled_body(tmp_path, monkeypatch):
    """
    A commit that rewrites the whole mbox (here: an expunge with the
    append) writes a body appended from a file too, not only the in-place
    append.
    """
    monkeypatch.setattr(storage.crlf, "CHUNK", 5)
    store = new_store(tmp_path)
    mailbox = store.open("INBOX", False)
    tx = mailbox.transaction()
    tx.append(b"Subject: old\r\n\r\nold\r\n")
    tx.commit()
    data = MESSAGES[0]
    tx = mailbox.transaction()
    tx.expunge(1)
    tx.append_file(io.BytesIO(data), ["\\Seen"], WHEN)
    assert tx.commit().appended == (2,)
    (record,) = mailbox.sync().messages
    assert record.uid == 2 and mailbox.read(2) == data and record.size == len(data)
    mailbox.close()
