"""
The Maildir store through two nfsfuse mounts of one directory (issue 20):
what one node sees through its caches must never make it drop a uidlist
line, miss a flag change or read an old keyword map.  Each test fails
when the store trusts a cached listing or stat.
"""

from __future__ import annotations

import os
import time

from nfsmount import NFSOptions

from storage.maildir.mailbox import MaildirMailbox
from storage.maildir.uidlist import UidlistFile

#: Long caches, so that only a flush can make a change elsewhere visible.
LONG = NFSOptions(acregmin=30, acdirmin=30, link_replay=0, clock_offset=0)


def _maildir(source) -> None:
    for sub in ("cur", "new", "tmp"):
        (source / "box" / sub).mkdir(parents=True, exist_ok=True)


def _open(mount, readonly: bool = False) -> MaildirMailbox:
    return MaildirMailbox("INBOX", str(mount.path / "box"), lambda: 1234, readonly=readonly)


def _append(box: MaildirMailbox, data: bytes, flags=()) -> int:
    tx = box.transaction()
    tx.append(data, flags)
    return tx.commit().appended[0]


def test_the_mount_is_judged_shared(nfs_mounts):
    (a,) = nfs_mounts(1, LONG)
    _maildir(a.source)
    assert _open(a).nfs is True


def test_a_line_of_another_node_survives_a_stale_listing(nfs_mounts):
    """
    Node B holds the uidlist lock to number a delivery (for a STATUS: a
    read-only open, which moves no file and so changes nothing in cur/
    itself) while its cached listing of cur/ predates node A's APPEND: the
    line A wrote must stay.  The old store "confirmed" the file missing by
    listing the same cache again and dropped the line; the message then
    got a second UID.
    """
    a, b = nfs_mounts(2, LONG)
    _maildir(a.source)
    node_b = _open(b, readonly=True)
    node_b.sync()                                    # B caches cur/ and new/ (empty)
    uid = _append(_open(a), b"Subject: from A\n\nbody\n", ["\\Seen"])   # -> cur/
    assert uid == 1
    # An MDA delivers through B: B lists new/ afresh, cur/ from its cache.
    (b.path / "box" / "tmp" / "mda1").write_bytes(b"Subject: mda\n\nbody\n")
    os.rename(b.path / "box" / "tmp" / "mda1", b.path / "box" / "new" / "mda1")
    snapshot = node_b.sync()
    records = {r.base: r.uid for r in UidlistFile(str(a.source / "box")).read().records}
    assert sorted(records.values()) == [1, 2], records
    assert records["mda1"] == 2
    assert [m.uid for m in snapshot.messages] == [1, 2]


def test_a_flag_change_finds_the_name_another_node_gave(nfs_mounts):
    """
    B's STORE renames the file by the name its listing had; A renamed it
    meanwhile.  The retry must list through a flushed cache, or the STORE
    answers OK and changes nothing.
    """
    a, b = nfs_mounts(2, LONG)
    _maildir(a.source)
    node_a = _open(a)
    uid = _append(node_a, b"Subject: x\n\nbody\n", ["\\Seen"])
    node_b = _open(b)
    node_b.sync()                                    # B knows cur/<base>:2,S
    node_a.sync()
    tx = node_a.transaction()
    tx.set_flags(uid, frozenset({"\\Seen", "\\Answered"}))
    tx.commit()                                      # now cur/<base>:2,RS
    tx = node_b.transaction()
    tx.set_flags(uid, frozenset({"\\Seen", "\\Flagged"}))
    assert tx.commit().flags_changed == (uid,)
    names = os.listdir(a.source / "box" / "cur")
    assert len(names) == 1 and names[0].endswith(":2,FS"), names


def test_keywords_another_node_added_are_read(nfs_mounts):
    a, b = nfs_mounts(2, LONG)
    _maildir(a.source)
    node_b = _open(b)
    _append(node_b, b"Subject: k\n\nbody\n", ["$First"])    # B reads dovecot-keywords
    assert set(node_b.keywords.read().values()) == {"$First"}
    _open(a).keywords.letters_for({"$Second"})              # A rewrites it by rename
    assert set(node_b.keywords.read().values()) == {"$First", "$Second"}


def test_without_nfs_storage_the_cache_shows(nfs_mounts):
    """The control: with the flushes off, the stale listing is what B sees."""
    a, b = nfs_mounts(2, LONG)
    _maildir(a.source)
    node_b = MaildirMailbox("INBOX", str(b.path / "box"), lambda: 1234, nfs=False)
    node_b.sync()
    _append(_open(a), b"Subject: from A\n\nbody\n", ["\\Seen"])
    time.sleep(0.1)
    assert node_b.sync().messages == ()
