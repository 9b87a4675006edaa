# -*- test-case-name: tests.storage.maildir.test_maildir_sync -*-
"""
Tests for L{storage.maildir.sync}: changes other programs make are picked
up at the next sync, and UIDs never depend on names or readdir order.
"""

from __future__ import annotations

import os

from storage.maildir.sync import scan
from storage.maildir.uidlist import UidlistFile

from storage_maildir_testutil import files, make_store


def _drop(directory, sub, name, data=b"Subject: x\n\nx\n", mtime=None):
    path = os.path.join(directory, sub, name)
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_mda_delivery_picked_up(tmp_path):
    """A file an MDA drops into new/ gets the next UID and is \\Recent."""
    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    assert mailbox.sync().messages == ()
    _drop(store.root, "tmp", "1700000000.1_1.host")
    os.rename(
        os.path.join(store.root, "tmp", "1700000000.1_1.host"),
        os.path.join(store.root, "new", "1700000000.1_1.host"),
    )
    snap = mailbox.sync()
    assert [m.uid for m in snap.messages] == [1]
    assert snap.recent == {1}
    assert files(store.root)["cur"] == ["1700000000.1_1.host:2,"]


def test_new_files_ordered_by_mtime_not_name(tmp_path):
    """
    Unlisted files get UIDs by (mtime, name), not by name: procmail's names
    are not time-sorted (DESIGN.md rule 5).
    """
    store = make_store(tmp_path)
    _drop(store.root, "cur", "zzz:2,", mtime=1_600_000_000)
    _drop(store.root, "cur", "aaa:2,", mtime=1_700_000_000)
    snap = store.open("INBOX").sync()
    assert [(m.uid, m.key) for m in snap.messages] == [(1, "zzz"), (2, "aaa")]


def test_uids_stable_after_rename_and_reorder(tmp_path):
    """UIDs stay with their base name whatever happens to the info part."""
    store = make_store(tmp_path)
    for i in range(5):
        _drop(store.root, "cur", f"m{i}:2,", mtime=1_600_000_000 + i)
    mailbox = store.open("INBOX")
    first = {m.key: m.uid for m in mailbox.sync().messages}
    os.rename(os.path.join(store.root, "cur", "m3:2,"), os.path.join(store.root, "cur", "m3:2,FS"))
    snap = mailbox.sync()
    assert {m.key: m.uid for m in snap.messages} == first
    assert [m.flags for m in snap.messages if m.key == "m3"] == [{"\\Flagged", "\\Seen"}]
    # A second object (another session, another process) agrees.
    assert {m.key: m.uid for m in store.open("INBOX").sync().messages} == first


def test_foreign_delete_picked_up(tmp_path):
    """A file deleted by another program disappears at the next sync."""
    store = make_store(tmp_path)
    _drop(store.root, "cur", "a:2,S")
    _drop(store.root, "cur", "b:2,S")
    mailbox = store.open("INBOX")
    assert len(mailbox.sync().messages) == 2
    os.unlink(os.path.join(store.root, "cur", "a:2,S"))
    assert [m.key for m in mailbox.sync().messages] == ["b"]
    _drop(store.root, "cur", "c:2,")
    assert [m.uid for m in mailbox.sync().messages] == [2, 3]
    # The uidlist was rewritten for c, dropping a's line; UID 1 stays used.
    uidlist = UidlistFile(store.root).read()
    assert [r.base for r in uidlist.records] == ["b", "c"]
    assert uidlist.next_uid == 4


def test_file_dropped_into_cur_with_flags(tmp_path):
    """
    A file another program puts straight into cur/ keeps its flags, and
    is new to this server: \\Recent for the first session that syncs
    (RFC 3501 section 2.3.2; the modseq log's floor says so), once.
    """
    store = make_store(tmp_path)
    mailbox = store.open("INBOX")
    mailbox.sync()
    _drop(store.root, "cur", "mutt.1:2,RS")
    (rec,) = mailbox.sync().messages
    assert rec.flags == {"\\Answered", "\\Seen"}
    assert mailbox.sync().recent == {1}
    assert store.open("INBOX").sync().recent == frozenset()


def test_readonly_sync_does_not_move(tmp_path):
    """
    EXAMINE-style opens give UIDs but leave new/ alone: they show the
    unclaimed message as \\Recent without taking it (as Dovecot does).
    """
    store = make_store(tmp_path)
    _drop(store.root, "new", "n1")
    snap = store.open("INBOX", readonly=True).sync()
    assert [m.uid for m in snap.messages] == [1] and snap.recent == {1}
    assert files(store.root)["new"] == ["n1"]
    assert store.open("INBOX").sync().recent == {1}


def test_read_after_foreign_flag_change(tmp_path):
    """read() follows a message whose file another program renamed."""
    store = make_store(tmp_path)
    _drop(store.root, "cur", "m:2,", data=b"hello\n")
    mailbox = store.open("INBOX")
    mailbox.sync()
    os.rename(os.path.join(store.root, "cur", "m:2,"), os.path.join(store.root, "cur", "m:2,S"))
    assert mailbox.read(1) == b"hello\r\n"


def test_scan_prefers_cur_and_skips_dotfiles(tmp_path):
    """The same base in new/ and cur/ counts once (cur/); dot files are skipped."""
    store = make_store(tmp_path)
    _drop(store.root, "new", "dup")
    _drop(store.root, "cur", "dup:2,S")
    _drop(store.root, "cur", ".hidden")
    entries = scan(store.root)
    assert list(entries) == ["dup"] and entries["dup"].subdir == "cur"


def test_scan_keeps_the_same_choice_whatever_the_order(tmp_path):
    """
    Of two cur/ names with one base the smallest wins, and cur/ beats
    new/, whatever order readdir (or an earlier listing) gives them in.
    """
    store = make_store(tmp_path)
    _drop(store.root, "new", "dup")
    _drop(store.root, "cur", "dup:2,S")
    _drop(store.root, "cur", "dup:2,F")
    first = scan(store.root)
    assert first["dup"].name == "dup:2,F"
    assert scan(store.root, first)["dup"].name == "dup:2,F"
    assert scan(store.root, {"dup": scan(store.root)["dup"]})["dup"].name == "dup:2,F"


def test_scan_reuses_only_names_still_listed(tmp_path):
    """
    An earlier listing only spares parsing names that are still there, in
    the same sub-directory: it never brings back a file that is gone or
    keeps a file's old place.
    """
    from storage.maildir.filename import MaildirName
    from storage.maildir.sync import Entry

    store = make_store(tmp_path)
    _drop(store.root, "cur", "a:2,S")
    _drop(store.root, "cur", "b")
    known = scan(store.root)
    known["gone"] = Entry.of("cur", "gone:2,S")
    known["c"] = Entry.of("new", "c")
    _drop(store.root, "cur", "c")  # moved from new/ to cur/ meanwhile
    again = scan(store.root, known)
    assert sorted(again) == ["a", "b", "c"]
    assert again["a"] is known["a"]
    assert again["c"].subdir == "cur" and again["c"].parsed == MaildirName.parse("c")
    assert again == scan(store.root)


def test_foreign_rename_seen_right_after_an_unchanged_sync(tmp_path):
    """
    A sync whose listing matches the last one reuses its snapshot; the
    very next listing still catches a rename by another program, even
    when the directory's mtime is put back (NFS: mtimes prove nothing).
    """
    store = make_store(tmp_path)
    _drop(store.root, "cur", "a:2,")
    _drop(store.root, "cur", "b:2,S")
    mailbox = store.open("INBOX")
    first = mailbox.sync()
    again = mailbox.sync()
    assert again.messages is first.messages  # nothing rebuilt
    cur = os.path.join(store.root, "cur")
    st = os.stat(cur)
    os.rename(os.path.join(cur, "a:2,"), os.path.join(cur, "a:2,F"))
    os.utime(cur, ns=(st.st_atime_ns, st.st_mtime_ns))
    snap = mailbox.sync()
    assert [sorted(m.flags) for m in snap.messages] == [["\\Flagged"], ["\\Seen"]]
    assert snap.messages[0].modseq > first.highestmodseq
    assert snap.messages[1].modseq == first.messages[1].modseq
    # Another open of the mailbox in this process sees the same.
    assert store.open("INBOX", readonly=True).sync().messages == snap.messages


def test_modseq_from_another_node_seen_though_the_listing_is_unchanged(tmp_path):
    """
    Another node saw a message go A -> B -> A and gave it two MODSEQs
    while our listing stayed the same: our next sync must show the
    log's MODSEQ (RFC 7162: an UNCHANGEDSINCE test against the old one
    would pass wrongly), not reuse the snapshot it stamped before.
    """
    import dataclasses

    from storage.maildir.mailbox import MODSEQ_FILE
    from storage.modseq import ModseqLog

    store = make_store(tmp_path)
    _drop(store.root, "cur", "a:2,")
    _drop(store.root, "cur", "b:2,S")
    mailbox = store.open("INBOX")
    first = mailbox.sync()
    assert mailbox.sync().messages is first.messages
    node2 = ModseqLog(os.path.join(store.root, MODSEQ_FILE))  # its own state
    a, b = first.messages
    flagged = a.replace(flags=frozenset({"\\Flagged"}))
    node2.stamp(dataclasses.replace(first, messages=(flagged, b)))
    node2.stamp(dataclasses.replace(first, messages=(a.replace(), b)))
    snap = mailbox.sync()
    assert snap.messages[0].modseq == first.highestmodseq + 2 == snap.highestmodseq
    assert snap.messages[1].modseq == first.messages[1].modseq


def test_missing_uidlist_is_created(tmp_path):
    """A Maildir without a uidlist gets one with a time-based UIDVALIDITY."""
    import time

    store = make_store(tmp_path)
    _drop(store.root, "cur", "x:2,")
    snap = store.open("INBOX").sync()
    assert abs(snap.uidvalidity - time.time()) < 60
    assert os.path.exists(os.path.join(store.root, "dovecot-uidlist"))


def test_stale_tmp_files_removed(tmp_path, monkeypatch):
    """
    A read-write open removes tmp/ files untouched for longer than
    TMP_MAX_AGE (36 hours); fresh ones (a delivery in progress) stay, and
    read-only opens never remove anything.
    """
    from storage.maildir import mailbox as mailbox_mod

    store = make_store(tmp_path)
    fresh = _drop(store.root, "tmp", "in-progress")
    store.open("INBOX")
    assert os.path.exists(fresh)
    # A file's ctime cannot be set back: move the limit instead.
    monkeypatch.setattr(mailbox_mod, "TMP_MAX_AGE", -10)
    monkeypatch.setattr(mailbox_mod, "TMP_CLEAN_INTERVAL", 0.0)
    store.open("INBOX", readonly=True)
    assert os.path.exists(fresh)
    store.open("INBOX")
    assert not os.path.exists(fresh)


def test_tmp_looked_at_once_per_interval(tmp_path, monkeypatch):
    """
    tmp/ is listed for stale files at most once per TMP_CLEAN_INTERVAL per
    Maildir: not at every SELECT, APPEND and COPY.  Once the interval has
    passed, the next writable open removes what went stale meanwhile.
    """
    from storage.maildir import mailbox as mailbox_mod

    store = make_store(tmp_path)
    store.open("INBOX")
    stale = _drop(store.root, "tmp", "left-over")
    monkeypatch.setattr(mailbox_mod, "TMP_MAX_AGE", -10)
    cleaned = []
    real_clean = mailbox_mod.clean_tmp
    monkeypatch.setattr(mailbox_mod, "clean_tmp",
                        lambda d: cleaned.append(d) or real_clean(d))
    store.open("INBOX")
    store.open("INBOX")
    assert os.path.exists(stale)
    assert cleaned == []
    # The interval passes (as this process's clock sees it).
    shared = mailbox_mod._shared_for(os.path.realpath(store.root))
    shared.tmp_cleaned -= mailbox_mod.TMP_CLEAN_INTERVAL
    store.open("INBOX")
    assert len(cleaned) == 1
    assert not os.path.exists(stale)


def test_readonly_open_without_lock(tmp_path, monkeypatch):
    """
    EXAMINE of a Maildir whose uidlist cannot be locked (a read-only
    archive) shows the messages that have UIDs and skips the rest; a
    read-write open fails with LockUnavailable instead of guessing UIDs.
    """
    import locking
    import pytest

    from storage.errors import LockUnavailable

    store = make_store(tmp_path)
    _drop(store.root, "cur", "a:2,S")
    store.open("INBOX").sync()
    _drop(store.root, "cur", "b:2,S")
    # Settle the directories, so that the process-wide listing cache would
    # be allowed to reuse a listing (mailbox.DIRTY_WINDOW).
    for path in ("cur", "new", "dovecot-uidlist"):
        os.utime(os.path.join(store.root, path), (1_600_000_000, 1_600_000_000))

    class Refusing:
        def __init__(self, path, settings=None):
            pass

        def acquire(self, timeout=None):
            raise locking.CannotLock("read-only file system")

    monkeypatch.setattr(locking, "DotLock", Refusing)
    snap = store.open("INBOX", readonly=True).sync()
    assert [m.key for m in snap.messages] == ["a"]
    with pytest.raises(LockUnavailable, match="read-only file system"):
        store.open("INBOX").sync()
    # Once the lock can be taken again, the waiting file gets its UID, even
    # though nothing changed on disk since the incomplete listing.
    monkeypatch.undo()
    assert [m.key for m in store.open("INBOX").sync().messages] == ["a", "b"]


def test_entry_parts_are_those_of_the_parsed_name():
    """An entry keeps its name's parts flat; they are MaildirName's."""
    from storage.maildir.filename import MaildirName
    from storage.maildir.sync import Entry

    for name in ("m", "m:2,", "m:2,PSa,XYZ,W=3", "m,S=5:1,odd", "m::2,S", "m:2,S:x"):
        entry = Entry.of("cur", name)
        parsed = MaildirName.parse(name)
        assert entry.parsed == parsed
        assert (entry.base, entry.info, entry.letters, entry.extra) == (
            parsed.base, parsed.info, parsed.letters, parsed.extra)


def _pin(root, when_ns):
    """Give cur/, new/ and the uidlist the mtime C{when_ns} (ns)."""
    for path in ("cur", "new", "dovecot-uidlist"):
        os.utime(os.path.join(root, path), ns=(when_ns, when_ns))


def _counting_scans(monkeypatch):
    from storage.maildir import mailbox as mailbox_mod

    scans = []
    real_scan = mailbox_mod.scan
    monkeypatch.setattr(mailbox_mod, "scan",
                        lambda *a, **k: scans.append(a[0]) or real_scan(*a, **k))
    return scans


def test_listing_made_in_the_tick_of_a_change_is_not_trusted_later(tmp_path, monkeypatch):
    """
    A listing made while the directories' last change was less than a
    tick old may miss a change made right after it in the same tick (the
    mtime stays).  That listing must not be reused once the mtimes look
    old, as long as nothing else changed: "settled" is judged when the
    listing is made, not when it is reused.
    """
    from storage.maildir import mailbox as mailbox_mod

    store = make_store(tmp_path)
    _drop(store.root, "cur", "a:2,")
    assert store.open("INBOX").sync().messages[0].flags == frozenset()
    tick = 1_700_000_000_123_456_789
    _pin(store.root, tick)
    # Listed 10 ms after the change: within the tick's window.
    monkeypatch.setattr(mailbox_mod, "_now", lambda: tick / 1e9 + 0.01)
    assert store.open("INBOX").sync().messages[0].flags == frozenset()
    # Another program sets \Seen in the same tick: cur/ keeps its mtime.
    os.rename(os.path.join(store.root, "cur", "a:2,"), os.path.join(store.root, "cur", "a:2,S"))
    _pin(store.root, tick)
    monkeypatch.setattr(mailbox_mod, "_now", lambda: tick / 1e9 + 10)
    assert store.open("INBOX").sync().messages[0].flags == {"\\Seen"}


def test_settled_listing_reused_after_the_fine_window(tmp_path, monkeypatch):
    """
    Where the file system keeps sub-second mtimes (a clock tick of a few
    ms), a listing made FINE_WINDOW after the last change is reused while
    nothing changes, instead of listing again at every sync for
    DIRTY_WINDOW seconds.  With whole-second mtimes (a coarse file system)
    the long window still applies.
    """
    from storage.maildir import mailbox as mailbox_mod

    store = make_store(tmp_path)
    _drop(store.root, "cur", "a:2,")
    store.open("INBOX").sync()
    for tick in (1_700_000_000_123_456_789, 1_700_000_001_000_000_000):
        _pin(store.root, tick)
        monkeypatch.setattr(mailbox_mod, "_now",
                            lambda: tick / 1e9 + 2 * mailbox_mod.FINE_WINDOW)
        scans = _counting_scans(monkeypatch)
        for _ in range(3):
            assert [m.key for m in store.open("INBOX").sync().messages] == ["a"]
        fine = tick % 1_000_000_000 != 0
        assert len(scans) == (1 if fine else 3), (tick, scans)


def test_new_message_stamped_and_claimed_with_one_fsync_of_the_log(tmp_path, monkeypatch):
    """
    A writable sync that finds a new message gives it its MODSEQ and
    claims it as \\Recent: two appends to the modseq log, made durable by
    one fsync before the sync returns (not one each).  Both lines are in
    the file.
    """
    from storage.maildir.mailbox import MODSEQ_FILE

    store = make_store(tmp_path, fsync=True)
    mailbox = store.open("INBOX")
    mailbox.sync()
    log = os.path.realpath(os.path.join(store.root, MODSEQ_FILE))
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    _drop(store.root, "new", "1700000000.1_1.host")
    snap = mailbox.sync()
    assert snap.recent == {1}
    assert synced.count(log) == 1, synced
    with open(log, "rb") as f:
        lines = f.read().splitlines()
    assert any(l.startswith(b"1 ") and b" F" in l for l in lines)
    assert lines[-1] == b"2 0 R", lines
