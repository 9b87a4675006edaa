"""
The modseq log (L{storage.modseq}) on both stores: MODSEQs come from the
shared store, survive a new process, never go backwards, and every change
(ours or anybody's) gets its own.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys

import pytest

import storage.modseq as modseq_mod
from storage.maildir.store import MaildirStore
from storage.mbox.store import MboxStore

STORES = ["maildir", "mbox"]


def make_store(kind: str, top: str):
    if kind == "maildir":
        return MaildirStore(os.path.join(top, "Maildir"), "u", fsync=False)
    return MboxStore(os.path.join(top, "mail"), "u", inbox=os.path.join(top, "inbox"),
                     fsync=False)


def log_path(kind: str, top: str) -> str:
    if kind == "maildir":
        return os.path.join(top, "Maildir", "imapd-modseq")
    return os.path.join(top, "mail", ".imapd", "INBOX.modseq")


def forget_logs() -> None:
    """Stand in for a new process: drop the in-memory logs."""
    modseq_mod._logs.clear()


@pytest.fixture(autouse=True)
def _fresh_logs():
    forget_logs()
    yield
    forget_logs()


def fill(store, n: int) -> None:
    box = store.open("INBOX")
    tx = box.transaction()
    for i in range(n):
        tx.append(b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i), ["\\Seen"] if i % 2 else [])
    tx.commit()
    box.close()


def set_flags(store, uid: int, flags) -> None:
    box = store.open("INBOX")
    box.sync()
    tx = box.transaction()
    tx.set_flags(uid, frozenset(flags))
    tx.commit()
    box.close()


def snapshot(store):
    box = store.open("INBOX", readonly=True)
    try:
        return box.sync()
    finally:
        box.close()


@pytest.mark.parametrize("kind", STORES)
def test_every_message_has_its_own_modseq(kind, tmp_path):
    store = make_store(kind, str(tmp_path))
    fill(store, 5)
    snap = snapshot(store)
    modseqs = [r.modseq for r in snap.messages]
    assert len(set(modseqs)) == 5
    assert all(m > 0 for m in modseqs)
    assert snap.highestmodseq == max(modseqs)
    assert store.status("INBOX").highestmodseq == snap.highestmodseq
    assert os.path.isfile(log_path(kind, str(tmp_path)))


@pytest.mark.parametrize("kind", STORES)
def test_flag_change_gets_a_new_modseq_others_keep_theirs(kind, tmp_path):
    store = make_store(kind, str(tmp_path))
    fill(store, 4)
    before = snapshot(store)
    set_flags(store, 2, {"\\Flagged"})
    after = snapshot(store)
    old = {r.uid: r.modseq for r in before.messages}
    new = {r.uid: r.modseq for r in after.messages}
    assert new[2] > before.highestmodseq
    assert after.highestmodseq == new[2]
    assert {u: m for u, m in new.items() if u != 2} == {u: m for u, m in old.items() if u != 2}


def test_maildir_rename_by_another_program_is_noticed(tmp_path):
    store = make_store("maildir", str(tmp_path))
    fill(store, 2)
    before = snapshot(store)
    cur = os.path.join(str(tmp_path), "Maildir", "cur")
    new = os.path.join(str(tmp_path), "Maildir", "new")
    # mutt marks the first message (in new/, no flags) as flagged.
    name = os.listdir(new)[0]
    os.rename(os.path.join(new, name), os.path.join(cur, name + ":2,F"))
    after = snapshot(store)
    changed = [r for r in after.messages if "\\Flagged" in r.flags]
    assert len(changed) == 1 and changed[0].modseq > before.highestmodseq


@pytest.mark.parametrize("kind", STORES)
def test_modseqs_survive_a_new_process(kind, tmp_path):
    store = make_store(kind, str(tmp_path))
    fill(store, 3)
    set_flags(store, 1, {"\\Answered"})
    first = snapshot(store)
    forget_logs()
    again = snapshot(make_store(kind, str(tmp_path)))
    assert [(r.uid, r.modseq) for r in again.messages] == [
        (r.uid, r.modseq) for r in first.messages]
    assert again.highestmodseq == first.highestmodseq


@pytest.mark.parametrize("kind", STORES)
def test_expunge_leaves_a_tombstone(kind, tmp_path):
    store = make_store(kind, str(tmp_path))
    fill(store, 4)
    before = snapshot(store)
    box = store.open("INBOX")
    box.sync()
    tx = box.transaction()
    tx.expunge(3)
    tx.commit()
    after = box.sync()
    assert after.highestmodseq > before.highestmodseq
    assert box.expunged_since(before.highestmodseq) == [3]
    assert box.expunged_since(after.highestmodseq) == []
    box.close()


@pytest.mark.parametrize("kind", STORES)
def test_deleted_log_never_goes_backwards(kind, tmp_path):
    store = make_store(kind, str(tmp_path))
    fill(store, 3)
    set_flags(store, 1, {"\\Answered"})
    before = snapshot(store)
    os.unlink(log_path(kind, str(tmp_path)))
    forget_logs()
    box = make_store(kind, str(tmp_path)).open("INBOX", readonly=True)
    after = box.sync()
    assert after.highestmodseq > before.highestmodseq
    assert min(r.modseq for r in after.messages) > before.highestmodseq
    # The tombstones before the restart are unknown: the caller is told.
    assert box.expunged_since(before.highestmodseq) is None
    box.close()


@pytest.mark.parametrize("kind", STORES)
def test_compaction_keeps_modseqs_and_highest(kind, tmp_path):
    store = make_store(kind, str(tmp_path))
    fill(store, 3)
    path = log_path(kind, str(tmp_path))
    for i in range(120):
        set_flags(store, 1 + i % 3, {"\\Flagged"} if i % 2 else set())
        snapshot(store)
    snap = snapshot(store)
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    assert len(lines) < 2 * 3 + modseq_mod._SLACK + 2
    forget_logs()
    again = snapshot(make_store(kind, str(tmp_path)))
    assert again.highestmodseq == snap.highestmodseq
    assert [r.modseq for r in again.messages] == [r.modseq for r in snap.messages]


@pytest.mark.parametrize("kind", STORES)
def test_torn_last_line_is_cut_off(kind, tmp_path):
    store = make_store(kind, str(tmp_path))
    fill(store, 2)
    before = snapshot(store)
    path = log_path(kind, str(tmp_path))
    with open(path, "ab") as f:
        f.write(b"1 %d F \\Fla" % (before.highestmodseq + 1))  # crash mid-line
    forget_logs()
    store = make_store(kind, str(tmp_path))
    assert snapshot(store).highestmodseq == before.highestmodseq
    set_flags(store, 2, {"\\Draft"})
    after = snapshot(store)
    with open(path, "rb") as f:
        data = f.read()
    assert b"\\Fla\n" not in data and b"\\Fla " not in data
    assert after.highestmodseq == before.highestmodseq + 1


# -- several processes ---------------------------------------------------------

def _worker(kind: str, top: str, me: int, rounds: int, out: str) -> None:
    sys.path.insert(0, os.getcwd())
    store = make_store(kind, top)
    seen = []
    box = store.open("INBOX")
    for i in range(rounds):
        snap = box.sync()
        seen.append([snap.highestmodseq,
                     [[r.uid, r.modseq, sorted(r.flags)] for r in snap.messages]])
        uid = snap.messages[(i + me) % len(snap.messages)].uid
        flag = "$p%d_%d" % (me, i % 3)
        tx = box.transaction()
        tx.set_flags(uid, frozenset({flag}))
        tx.commit()
    snap = box.sync()
    seen.append([snap.highestmodseq,
                 [[r.uid, r.modseq, sorted(r.flags)] for r in snap.messages]])
    box.close()
    with open(out, "w") as f:
        json.dump(seen, f)


@pytest.mark.parametrize("kind", STORES)
def test_two_processes_never_share_or_reverse_a_modseq(kind, tmp_path):
    top = str(tmp_path)
    fill(make_store(kind, top), 4)
    forget_logs()
    ctx = multiprocessing.get_context("spawn")
    outs = [os.path.join(top, "out%d.json" % i) for i in range(2)]
    procs = [ctx.Process(target=_worker, args=(kind, top, i, 40, outs[i])) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    meaning: dict[int, tuple] = {}
    for out in outs:
        with open(out) as f:
            seen = json.load(f)
        last_highest = 0
        last: dict[int, int] = {}
        for highest, records in seen:
            assert highest >= last_highest  # never backwards
            last_highest = highest
            for uid, modseq, flags in records:
                assert modseq <= highest
                assert modseq >= last.get(uid, 0)  # never backwards per message
                last[uid] = modseq
                # One modseq is one change: the same (uid, flags) wherever seen.
                assert meaning.setdefault(modseq, (uid, tuple(flags))) == (uid, tuple(flags))
    assert len(meaning) > 10


@pytest.mark.parametrize("error", ["lock", "write"])
@pytest.mark.parametrize("kind", STORES)
def test_unwritable_log_keeps_modseqs_in_memory(kind, tmp_path, monkeypatch, error):
    """
    A log that cannot be written (a read-only archive) still gives stable,
    increasing MODSEQs within the process, not new ones at every sync.
    """
    from storage.errors import LockUnavailable, StoreError

    store = make_store(kind, str(tmp_path))
    fill(store, 3)
    if os.path.exists(log_path(kind, str(tmp_path))):
        os.unlink(log_path(kind, str(tmp_path)))
    forget_logs()

    def refuse(self, snapshot, *_needs):
        raise LockUnavailable("read-only") if error == "lock" else StoreError("disk full")

    monkeypatch.setattr(modseq_mod.ModseqLog, "_record", refuse)
    box = make_store(kind, str(tmp_path)).open("INBOX", readonly=True)
    first = box.sync()
    assert first.highestmodseq > 0 and len({r.modseq for r in first.messages}) == 3
    again = box.sync()
    assert [r.modseq for r in again.messages] == [r.modseq for r in first.messages]
    box.close()


def test_mbox_rewrite_by_another_program_is_noticed(tmp_path):
    """mutt marks message 1 read by rewriting the file: a new MODSEQ for it only."""
    store = make_store("mbox", str(tmp_path))
    fill(store, 3)
    before = snapshot(store)
    path = os.path.join(str(tmp_path), "inbox")
    with open(path, "rb") as f:
        data = f.read()
    assert data.count(b"X-UID: 1\n") == 1
    with open(path + ".new", "wb") as f:
        f.write(data.replace(b"X-UID: 1\n", b"X-UID: 1\nStatus: RO\n"))
    os.rename(path + ".new", path)
    after = snapshot(store)
    old = {r.uid: r.modseq for r in before.messages}
    new = {r.uid: r for r in after.messages}
    assert "\\Seen" in new[1].flags and new[1].modseq > before.highestmodseq
    assert new[2].modseq == old[2] and new[3].modseq == old[3]


@pytest.mark.parametrize("kind", STORES)
def test_compaction_keeps_recent_tombstones(kind, tmp_path, monkeypatch):
    monkeypatch.setattr(modseq_mod, "_KEEP_TOMBSTONES", 2)
    monkeypatch.setattr(modseq_mod, "_SLACK", 0)
    store = make_store(kind, str(tmp_path))
    fill(store, 6)
    box = store.open("INBOX")
    start = box.sync().highestmodseq
    marks = []
    for uid in (1, 2, 3, 4):
        tx = box.transaction()
        tx.expunge(uid)
        tx.commit()
        marks.append(box.sync().highestmodseq)
    for i in range(12):  # enough flag churn to compact
        tx = box.transaction()
        tx.set_flags(5 + i % 2, frozenset({"\\Flagged"}) if i % 4 < 2 else frozenset())
        tx.commit()
        box.sync()
    with open(log_path(kind, str(tmp_path)), "rb") as f:
        data = f.read()
    assert data.count(b" X\n") == 2  # only the newest two tombstones kept
    # Since before the third expunge: known exactly.
    assert box.expunged_since(marks[1]) == [3, 4]
    assert box.expunged_since(marks[3]) == []
    # Older than the dropped tombstones: the caller must report a superset.
    assert box.expunged_since(start) is None
    box.close()


# -- the in-memory state after our own writes ------------------------------------


def _parsed(state) -> tuple:
    return (state.ident, state.offset, state.uidvalidity, state.highest, state.floor,
            state.live, state.dead, state.lines, state.valid)


def _read_back(path: str):
    """What a process that opens the log now parses from it."""
    return _parsed(modseq_mod.ModseqLog(path)._refresh())


@pytest.mark.parametrize("kind", STORES)
def test_state_after_append_and_compaction_is_what_the_file_says(kind, tmp_path, monkeypatch):
    """
    After appending its lines (and after compacting) the log keeps the
    state it wrote instead of reading the file back: that state must be
    exactly what a fresh reader parses, tombstones included, or the next
    stamp would give MODSEQs from a wrong base.
    """
    monkeypatch.setattr(modseq_mod, "_KEEP_TOMBSTONES", 1)
    monkeypatch.setattr(modseq_mod, "_SLACK", 0)
    store = make_store(kind, str(tmp_path))
    fill(store, 6)
    path = log_path(kind, str(tmp_path))
    box = store.open("INBOX")
    box.sync()
    log = box.modseqs
    compactions = 0
    for i in range(10):
        tx = box.transaction()
        if i in (2, 5):
            tx.expunge(1 + i // 3)
        for uid in range(3, 7):
            tx.set_flags(uid, frozenset({"\\Flagged", "Work"}) if i % 2 else frozenset())
        tx.commit()
        inode = os.stat(path).st_ino
        box.sync()
        compactions += os.stat(path).st_ino != inode
        assert _parsed(log._state) == _read_back(path)
    assert compactions  # both paths were taken
    box.close()


def test_lines_appended_by_another_process_before_our_lock_are_seen(tmp_path):
    """
    What needs a MODSEQ is worked out before the log's lock is taken; if
    another process appends in between, it is worked out again under the
    lock, so neither change is lost and no MODSEQ is handed out twice.
    """
    from datetime import datetime, timezone

    from storage.interfaces import MailboxSnapshot, MessageRecord

    path = str(tmp_path / "log")
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def snap(*flags):
        return MailboxSnapshot(1, 4, tuple(
            MessageRecord(uid, frozenset(f), when, 10, str(uid))
            for uid, f in enumerate(flags, 1)))

    ours = modseq_mod.ModseqLog(path)
    theirs = modseq_mod.ModseqLog(path)  # another process: its own state
    start = ours.stamp(snap((), (), ()))
    theirs.stamp(snap((), (), ()))
    record = ours._record

    def racing(snapshot, needs=None):
        # The other process changes message 1 and message 3 while we wait
        # for the lock; we changed message 2.
        theirs.stamp(snap(("\\Seen",), (), ("\\Seen",)))
        return record(snapshot, needs)

    ours._record = racing
    out = ours.stamp(snap(("\\Seen",), ("\\Flagged",), ()))
    modseqs = [r.modseq for r in out.messages]
    # Ours went after theirs: message 2 above both of theirs; message 3
    # is back to no flags in our listing, so it changed again; message 1
    # has the flags they stamped and keeps their MODSEQ.
    assert modseqs[1] > start.highestmodseq + 2
    assert modseqs[2] > modseqs[1]
    assert modseqs[0] == start.highestmodseq + 1
    assert len(set(modseqs)) == 3 and out.highestmodseq == max(modseqs)
    assert _parsed(ours._state) == _read_back(path)

