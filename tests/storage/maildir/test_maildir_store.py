# -*- test-case-name: tests.storage.maildir.test_maildir_store -*-
"""Tests for L{storage.maildir.store}: the mailbox list and subscriptions."""

from __future__ import annotations

import os

import pytest
from zope.interface.verify import verifyObject

from storage.errors import (
    InvalidMailboxName,
    MailboxExists,
    MailboxNotFound,
    StoreError,
)
from storage.interfaces import IMailbox, IStore, ITransaction

from storage_maildir_testutil import make_store


def _list(store):
    return {i.name: set(i.attributes) for i in store.list_mailboxes()}


def test_interfaces(tmp_path):
    """The store, mailbox and transaction provide their interfaces."""
    store = make_store(tmp_path)
    assert verifyObject(IStore, store)
    mailbox = store.open("INBOX")
    assert verifyObject(IMailbox, mailbox)
    assert verifyObject(ITransaction, mailbox.transaction())


def test_create_layout(tmp_path):
    """CREATE makes a .Folder.Sub Maildir with maildirfolder, mUTF-7 names."""
    store = make_store(tmp_path)
    store.create("Ünïcode/Sub")
    root = store.root
    path = os.path.join(root, ".&ANw-n&AO8-code.Sub")
    for sub in ("cur", "new", "tmp", "maildirfolder", "dovecot-uidlist"):
        assert os.path.exists(os.path.join(path, sub))
    assert os.stat(path).st_mode & 0o777 == 0o700
    # The missing parent is created too (RFC 3501 section 6.3.3 SHOULD).
    assert os.path.isdir(os.path.join(root, ".&ANw-n&AO8-code", "cur"))
    assert _list(store) == {
        "INBOX": {"\\HasNoChildren"},
        "Ünïcode": {"\\HasChildren"},
        "Ünïcode/Sub": {"\\HasNoChildren"},
    }
    with pytest.raises(MailboxExists):
        store.create("Ünïcode/Sub")
    with pytest.raises(MailboxExists):
        store.create("inbox")


def test_uidvalidity_increases(tmp_path):
    """A deleted and re-created mailbox gets a larger UIDVALIDITY."""
    store = make_store(tmp_path)
    store.create("A")
    first = store.status("A").uidvalidity
    store.delete("A")
    store.create("A")
    assert store.status("A").uidvalidity > first
    with open(os.path.join(store.root, "dovecot-uidvalidity")) as f:
        last = int(f.read(), 16)
    assert last == store.status("A").uidvalidity
    assert os.path.exists(os.path.join(store.root, f"dovecot-uidvalidity.{last:08x}"))


def test_noselect_parent_listed(tmp_path):
    """A .A.B directory without .A lists A as \\Noselect \\HasChildren."""
    store = make_store(tmp_path)
    os.makedirs(os.path.join(store.root, ".A.B", "cur"))
    os.makedirs(os.path.join(store.root, ".A.B", "new"))
    assert _list(store)["A"] == {"\\Noselect", "\\HasChildren"}
    with pytest.raises(MailboxNotFound):
        store.open("A")
    assert store.open("A/B").sync().messages == ()


def test_delete(tmp_path):
    """DELETE removes a leaf; with children it leaves a \\Noselect parent."""
    store = make_store(tmp_path)
    store.create("A/B")
    tx = store.open("A").transaction()
    tx.append(b"x\r\n")
    tx.commit()
    store.delete("A")
    assert _list(store)["A"] == {"\\Noselect", "\\HasChildren"}
    assert os.listdir(os.path.join(store.root, ".A")) == []
    with pytest.raises(StoreError, match="Noselect"):
        store.delete("A")
    store.delete("A/B")
    assert set(_list(store)) == {"INBOX", "A"}
    store.delete("A")
    assert set(_list(store)) == {"INBOX"}
    assert not [e for e in os.listdir(store.root) if e.startswith("..")]
    with pytest.raises(MailboxNotFound):
        store.delete("A")
    with pytest.raises(StoreError, match="INBOX"):
        store.delete("inbox")


def test_create_over_noselect(tmp_path):
    """CREATE on a \\Noselect leftover makes it a mailbox again."""
    store = make_store(tmp_path)
    store.create("A/B")
    store.delete("A")
    store.create("A")
    assert _list(store)["A"] == {"\\HasChildren"}


def test_rename_with_children(tmp_path):
    """RENAME moves a mailbox and its children, keeping UIDs."""
    store = make_store(tmp_path)
    store.create("A/B")
    tx = store.open("A/B").transaction()
    tx.append(b"x\r\n", ["\\Seen"])
    tx.commit()
    before = store.open("A/B").sync()
    store.rename("A", "Z/Y")
    names = _list(store)
    assert "A" not in names and "A/B" not in names
    assert names["Z/Y"] == {"\\HasChildren"}
    # The missing parent is created, as CREATE would.
    assert names["Z"] == {"\\HasChildren"}
    after = store.open("Z/Y/B").sync()
    assert (after.uidvalidity, after.messages) == (before.uidvalidity, before.messages)
    with pytest.raises(MailboxNotFound):
        store.rename("A", "Q")
    store.create("Q")
    with pytest.raises(MailboxExists):
        store.rename("Q", "Z/Y")
    with pytest.raises(InvalidMailboxName):
        store.rename("Q", "Q/sub")


def test_rename_inbox(tmp_path):
    """RENAME INBOX moves its messages (with UIDs) and leaves it empty."""
    store = make_store(tmp_path)
    inbox = store.open("INBOX")
    tx = inbox.transaction()
    for i in range(3):
        tx.append(b"m%d\r\n" % i, ["$Label1"] if i == 1 else [])
    tx.commit()
    before = inbox.sync()
    store.rename("INBOX", "Old")
    old = store.open("Old").sync()
    assert [(m.uid, m.flags) for m in old.messages] == [
        (m.uid, m.flags) for m in before.messages
    ]
    assert old.uidvalidity != before.uidvalidity
    after = store.open("INBOX").sync()
    assert after.messages == () and after.uidvalidity == before.uidvalidity
    tx = store.open("INBOX").transaction()
    tx.append(b"new\r\n")
    assert tx.commit().appended == (4,)


def test_subscriptions_dovecot_format(tmp_path):
    """Subscriptions are written in Dovecot's version 2 format."""
    store = make_store(tmp_path)
    store.subscribe("inbox")
    store.subscribe("Ünïcode/Sub")
    store.subscribe("Archive")
    store.subscribe("Archive")
    with open(os.path.join(store.root, "subscriptions"), "rb") as f:
        assert f.read() == b"V\t2\n\nINBOX\n&ANw-n&AO8-code\tSub\nArchive\n"
    assert store.subscriptions() == ["INBOX", "Ünïcode/Sub", "Archive"]
    store.unsubscribe("Ünïcode/Sub")
    assert store.subscriptions() == ["INBOX", "Archive"]
    with pytest.raises(MailboxNotFound):
        store.unsubscribe("Nope")


def test_version1_subscriptions_read(tmp_path):
    """A headerless (version 1) file uses '.' between levels."""
    store = make_store(tmp_path)
    with open(os.path.join(store.root, "subscriptions"), "wb") as f:
        f.write(b"INBOX\nA.&ANw-\n")
    assert store.subscriptions() == ["INBOX", "A/Ü"]


def test_status(tmp_path):
    """STATUS counts messages, unseen, recent (not yet claimed, with flags or not) and sizes."""
    store = make_store(tmp_path)
    tx = store.open("INBOX").transaction()
    tx.append(b"a\r\n", ["\\Seen"])
    tx.append(b"bb\nbb\n")
    tx.commit()
    status = store.status("INBOX")
    assert (status.messages, status.unseen, status.recent, status.uidnext) == (2, 1, 2, 3)
    assert status.size == 3 + 8


@pytest.mark.parametrize(
    "name",
    [
        "", "/abs", "a//b", "a/", "a/../b", "..", ".", "~user/x", "a.b", "x\x00y",
        "tab\there", "del\x7f", "a/./b", "x" * 300,
    ],
)
def test_invalid_names(tmp_path, name):
    """Names that cannot be represented safely are refused with a reason."""
    store = make_store(tmp_path)
    with pytest.raises(InvalidMailboxName):
        store.create(name)
    assert set(_list(store)) == {"INBOX"}


def test_symlink_escape_refused(tmp_path):
    """A folder directory that is a symlink out of the root is refused."""
    store = make_store(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(store.root, ".Evil"))
    with pytest.raises(InvalidMailboxName):
        store.open("Evil")


def test_inbox_case_insensitive(tmp_path):
    """'inbox', 'InBoX' and 'INBOX' are the same mailbox."""
    store = make_store(tmp_path)
    assert store.open("inbox").name == "INBOX"
    store.create("InBox/Child")
    assert "INBOX/Child" in _list(store)
    assert _list(store)["INBOX"] == {"\\HasChildren"}


def test_append_keeps_cr_before_crlf_exactly(tmp_path):
    """
    A message with CRs just before a CRLF (real spam has C{\\r\\r\\r\\n})
    reads back byte for byte, and its size matches: storing it as LF would
    lose a CR.
    """
    from storage.maildir.store import MaildirStore

    data = b"Subject: x\r\n\r\n\r\r\r\nHELLO\r\n"
    mailbox = MaildirStore(str(tmp_path / "m"), "u", fsync=False).open("INBOX")
    tx = mailbox.transaction()
    tx.append(data)
    (uid,) = tx.commit().appended
    record = {r.uid: r for r in mailbox.sync().messages}[uid]
    assert mailbox.read(uid) == data
    assert record.size == len(data)
