# -*- test-case-name: tests.imapd.test_index_hygiene -*-
"""
The index keeps no dead weight: rows of expunged messages are dropped at
the next use of the index after the UID set changed (in any thread), and
DELETE and RENAME remove the databases of the mailboxes they take away.
"""

from __future__ import annotations

import glob

from imapd.cache import mailbox_identity
from index import MailboxIndex, index_path



def _message(i):
    return b"From: a%d@example.org\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (i, i, i)


def _identity(conv, name):
    store = conv.proto.account.store
    mailbox = store.open(name, True)
    try:
        return mailbox_identity(conv.proto.account.user, mailbox)
    finally:
        mailbox.close()


def _files(conv, identity):
    return glob.glob(index_path(conv.proto.account.index_dir, identity) + "*")


def _rows(conv, identity, uidvalidity):
    idx = MailboxIndex.open(conv.proto.account.index_dir, identity)
    try:
        return sorted(idx.get_many(uidvalidity, range(1, 20), ("size",)))
    finally:
        idx.close()


def test_expunged_rows_dropped_in_same_thread(authed):
    """After EXPUNGE, the next SEARCH in the same session drops the gone UIDs' rows."""
    for i in range(4):
        authed.append(f"a{i}", mailbox="INBOX", data=_message(i))
    authed.ok("s1 SELECT INBOX")
    authed.ok("q1 UID SEARCH FROM example")
    identity = _identity(authed, "INBOX")
    uidvalidity = authed.proto.selected.uidvalidity
    assert _rows(authed, identity, uidvalidity) == [1, 2, 3, 4]
    authed.ok("st UID STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    authed.ok("ex EXPUNGE")
    authed.ok("q2 UID SEARCH FROM example")
    assert _rows(authed, identity, uidvalidity) == [1, 3]


def test_expunge_by_other_session_dropped(authed, new_conv):
    """An EXPUNGE by another session is noticed at the next FETCH through the index."""
    for i in range(3):
        authed.append(f"a{i}", mailbox="INBOX", data=_message(i))
    authed.ok("s1 SELECT INBOX")
    authed.ok("f1 UID FETCH 1:* ENVELOPE")
    other = new_conv()
    other.login()
    other.ok("s2 SELECT INBOX")
    other.ok("st UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.ok("ex EXPUNGE")
    authed.ok("n1 NOOP")
    authed.ok("f2 UID FETCH 1:* ENVELOPE")
    identity = _identity(authed, "INBOX")
    assert _rows(authed, identity, authed.proto.selected.uidvalidity) == [2, 3]


def test_delete_removes_index(authed):
    """DELETE removes the mailbox's database; other mailboxes keep theirs."""
    authed.ok("c1 CREATE Old")
    authed.append("a1", mailbox="Old", data=_message(1))
    authed.append("a2", mailbox="INBOX", data=_message(2))
    identity = _identity(authed, "Old")
    inbox = _identity(authed, "INBOX")
    authed.ok("s1 SELECT Old")
    authed.ok("f1 UID FETCH 1:* ENVELOPE")
    authed.ok("s2 SELECT INBOX")
    authed.ok("f2 UID FETCH 1:* ENVELOPE")
    assert _files(authed, identity) and _files(authed, inbox)
    authed.ok("d1 DELETE Old")
    assert _files(authed, identity) == []
    assert _files(authed, inbox)


def test_failed_delete_keeps_index(authed):
    """A DELETE the store refuses removes nothing."""
    authed.ok("c1 CREATE Box")
    authed.append("a1", mailbox="Box", data=_message(1))
    identity = _identity(authed, "Box")
    authed.ok("s1 SELECT Box")
    authed.ok("f1 UID FETCH 1:* ENVELOPE")
    authed.ok("s2 SELECT INBOX")
    authed.send(b"d1 DELETE Nonexistent\r\n")
    assert authed.lines()[-1].startswith("d1 NO")
    assert _files(authed, identity)


def test_rename_removes_index_of_mailbox_and_children(authed, store_kind):
    """RENAME drops the databases of the old names, children included; the new names start cold and answer the same."""
    # An mbox mailbox cannot have children: there Top is a plain directory.
    boxes = ["Top/Child"] if store_kind == "mbox" else ["Top", "Top/Child"]
    authed.ok("c1 CREATE Top/Child")
    for i, name in enumerate(boxes):
        authed.append(f"a{i}", mailbox=name, data=_message(i))
    identities = [_identity(authed, name) for name in boxes]
    answers = {}
    for name in boxes:
        authed.ok(f"s SELECT {name}")
        authed.send(b"f UID FETCH 1:* ENVELOPE\r\n")
        answers[name] = authed.output()
    authed.ok("s3 SELECT INBOX")
    assert all(_files(authed, identity) for identity in identities)
    authed.ok("r1 RENAME Top Moved")
    assert [_files(authed, identity) for identity in identities] == [[]] * len(boxes)
    for old in boxes:
        authed.ok(f"s SELECT {old.replace('Top', 'Moved')}")
        authed.send(b"f UID FETCH 1:* ENVELOPE\r\n")
        assert authed.output() == answers[old]


def test_new_mail_costs_no_prune(authed, monkeypatch):
    """Only removed UIDs make the index prune; new mail alone does not."""
    calls = []
    real = MailboxIndex.prune
    monkeypatch.setattr(MailboxIndex, "prune",
                        lambda self, uidvalidity, live: calls.append(sorted(live))
                        or real(self, uidvalidity, live))
    for i in range(2):
        authed.append(f"a{i}", mailbox="INBOX", data=_message(i))
    authed.ok("s1 SELECT INBOX")
    authed.ok("q1 UID SEARCH FROM example")
    first = len(calls)
    authed.append("a9", mailbox="INBOX", data=_message(9))
    authed.ok("n1 NOOP")
    authed.ok("q2 UID SEARCH FROM example")
    assert len(calls) == first
    authed.ok("st UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    authed.ok("ex EXPUNGE")
    authed.ok("q3 UID SEARCH FROM example")
    assert calls[-1] == [2, 3] and len(calls) == first + 1
