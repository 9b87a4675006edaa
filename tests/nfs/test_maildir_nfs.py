"""
The Maildir store through two nfsfuse mounts of one directory (issue 20):
what one node sees through its caches must never make it drop a uidlist
line, miss a flag change or read an old keyword map.  Each test fails
when the store trusts a cached listing or stat.
"""

from __future__ import annotations

import os
import threading
import time

from nfsmount import NFSOptions

from storage.maildir.mailbox import MaildirMailbox
from storage.maildir.uidlist import UIDLIST_NAME, UidlistFile

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


def test_a_folder_another_node_made_is_listed(nfs_mounts):
    from storage.maildir.store import MaildirStore

    a, b = nfs_mounts(2, LONG)
    _maildir(a.source)
    store_a = MaildirStore(str(a.path / "box"), "alice")
    store_b = MaildirStore(str(b.path / "box"), "alice")
    assert [m.name for m in store_b.list_mailboxes()] == ["INBOX"]
    store_a.create("Archive")
    assert sorted(m.name for m in store_b.list_mailboxes()) == ["Archive", "INBOX"]


def test_a_flag_change_is_not_fooled_by_cached_attributes(nfs_mounts):
    """
    As above, but B has also looked at the file by its old name (a FETCH
    INTERNALDATE stats it), so its attribute cache still says the old name
    exists after A renamed it: the retry must list, not trust an lstat,
    or all five attempts rename the same dead name and the STORE and the
    EXPUNGE silently do nothing.
    """
    a, b = nfs_mounts(2, LONG)
    _maildir(a.source)
    node_a = _open(a)
    first = _append(node_a, b"Subject: x\n\nbody\n", ["\\Seen"])
    second = _append(node_a, b"Subject: y\n\nbody\n", ["\\Seen"])
    node_b = _open(b)
    node_b.sync()
    for uid in (first, second):
        node_b.record(uid).internaldate       # B stats cur/<base>:2,S
    node_a.sync()
    tx = node_a.transaction()
    for uid in (first, second):
        tx.set_flags(uid, frozenset({"\\Seen", "\\Answered"}))
    tx.commit()
    tx = node_b.transaction()
    tx.set_flags(first, frozenset({"\\Seen", "\\Flagged"}))
    tx.expunge(second)
    result = tx.commit()
    assert result.flags_changed == (first,) and result.expunged == (second,)
    names = os.listdir(a.source / "box" / "cur")
    assert len(names) == 1 and names[0].endswith(":2,FS"), names


def test_an_unchanged_maildir_is_not_listed_again_but_a_change_is_seen(nfs_mounts, monkeypatch):
    """
    Once the directories have looked the same (as the server has them) for
    DIRTY_WINDOW seconds of B's own clock, B reuses its listing instead of
    listing every file at every command; a change through A is still seen
    at B's next sync, whatever B's attribute cache holds.
    """
    import storage.maildir.mailbox as mailbox_module

    a, b = nfs_mounts(2, NFSOptions(acregmin=30, acdirmin=30, link_replay=0, clock_offset=-50))
    _maildir(a.source)
    node_a = _open(a)
    _append(node_a, b"Subject: one\n\nbody\n", ["\\Seen"])
    node_b = _open(b)
    node_b.sync()
    time.sleep(mailbox_module.DIRTY_WINDOW + 0.2)
    node_b.sync()                 # listed once the signature had settled
    listings = []
    real_scan = mailbox_module.scan
    monkeypatch.setattr(mailbox_module, "scan",
                        lambda *args, **kw: listings.append(1) or real_scan(*args, **kw))
    assert len(node_b.sync().messages) == 1
    assert listings == []
    uid = _append(node_a, b"Subject: two\n\nbody\n", ["\\Seen"])
    assert [m.uid for m in node_b.sync().messages] == [1, uid]
    assert listings


def test_the_servers_own_times_say_when_a_maildir_is_quiet(nfs_mounts, monkeypatch):
    """
    Directories last changed long ago by the server's clock (their ctime,
    which the flush sets to the server's now, is far past their mtime) are
    reused at once; a directory changed a moment ago is listed again until
    it has been quiet for DIRTY_WINDOW.  B's times run 300 s off: only the
    difference of two server times is used.
    """
    import storage.maildir.mailbox as mailbox_module

    a, b = nfs_mounts(2, NFSOptions(acregmin=30, acdirmin=30, link_replay=0, clock_offset=300))
    _maildir(a.source)
    _append(_open(a), b"Subject: one\n\nbody\n", ["\\Seen"])
    old = time.time() - 600
    for sub in ("cur", "new"):
        os.utime(a.source / "box" / sub, (old, old))
    node_b = _open(b)
    node_b.sync()
    listings = []
    real_scan = mailbox_module.scan
    monkeypatch.setattr(mailbox_module, "scan",
                        lambda *args, **kw: listings.append(1) or real_scan(*args, **kw))
    node_b.sync()
    assert listings == []
    uid = _append(_open(a), b"Subject: two\n\nbody\n", ["\\Seen"])   # cur/ changes now
    assert [m.uid for m in node_b.sync().messages] == [1, uid]
    count = len(listings)
    node_b.sync()
    assert len(listings) == count + 1      # changed a moment ago: listed again


def _racy(tmp_path) -> NFSOptions:
    """
    racyfuse: the uidlist's attribute fetches made by the threads listed
    in C{tmp_path/late-tids} store their answer 0.8 s after taking it.
    """
    tids = tmp_path / "late-tids"
    tids.write_text("")
    return NFSOptions(acregmin=30, acdirmin=30, link_replay=0, clock_offset=0,
                      getattr_lag=1.0, lag_only=UIDLIST_NAME, lag_seconds=0.8,
                      lag_tids=str(tids))


def _lose_the_race(options: NFSOptions, path, source, uid: int, read):
    """
    On the node of C{path}: a session's fresh stat of the uidlist (open,
    then fstat: the sync's signature) takes the file's attributes; another
    node appends UID C{uid}'s line (to C{source}); this node's reader
    opens the file (close-to-open: the cached attributes are dropped), and
    only then does the session's fetch store the old ones.  Returns
    C{read()}, which opens the file at once and reads once they are stored.
    """
    tids = options.lag_tids

    def session():
        fd = os.open(path, os.O_RDONLY)
        try:
            with open(tids, "w") as f:
                f.write(str(threading.get_native_id()))
            os.fstat(fd)                  # late: stored 0.8 s after it is taken
        finally:
            os.close(fd)

    late = threading.Thread(target=session)
    late.start()
    time.sleep(0.2)
    with open(source, "ab") as f:
        f.write(f"{uid} :m{uid}\n".encode())
    time.sleep(0.1)
    try:
        return read()
    finally:
        late.join()
        with open(tids, "w"):
            pass


def test_a_locked_read_is_not_cut_short_by_the_getattr_race(nfs_mounts, tmp_path, monkeypatch):
    """
    Issue 20's one unexplained Maildir failure, its likely path step by
    step: nfsfuse takes attributes outside its lock and stores them after,
    so a fetch that loses a race with this node's open puts an old size
    back, and a read through the fresh descriptor ends there (the plain
    read below shows the mount doing it).  From such a read the old store
    gave the missing line's UID a second time.  L{UidlistFile.read_locked}
    reads to the end, flushes the file's attributes, finds the size
    differs and reads again.
    """
    import storage.maildir.uidlist as uidlist_mod

    options = _racy(tmp_path)
    (b,) = nfs_mounts(1, options)
    _maildir(b.source)
    source = b.source / "box" / UIDLIST_NAME
    source.write_bytes(b"3 V1234 N1 Gg\n1 :m1\n")
    path = b.path / "box" / UIDLIST_NAME

    def plain():
        fd = os.open(path, os.O_RDONLY)
        try:
            time.sleep(0.9)                  # the late fetch stores meanwhile
            return uidlist_mod._read_to_eof(fd)
        finally:
            os.close(fd)

    data = _lose_the_race(options, path, source, 2, plain)
    assert data == b"3 V1234 N1 Gg\n1 :m1\n"              # short: line 2 is missing
    assert source.read_bytes().endswith(b"2 :m2\n")

    real = uidlist_mod._read_to_eof

    def slow_read(fd):
        time.sleep(0.9)
        return real(fd)

    monkeypatch.setattr(uidlist_mod, "_read_to_eof", slow_read)
    uidfile = UidlistFile(str(b.path / "box"), fsync=False, nfs=True)
    uidlist = _lose_the_race(options, path, source, 3, uidfile.read_locked)
    assert [r.uid for r in uidlist.records] == [1, 2, 3]
    assert uidlist.next_uid == 4
