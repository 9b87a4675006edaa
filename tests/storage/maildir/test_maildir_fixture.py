# -*- test-case-name: tests.storage.maildir.test_maildir_fixture -*-
"""
The Maildir Dovecot 2.3.19 wrote (C{testdata/dovecot-2.3.19/make-fixture.py})
must show the UIDs, UIDVALIDITY, flags and keywords Dovecot showed, and
keep them when we write.
"""

from __future__ import annotations

import glob
import os

from storage.maildir.store import MaildirStore

from storage_maildir_testutil import CORPUS, copy_fixture, files

# make-fixture.py appended 14 messages with these flags, copied UIDs 1:3
# to Archive, expunged the \Deleted ones (UIDs 7 and 13, still listed in
# the lazily rewritten uidlist), then set \Seen on INBOX 2 and \Flagged on
# Archive 1.
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
# The ,W= sizes Dovecot wrote (RFC822.SIZE).
INBOX_SIZES = {
    1: 3173, 2: 8809, 3: 258, 4: 5818, 5: 290, 6: 290,
    8: 2174, 9: 1224, 10: 1391, 11: 977, 12: 881, 14: 627,
}


def _store(tmp_path):
    return MaildirStore(copy_fixture(tmp_path), "mdir", fsync=False)


def test_inbox_as_dovecot_showed_it(tmp_path):
    """INBOX: UIDVALIDITY, UIDNEXT, UIDs, flags, keywords and sizes."""
    mailbox = _store(tmp_path).open("INBOX")
    snap = mailbox.sync()
    assert snap.uidvalidity == 1795428227
    assert snap.uidnext == 15
    assert {m.uid: set(m.flags) for m in snap.messages} == INBOX
    assert {m.uid: m.size for m in snap.messages} == INBOX_SIZES
    assert snap.keywords == ("$Forwarded", "$Junk", "project-x", "$Label1")
    assert snap.recent == frozenset()


def test_other_mailboxes(tmp_path):
    """Archive, Sent and Ünïcode keep Dovecot's UIDVALIDITY and UIDs."""
    store = _store(tmp_path)
    archive = store.open("Archive").sync()
    assert (archive.uidvalidity, archive.uidnext) == (1795428225, 4)
    assert {m.uid: set(m.flags) for m in archive.messages} == ARCHIVE
    sent = store.open("Sent").sync()
    assert (sent.uidvalidity, sent.uidnext, sent.messages) == (1795428228, 1, ())
    uni = store.open("Ünïcode").sync()
    assert (uni.uidvalidity, uni.uidnext) == (1795428226, 1)


def test_list_and_subscriptions(tmp_path):
    """The folders and subscriptions Dovecot created are listed."""
    store = _store(tmp_path)
    names = {i.name: i.attributes for i in store.list_mailboxes()}
    assert set(names) == {"INBOX", "Archive", "Sent", "Ünïcode"}
    assert all(a == {"\\HasNoChildren"} for a in names.values())
    assert store.subscriptions() == ["Archive", "Ünïcode", "Sent", "INBOX"]


def test_read_gives_the_appended_bytes(tmp_path):
    """
    read() returns what the client APPENDed: the corpus message without
    its mbox From line, in CRLF form, as make-fixture.py sent it.
    """
    src = sorted(glob.glob(os.path.join(CORPUS, "notmuch/*/cur/*")))[:14]
    mailbox = _store(tmp_path).open("INBOX")
    for uid in (1, 3, 14):
        with open(src[uid - 1], "rb") as f:
            data = f.read()
        if data.startswith(b"From "):
            data = data.split(b"\n", 1)[1]
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert mailbox.read(uid) == data
        assert len(data) == INBOX_SIZES[uid]


def test_flag_change_keeps_everything_else(tmp_path):
    """
    Changing one message's flags renames only its file; the uidlist and
    keywords files stay byte-identical, and every other message keeps its
    UID and flags.
    """
    root = copy_fixture(tmp_path)
    store = MaildirStore(root, "mdir", fsync=False)
    with open(os.path.join(root, "dovecot-uidlist"), "rb") as f:
        uidlist_before = f.read()
    with open(os.path.join(root, "dovecot-keywords"), "rb") as f:
        keywords_before = f.read()
    before = files(root)
    mailbox = store.open("INBOX")
    tx = mailbox.transaction()
    tx.set_flags(4, frozenset({"\\Seen", "$Junk"}))
    result = tx.commit()
    assert result.flags_changed == (4,)
    after = files(root)
    changed = set(before["cur"]) ^ set(after["cur"])
    assert changed == {
        "1795428225.M38957P6456.vm,S=5707,W=5818:2,F",
        "1795428225.M38957P6456.vm,S=5707,W=5818:2,Sb",
    }
    with open(os.path.join(root, "dovecot-uidlist"), "rb") as f:
        assert f.read() == uidlist_before
    with open(os.path.join(root, "dovecot-keywords"), "rb") as f:
        assert f.read() == keywords_before
    expected = {**INBOX, 4: {"\\Seen", "$Junk"}}
    fresh = MaildirStore(root, "mdir").open("INBOX").sync()
    assert {m.uid: set(m.flags) for m in fresh.messages} == expected


def test_append_adds_a_uidlist_line_keeping_the_rest(tmp_path):
    """
    An append adds one line for UID 15 at the end of the uidlist, as
    Dovecot does; every existing byte (header, the lines of the gone UIDs 7
    and 13, which Dovecot also keeps until a rewrite) stays as it was.
    """
    root = copy_fixture(tmp_path)
    with open(os.path.join(root, "dovecot-uidlist"), "rb") as f:
        before = f.read()
    mailbox = MaildirStore(root, "mdir", fsync=False).open("INBOX")
    tx = mailbox.transaction()
    tx.append(b"Subject: x\r\n\r\nhi\r\n", ["project-x"])
    result = tx.commit()
    assert result.appended == (15,)
    assert result.uidvalidity == 1795428227
    with open(os.path.join(root, "dovecot-uidlist"), "rb") as f:
        after = f.read()
    assert after.startswith(before)
    added = after[len(before):].decode().splitlines()
    assert len(added) == 1 and added[0].startswith("15 :")
    snap = mailbox.sync()
    assert {m.uid: set(m.flags) for m in snap.messages} == {**INBOX, 15: {"project-x"}}
    # "project-x" is letter c in this Maildir's keywords file.
    assert any(n.endswith(":2,c") for n in files(root)["cur"])


def test_torn_uidlist_append_is_ignored_and_repaired(tmp_path):
    """
    A crash in the middle of appending a uidlist line leaves a last line
    without its newline: readers ignore it (its message never left tmp/),
    and the next append rewrites the file whole instead of gluing a line
    onto the torn one.
    """
    root = copy_fixture(tmp_path)
    path = os.path.join(root, "dovecot-uidlist")
    with open(path, "ab") as f:
        f.write(b"15 :1795428999.M1P1.torn")
    mailbox = MaildirStore(root, "mdir", fsync=False).open("INBOX")
    assert {m.uid for m in mailbox.sync().messages} == set(INBOX)
    tx = mailbox.transaction()
    tx.append(b"Subject: y\r\n\r\nhi\r\n")
    assert tx.commit().appended == (15,)
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n") and b"torn" not in data
    assert 15 in {m.uid for m in mailbox.sync().messages}
