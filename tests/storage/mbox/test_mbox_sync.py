# -*- test-case-name: tests.storage.mbox.test_mbox_sync -*-
"""
Syncing an open mbox against changes by others: nothing changed costs a
stat; an MDA's append is parsed incrementally; any other change is a full
resync that keeps the UIDs the file holds and logs "Unexpected changes".
"""

from __future__ import annotations

import os
import re

import pytest
from twisted.logger import globalLogPublisher

import storage.mbox.mailbox as mailbox_module
from storage.mbox.state import parse

from storage_mbox_testutil import fixture_store, new_store, read, write

MDA_MSG = (b"\nFrom mta@example.org Wed Jan 10 10:00:00 2024\n"
           b"Subject: delivered %d\n\nline\nFrom the MDA, unquoted but no date\n")


@pytest.fixture
def parses(monkeypatch):
    """Record the offset from which each parse the mailbox does starts."""
    calls = []
    real = mailbox_module.parse_file

    def spy(fd, start, *args, **kw):
        calls.append(start)
        return real(fd, start, *args, **kw)

    monkeypatch.setattr(mailbox_module, "parse_file", spy)
    return calls


@pytest.fixture
def logged():
    """Log events' formatted text."""
    from twisted.logger import formatEvent

    events = []

    def observer(event):
        events.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def _three_messages(store):
    """INBOX of C{store}, open, after one commit appended three messages."""
    box = store.open("INBOX")
    t = box.transaction()
    for i in range(3):
        t.append(b"Subject: %d\r\n\r\nbody\r\n" % i)
    t.commit()
    return box


def test_unchanged_sync_does_not_parse(tmp_path, parses):
    """sync() of an unchanged mailbox compares a stat and parses nothing."""
    box = fixture_store(tmp_path).open("INBOX")
    parses.clear()
    for _ in range(5):
        box.sync()
    assert parses == []


def test_mda_append_parsed_incrementally(tmp_path, parses, logged):
    """
    Mail appended by an MDA (no X-UID, no Status) is picked up by parsing
    only from the old last message on; it gets the next UIDs, which the
    writable sync stores, and it is \\Recent for that session only.
    """
    store = fixture_store(tmp_path)
    path = store.layout.inbox
    box = store.open("INBOX")
    last_start = int(box.sync().messages[-1].key)
    parses.clear()
    with open(path, "ab") as f:
        f.write(MDA_MSG % 1 + MDA_MSG % 2)
    snap = box.sync()
    assert parses[0] == last_start
    assert [m.uid for m in snap.messages][-3:] == [14, 15, 16]
    assert snap.recent == {15, 16}
    assert snap.uidnext == 17
    assert box.read(15).startswith(b"Subject: delivered 1\r\n")
    assert box.read(16).endswith(b"From the MDA, unquoted but no date\r\n")
    # The UIDs are now in the file: another reader sees the same ones.
    other = store.open("INBOX", readonly=True).sync()
    assert [m.uid for m in other.messages] == [m.uid for m in snap.messages]
    assert other.recent == frozenset()
    assert b"X-UID: 16" in read(path)
    assert not [e for e in logged if "Unexpected" in e]


def test_external_rewrite_resyncs_keeping_uids(tmp_path, logged):
    """
    Another program rewrites the file (drops a message, reorders headers,
    strips Content-Length): a full resync keeps every X-UID and flag and
    logs "Unexpected changes to mailbox".
    """
    store = fixture_store(tmp_path)
    path = store.layout.inbox
    box = store.open("INBOX")
    before = {m.uid: (m.flags, box.read(m.uid)) for m in box.sync().messages}
    data = read(path)
    starts = [m.start() for m in re.finditer(rb"(?m)^From mboxu@vm ", data)]
    # Drop the third message, remove every Content-Length line.
    data = data[:starts[2]] + data[starts[3]:]
    data = re.sub(rb"(?m)^Content-Length: \d+\n", b"", data)
    write(path + ".new", data)
    os.rename(path + ".new", path)
    snap = box.sync()
    after = {m.uid: (m.flags, box.read(m.uid)) for m in snap.messages}
    del before[3]
    assert after == before
    assert any("Unexpected changes to mailbox" in e for e in logged)


def test_external_uid_damage_renumbers_only_the_damaged(tmp_path, logged):
    """
    A message inserted in the middle without X-UID (or with a duplicated
    one) gets a new UID beyond all others; the others keep theirs.
    """
    store = new_store(tmp_path)
    box = _three_messages(store)
    box.sync()
    data = read(store.layout.inbox)
    starts = [m.start() for m in re.finditer(rb"(?m)^From ", data)]
    inserted = b"From x@y Wed Jan 10 10:00:00 2024\nSubject: inserted\n\nhi\n\n"
    write(store.layout.inbox, data[:starts[1]] + inserted + data[starts[1]:])
    snap = box.sync()
    assert [m.uid for m in snap.messages] == [1, 2, 3, 4]
    assert box.read(4) == b"Subject: inserted\r\n\r\nhi\r\n"
    assert any("Unexpected changes" in e for e in logged)
    # The store wrote it back in UID order: a fresh reader agrees.
    fresh = store.open("INBOX", readonly=True)
    assert [(m.uid, fresh.read(m.uid)) for m in fresh.sync().messages] == [
        (m.uid, box.read(m.uid)) for m in snap.messages]


def test_read_after_other_session_rewrote(tmp_path):
    """A session whose view is stale still reads its UIDs after an expunge elsewhere."""
    store = new_store(tmp_path)
    a = store.open("INBOX")
    t = a.transaction()
    for i in range(3):
        t.append(b"Subject: %d\r\n\r\nbody\r\n" % i)
    t.commit()
    a.sync()
    b = store.open("INBOX")
    t = b.transaction()
    t.expunge(1)
    t.commit()
    assert a.read(3) == b"Subject: 2\r\n\r\nbody\r\n"
    with pytest.raises(Exception):
        a.read(1)
    assert [m.uid for m in a.sync().messages] == [2, 3]


def test_read_first_message_after_other_session_expunged_the_second(tmp_path):
    """
    The first message keeps its From line at offset 0 when another session
    rewrites the file, but its extent changes (the UID headers are
    rewritten): a stale view must not read it cut short.
    """
    store = new_store(tmp_path)
    a = store.open("INBOX")
    t = a.transaction()
    for i in range(1, 4):
        t.append(b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i))
    t.commit()
    a.sync()
    b = store.open("INBOX")
    b.sync()
    t = b.transaction()
    t.expunge(2)
    t.commit()
    for uid in (1, 3):
        assert a.read(uid) == b"Subject: m%d\r\n\r\nbody %d\r\n" % (uid, uid)


def test_garbage_before_first_message_kept(tmp_path, logged):
    """Bytes before the first From line are reported and survive a rewrite."""
    store = new_store(tmp_path)
    path = store.layout.inbox
    write(path, b"garbage\n\nFrom a@b Tue Nov 14 22:13:20 2023\nSubject: x\n\nb\n")
    box = store.open("INBOX")
    snap = box.sync()
    assert [m.uid for m in snap.messages] == [1]
    assert any("before the first From line" in e for e in logged)
    t = box.transaction()
    t.append(b"Subject: y\r\n\r\nc\r\n")
    t.commit()
    assert read(path).startswith(b"garbage\n\nFrom a@b")
    assert [m.uid for m in box.sync().messages] == [1, 2]


def test_crlf_file_written_and_grown(tmp_path):
    """
    A CRLF mbox (from another system) reads like an LF one; our flag lines
    in it are written with CRLF, and a CRLF append by an MDA is picked up.
    """
    store = new_store(tmp_path)
    path = store.layout.inbox
    write(path, b"From a@b Tue Nov 14 22:13:20 2023\r\nSubject: one\r\n\r\nbody\r\n\r\n")
    box = store.open("INBOX")
    snap = box.sync()
    assert box.read(1) == b"Subject: one\r\n\r\nbody\r\n"
    assert b"X-UID: 1\r\n" in read(path)
    with open(path, "ab") as f:
        # The file ends with the blank line that separates messages.
        assert read(path).endswith(b"body\r\n\r\n")
        f.write(b"From a@b Tue Nov 14 22:13:21 2023\r\nSubject: two\r\n\r\nb2\r\n")
    snap = box.sync()
    assert [m.uid for m in snap.messages] == [1, 2]
    assert box.read(2) == b"Subject: two\r\n\r\nb2\r\n"
    assert box.read(1) == b"Subject: one\r\n\r\nbody\r\n"


def test_header_only_message_last(tmp_path):
    """A header-only message at the end of the file, then one more appended."""
    store = new_store(tmp_path)
    box = store.open("INBOX")
    t = box.transaction()
    t.append(b"Subject: only header\r\n")
    t.commit()
    box.sync()
    assert box.read(1) == b"Subject: only header\r\n"
    t = box.transaction()
    t.append(b"Subject: next\r\n\r\nx\r\n")
    t.commit()
    box.sync()
    assert box.read(1) == b"Subject: only header\r\n"
    assert box.read(2) == b"Subject: next\r\n\r\nx\r\n"


def test_flag_change_elsewhere_not_hidden_by_append(tmp_path, parses):
    """
    Another process changes a message's keywords in place and an MDA then
    appends: the incremental sync still sees the keyword change.
    """
    store = new_store(tmp_path)
    path = store.layout.inbox
    box = store.open("INBOX")
    t = box.transaction()
    t.append(b"Subject: 1\r\n\r\n" + b"long body line\r\n" * 50)
    t.append(b"Subject: 2\r\n\r\n" + b"long body line\r\n" * 50)
    t.commit()
    box.sync()
    data = read(path)
    first = data.index(b"X-Keywords: ")
    pad = data.index(b"\n", first) - first - len(b"X-Keywords: ")
    patched = data[:first] + b"X-Keywords: foreign" + b" " * (pad - 7) + data[first + 12 + pad:]
    assert len(patched) == len(data)
    with open(path, "r+b") as f:
        f.write(patched)
        f.seek(0, 2)
        f.write(MDA_MSG[1:] % 3)
    parses.clear()
    snap = box.sync()
    assert parses and parses[0] > 0  # incremental
    assert [(m.uid, set(m.flags)) for m in snap.messages] == [
        (1, {"foreign"}), (2, set()), (3, set())]


def _coarse_stat(monkeypatch):
    """
    Simulate a file system whose timestamps cannot tell apart two changes
    (both in one tick): identities without times.
    """
    monkeypatch.setattr(mailbox_module, "_identity",
                        lambda st: (st.st_dev, st.st_ino, st.st_size))
    # Nor do they have sub-second digits (so a writer cannot wait for the
    # next tick to make its own state conclusive).
    monkeypatch.setattr(mailbox_module, "_fine_times", lambda st: False)


def _flag_externally(path: str) -> None:
    """Another program gives message 1 the keyword $Ext in place (same size)."""
    data = read(path)
    changed = data.replace(b"X-Keywords: " + b" " * 5, b"X-Keywords: $Ext ", 1)
    assert len(changed) == len(data) and changed != data
    with open(path, "r+b") as f:
        f.write(changed)


@pytest.mark.parametrize("window, seen", [(2.0, True), (-1.0, False)])
def test_same_tick_same_size_change_is_seen(tmp_path, monkeypatch, window, seen):
    """
    A same-size change in place that a stat cannot see is picked up by the
    next sync while the file changed recently (DIRTY_WINDOW); with no
    window, as before, it would be missed until the next change.
    """
    _coarse_stat(monkeypatch)
    monkeypatch.setattr(mailbox_module, "DIRTY_WINDOW", window)
    monkeypatch.setattr(mailbox_module, "FINE_WINDOW", window)
    store = new_store(tmp_path)
    box = _three_messages(store)
    assert box.sync().messages[0].flags == frozenset()
    _flag_externally(store.layout.inbox)
    flags = box.sync().messages[0].flags
    assert (flags == {"$Ext"}) is seen
    # A second session of this process sees what the first one re-read.
    other = store.open("INBOX", readonly=True)
    assert (other.sync().messages[0].flags == {"$Ext"}) is seen


def test_recheck_parses_only_blocks_not_seen_before(tmp_path, monkeypatch):
    """
    The re-check within the window (after every write, so before every
    LMTP delivery into a busy mbox) parses only flag blocks whose bytes it
    has not parsed before: unchanged ones are looked up, and a same-size
    change in place is still parsed and seen.
    """
    _coarse_stat(monkeypatch)
    monkeypatch.setattr(mailbox_module, "DIRTY_WINDOW", 2.0)
    monkeypatch.setattr(mailbox_module, "FINE_WINDOW", 2.0)
    # Blocks other tests made (the same bytes) are no longer known.
    monkeypatch.setattr(mailbox_module, "_BLOCK_META", {}, raising=False)
    store = new_store(tmp_path)
    box = _three_messages(store)
    box.sync()
    box.sync()  # a re-check: every block parsed once
    parsed = []
    real = mailbox_module.read_meta

    def spy(data, msg):
        parsed.append(data)
        return real(data, msg)
    monkeypatch.setattr(mailbox_module, "read_meta", spy)
    box.sync()
    assert parsed == []
    _flag_externally(store.layout.inbox)
    assert box.sync().messages[0].flags == {"$Ext"}
    assert len(parsed) == 1 and b"$Ext" in parsed[0]


def test_recheck_only_within_the_window(tmp_path, monkeypatch):
    """
    Content is re-read only while the file's last change is recent: once
    our last look is DIRTY_WINDOW past it, syncs trust the stat again.
    """
    _coarse_stat(monkeypatch)
    # Whole-second times or not, one window, long enough for a slow machine.
    monkeypatch.setattr(mailbox_module, "FINE_WINDOW", mailbox_module.DIRTY_WINDOW)
    calls = []
    real = mailbox_module._refresh_headers

    def spy(fd, old, everything=False):
        calls.append(everything)
        return real(fd, old, everything)

    monkeypatch.setattr(mailbox_module, "_refresh_headers", spy)
    store = new_store(tmp_path)
    box = store.open("INBOX")
    t = box.transaction()
    t.append(b"Subject: 1\r\n\r\nbody\r\n")
    t.commit()
    box.sync()
    calls.clear()
    box.sync()
    box.sync()
    assert calls == [True, True]
    # Our clock is now well past the file's last change: one last re-read
    # (the last look was still inside the window), then none.
    later = mailbox_module.time.time() + 10
    monkeypatch.setattr(mailbox_module.time, "time", lambda: later)
    calls.clear()
    for _ in range(4):
        box.sync()
    assert calls == [True]


def test_new_mail_uids_stored_by_rewriting_only_the_tail(tmp_path, parses):
    """
    Storing X-UID and Status into mail an MDA appended writes only those
    messages again (in place, journaled): the file keeps its inode, every
    byte before them except flag lines and X-IMAPbase stays, nothing is
    parsed but the tail, and a fresh reader agrees on UIDs and bytes.
    """
    store = new_store(tmp_path)
    box = store.open("INBOX")
    t = box.transaction()
    for i in range(6):
        t.append(b"Subject: %d\r\n\r\n" % i + b"body line\r\n" * 200)
    t.commit()
    box.sync()
    path = store.layout.inbox
    before = read(path)
    inode = os.stat(path).st_ino
    with open(path, "ab") as f:
        f.write(MDA_MSG % 1 + MDA_MSG % 2)
    parses.clear()
    snap = box.sync()
    assert [m.uid for m in snap.messages] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert {7, 8} <= snap.recent
    after = read(path)
    assert os.stat(path).st_ino == inode
    assert b"X-UID: 7\n" in after and b"X-UID: 8\n" in after
    state = parse(before, 1)
    allowed = [state.base_span] + [e.block for e in state.entries]
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    assert all(any(s <= i < e for s, e in allowed) for i in changed)
    assert parses and min(parses) >= state.entries[-1].raw.start
    fresh = store.open("INBOX", readonly=True)
    assert [(m.uid, m.flags, fresh.read(m.uid)) for m in fresh.sync().messages] == [
        (m.uid, m.flags, box.read(m.uid)) for m in snap.messages]
    assert box.read(8).endswith(b"From the MDA, unquoted but no date\r\n")


def test_window_follows_timestamp_granularity(monkeypatch):
    """
    A change stays "recent" for DIRTY_WINDOW where the file system keeps
    whole seconds, for FINE_WINDOW where its times have sub-second digits.
    """
    from types import SimpleNamespace

    now = 1_700_000_000.0

    def stat(seconds_ago: float, whole: bool):
        t = now - seconds_ago
        ns = int(t) * 10**9 if whole else int(t * 1e9) + 123
        return SimpleNamespace(st_dev=1, st_ino=2, st_size=3, st_mtime_ns=ns, st_ctime_ns=ns,
                               st_mtime=ns / 1e9, st_ctime=ns / 1e9)

    for ago, whole, dirty in ((1.0, True, True), (3.0, True, False),
                              (1.0, False, False), (0.01, False, True)):
        st = stat(ago, whole)
        # Our last read of the content was "now", at this identity.
        monkeypatch.setitem(mailbox_module._VERIFIED, "p", (mailbox_module._identity(st), now))
        assert mailbox_module._dirty("p", st) is dirty, (ago, whole)


@pytest.mark.parametrize("shared, seen", [(True, True), (False, False)])
def test_shared_writer_checks_the_bytes_under_the_lock(tmp_path, monkeypatch, shared, seen):
    """
    On a shared filesystem (LockSettings.shared) a writer whose state still
    matches the file's attributes checks the file's last bytes under the
    lock before trusting it: a same-size change there (a flag set on the
    last message by another node, with times a coarse NFS server does not
    tell apart) is re-read instead of hidden.  A local file trusts its
    attributes outside the dirty window, as before.
    """
    from storage.mbox.mailbox import LockSettings

    _coarse_stat(monkeypatch)
    monkeypatch.setattr(mailbox_module, "DIRTY_WINDOW", -1.0)
    monkeypatch.setattr(mailbox_module, "FINE_WINDOW", -1.0)
    store = new_store(tmp_path, locks=LockSettings(shared=shared))
    box = _three_messages(store)
    box.sync()
    data = read(store.layout.inbox)
    at = data.rindex(b"X-Keywords: " + b" " * 5)
    write(store.layout.inbox, data[:at] + b"X-Keywords: $Ext " + data[at + 17:])
    t = box.transaction()
    t.set_flags(1, frozenset({"\\Seen"}))
    t.commit()
    flags = box.sync().messages[-1].flags
    assert (flags == {"$Ext"}) is seen


def test_append_burst_costs_no_more_in_a_larger_mailbox(tmp_path, monkeypatch, parses):
    """
    Issue 18: each APPEND of a burst (open, append, commit, close, as the
    APPEND command does) neither re-reads the flag lines of every message
    (the writer waits for the file clock's next tick under its lock, so its
    own state is conclusive: L{mailbox_module._Held}) nor builds the
    mailbox's records and MODSEQs, and parses only from the old last
    message on: its work does not grow with the mailbox.  Before, each one
    re-read every header and built every record.
    """
    refreshed, built = [], []
    real_refresh, real_records = mailbox_module._refresh_headers, mailbox_module._records_of

    def refresh(fd, old, everything=False):
        refreshed.append(len(old.entries))
        return real_refresh(fd, old, everything)

    def records_of(path, state):
        built.append(len(state.entries))
        return real_records(path, state)

    monkeypatch.setattr(mailbox_module, "_refresh_headers", refresh)
    monkeypatch.setattr(mailbox_module, "_records_of", records_of)
    store = new_store(tmp_path)

    def append(i):
        box = store.open("INBOX")
        t = box.transaction()
        t.append(b"Subject: %d\r\n\r\nbody\r\n" % i)
        t.commit()
        box.close()

    for i in range(40):
        append(i)
    starts = [e.raw.start for e in mailbox_module._cached(store.layout.inbox)[1].entries]
    assert len(starts) == 40
    assert refreshed == [] and built == []
    # Each APPEND after the first parses from the message before its own.
    assert parses[-39:] == starts[:-1]
    # The records are still there for whoever asks.
    box = store.open("INBOX")
    assert [m.uid for m in box.last_snapshot.messages] == list(range(1, 41))
    assert built == [40]
