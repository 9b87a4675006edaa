# -*- test-case-name: tests.storage.maildir.test_maildir_stale_read -*-
"""
A uidlist read that ends early (issue 20): an NFS client that still has
an old size of C{dovecot-uidlist} cached serves the file up to that size,
even to a reader holding the lock.  The lines appended after it then look
missing, and the files they number look unlisted: the old store gave
those files the next UIDs, that is the UIDs of the missing lines, and a
client's UID EXPUNGE afterwards removed another message.

The store must read to the end of the file, check the end against the
file's flushed size and against what this process already saw of the file
(L{UidlistFile.read_locked}), read again, and when the file keeps looking
short fail with L{StaleRead} without writing anything.

L{StaleSize} stands for the stale client: while armed, reads of the
uidlist stop after C{keep} bytes, and the flushed size may lie as well.
"""

from __future__ import annotations

import builtins
import os

import pytest

import storage.maildir.uidlist as uidlist_mod
from imapd.errors import to_response
from storage.errors import StaleRead
from storage.maildir.mailbox import MaildirMailbox
from storage import nfs
from storage.maildir.uidlist import UIDLIST_NAME, Uidlist, UidlistFile, UidlistRecord

from storage_maildir_testutil import make_store


class StaleSize:
    """
    Reads of C{dovecot-uidlist} end after C{keep} bytes, C{reads} times
    (C{None}: for as long as the test runs); with C{size_too} the size a
    flush reports is that stale one as well.
    """

    def __init__(self, monkeypatch, keep: int, reads: int | None = 1,
                 size_too: bool = False) -> None:
        self.keep = keep
        self.left = reads
        self.cuts = 0
        real_open = builtins.open
        real_eof = getattr(uidlist_mod, "_read_to_eof", None)
        outer = self

        class Short:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def fileno(self):
                return self.f.fileno()

            def read(self, *args):
                return outer.cut(self.f.read(*args))

        def fake_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if os.path.basename(os.fspath(file)) == UIDLIST_NAME and mode == "rb":
                return Short(f)
            return f

        monkeypatch.setattr(uidlist_mod, "open", fake_open, raising=False)
        if real_eof is not None:
            monkeypatch.setattr(uidlist_mod, "_read_to_eof", lambda fd: self.cut(real_eof(fd)))
        real_flush = getattr(uidlist_mod, "flush_fd", None)
        if size_too and real_flush is not None:

            def stale_flush(fd):
                st = real_flush(fd)
                if not self.armed:
                    return st
                fields = list(st)
                fields[6] = min(st.st_size, keep)    # st_size
                return os.stat_result(fields)

            monkeypatch.setattr(uidlist_mod, "flush_fd", stale_flush, raising=False)

    @property
    def armed(self) -> bool:
        return self.left is None or self.left > 0

    def cut(self, data: bytes) -> bytes:
        if not self.armed or len(data) <= self.keep:
            return data
        if self.left is not None:
            self.left -= 1
        self.cuts += 1
        return data[: self.keep]


def _append(box: MaildirMailbox, data: bytes, flags=("\\Seen",)) -> int:
    tx = box.transaction()
    tx.append(data, list(flags))
    return tx.commit().appended[0]


def _deliver(root: str, name: str, mtime: int) -> None:
    """An MDA's delivery into new/ (an older file than the client's)."""
    path = os.path.join(root, "tmp", name)
    with open(path, "wb") as f:
        f.write(b"Subject: delivered\n\nby the MDA\n")
    os.utime(path, (mtime, mtime))
    os.rename(path, os.path.join(root, "new", name))


def _on_disk(root: str) -> dict[str, int]:
    with open(os.path.join(root, UIDLIST_NAME), "rb") as f:
        return {r.base: r.uid for r in Uidlist.parse(f.read()).records}


def _uidlist_bytes(root: str) -> bytes:
    with open(os.path.join(root, UIDLIST_NAME), "rb") as f:
        return f.read()


MDA1 = "1600000000.mda1.host"
MDA2 = "1600000001.mda2.host"


@pytest.fixture
def setup(tmp_path):
    """
    Node A appends UIDs 1-2, an MDA delivers C{mda1}, which A's sync
    numbers 3 (a rewrite of the file: C{N4}), then A appends a client's
    message as UID 4, whose line ends the file (an append leaves C{N4}).
    Node B is the same Maildir under another path (a second mount): this
    process has not read the uidlist there yet.

    @return: (root, node A, B's path, the size before UID 4's line, the
        client message's base name)
    """
    store = make_store(tmp_path)
    root = store.root
    node_a = store.open("INBOX")
    assert _append(node_a, b"Subject: one\n\n1\n") == 1
    assert _append(node_a, b"Subject: two\n\n2\n") == 2
    _deliver(root, MDA1, 1_600_000_000)
    assert {m.key: m.uid for m in node_a.sync().messages}[MDA1] == 3
    keep = os.path.getsize(os.path.join(root, UIDLIST_NAME))
    assert _append(node_a, b"Subject: client\n\nappended\n") == 4
    client = next(b for b, u in _on_disk(root).items() if u == 4)
    alias = str(tmp_path / "node-b")
    os.symlink(root, alias)
    return root, node_a, alias, keep, client


def test_a_short_read_under_the_lock_renumbers_nothing(setup, monkeypatch):
    """
    B's sync numbers an MDA's delivery (older than the client's message)
    through a read that ends before UID 4's line.  The old store gave UID
    4 to the MDA's file and 5 to the client's message (which A had
    answered APPENDUID 4 for); the read must be found short against the
    file's size and made again.
    """
    root, _node_a, alias, keep, client = setup
    _deliver(root, MDA2, 1_600_000_001)
    stale = StaleSize(monkeypatch, keep, reads=2)
    snapshot = MaildirMailbox("INBOX", alias, lambda: 999).sync()
    assert stale.cuts >= 1
    on_disk = _on_disk(root)
    assert (on_disk[client], on_disk[MDA2]) == (4, 5)
    assert {m.key: m.uid for m in snapshot.messages}[client] == 4


def test_a_read_that_stays_short_fails_and_writes_nothing(setup, monkeypatch):
    """
    However often the client keeps serving the short file, nothing is
    renumbered: the sync fails with L{StaleRead} (NO [UNAVAILABLE]) and
    the uidlist is left as it is.
    """
    root, _node_a, alias, keep, client = setup
    _deliver(root, MDA2, 1_600_000_001)
    before = _uidlist_bytes(root)
    StaleSize(monkeypatch, keep, reads=None)
    with pytest.raises(StaleRead) as caught:
        MaildirMailbox("INBOX", alias, lambda: 999).sync()
    assert _uidlist_bytes(root) == before
    assert _on_disk(root)[client] == 4
    status, code, text = to_response(caught.value)
    assert (status, code) == (b"NO", "UNAVAILABLE")
    assert "nothing was changed" in text


def test_the_high_water_mark_catches_a_short_read_the_size_hides(setup, monkeypatch):
    """
    Even when the flushed size agrees with the short read (the client's
    cache stays stale), a session of this process that already saw UID 4
    makes a later read under the lock that lacks it a contradiction: the
    read is retried, then refused, never used to give UID 4 again.
    """
    root, _node_a, alias, keep, client = setup
    seen = MaildirMailbox("INBOX", alias, lambda: 999, nfs=True).sync()
    assert [m.uid for m in seen.messages] == [1, 2, 3, 4]
    _deliver(root, MDA2, 1_600_000_001)
    before = _uidlist_bytes(root)
    # Another session's read: a new object with no parse cache.
    StaleSize(monkeypatch, keep, reads=None, size_too=True)
    with pytest.raises(StaleRead, match="already saw UIDs up to 4"):
        MaildirMailbox("INBOX", alias, lambda: 999, nfs=True).sync()
    assert _uidlist_bytes(root) == before
    assert _on_disk(root)[client] == 4


def test_an_append_after_a_short_read_takes_the_next_uid(setup, monkeypatch):
    """
    An APPEND numbers its message from the read under the lock.  From a
    read without UID 4's line the old store wrote a second line for UID 4
    (the uidlist then no longer parses).  The new one reads again and
    appends UID 5.
    """
    root, _node_a, alias, keep, client = setup
    node_b = MaildirMailbox("INBOX", alias, lambda: 999)
    StaleSize(monkeypatch, keep, reads=2)
    assert _append(node_b, b"Subject: from B\n\nb\n") == 5
    on_disk = _on_disk(root)
    assert on_disk[client] == 4
    assert sorted(on_disk.values()) == [1, 2, 3, 4, 5]


def test_an_append_refused_below_what_the_process_saw(setup, monkeypatch):
    """
    With the flushed size lying too, the high-water mark of a session
    that saw UID 4 refuses the APPEND; its temporary file is removed and
    the uidlist is untouched.
    """
    root, _node_a, alias, keep, _client = setup
    MaildirMailbox("INBOX", alias, lambda: 999, nfs=True).sync()
    before = _uidlist_bytes(root)
    StaleSize(monkeypatch, keep, reads=None, size_too=True)
    node_b = MaildirMailbox("INBOX", alias, lambda: 999, nfs=True)
    with pytest.raises(StaleRead):
        _append(node_b, b"Subject: from B\n\nb\n")
    assert _uidlist_bytes(root) == before
    assert os.listdir(os.path.join(root, "tmp")) == []


def test_an_expunge_never_removes_a_message_the_session_did_not_mean(setup):
    """
    The session was shown UID 4 as the client's message; a uidlist that
    now calls another file UID 4 (what a renumbering node wrote) is not
    acted on: the old store unlinked the MDA's message for the client's
    UID EXPUNGE 4, and the client's own message stayed as UID 5.
    """
    root, session, _alias, _keep, client = setup
    snapshot = session.sync()
    assert {m.uid: m.key for m in snapshot.messages}[4] == client
    _deliver(root, MDA2, 1_600_000_001)
    # What the renumbering node wrote: the MDA's file as 4, the client's as 5.
    path = os.path.join(root, UIDLIST_NAME)
    with open(path, "rb") as f:
        current = Uidlist.parse(f.read())
    records = tuple(r for r in current.records if r.uid < 4)
    own = next(r for r in current.records if r.base == client)
    renumbered = current.with_records(
        (*records, UidlistRecord(4, MDA2), own._replace(uid=5)))
    with open(path + ".tmp", "wb") as f:
        f.write(renumbered.serialize())
    os.rename(path + ".tmp", path)
    tx = session.transaction()
    tx.expunge(4)
    with pytest.raises(StaleRead, match="UID 4 is"):
        tx.commit()
    names = {n.split(":", 1)[0] for sub in ("new", "cur")
             for n in os.listdir(os.path.join(root, sub))}
    assert {MDA2, client} <= names


def test_reads_under_the_lock_are_flushed_and_retried_a_bounded_number_of_times(
        tmp_path, monkeypatch):
    """L{nfs.STALE_READS} reads, each to the end of the file, then L{StaleRead}."""
    store = make_store(tmp_path)
    box = store.open("INBOX")
    _append(box, b"Subject: a\n\n1\n")
    _append(box, b"Subject: b\n\n2\n")
    size = os.path.getsize(os.path.join(store.root, UIDLIST_NAME))
    monkeypatch.setattr(nfs, "STALE_PAUSES", (0.0,))
    stale = StaleSize(monkeypatch, size - 3, reads=None)
    with pytest.raises(StaleRead, match="short read"):
        UidlistFile(store.root).read_locked()
    assert stale.cuts == nfs.STALE_READS


def test_a_missing_uidlist_is_refused_once_then_the_mailbox_starts_afresh(tmp_path, monkeypatch):
    """
    A uidlist this process read that is gone under the lock may be a
    stale lookup: refused (the old store made a new UIDVALIDITY and wrote
    it over the real file).  The refusal forgets what was seen, so a
    Maildir whose uidlist really went is numbered again at the next try.
    """
    monkeypatch.setattr(nfs, "STALE_PAUSES", (0.0,))
    store = make_store(tmp_path)
    box = store.open("INBOX")
    _append(box, b"Subject: a\n\n1\n")
    os.unlink(os.path.join(store.root, UIDLIST_NAME))
    with pytest.raises(StaleRead, match="missing"):
        store.open("INBOX").sync()
    assert not os.path.exists(os.path.join(store.root, UIDLIST_NAME))
    assert [m.uid for m in store.open("INBOX").sync().messages] == [1]


def test_a_deleted_mailbox_made_again_without_a_uidlist_is_not_refused(tmp_path):
    """
    DELETE forgets the mailbox's uidlist: a program that makes the Maildir
    again at that path and leaves the uidlist to us is not "missing".
    """
    store = make_store(tmp_path)
    store.create("Folder")
    box = store.open("Folder")
    _append(box, b"Subject: a\n\n1\n")
    path = box.directory
    store.delete("Folder")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub))
    _deliver(path, MDA1, 1_600_000_000)
    assert [m.key for m in store.open("Folder").sync().messages] == [MDA1]


def test_a_locked_read_of_an_unchanged_uidlist_parses_nothing_with_nfs(tmp_path, monkeypatch):
    """
    The flush moves the file's ctime, so with C{nfs} the parse cache is
    keyed without it: an APPEND to a 10,000-message Maildir must not parse
    10,000 lines again because of our own flush.
    """
    store = make_store(tmp_path)
    _append(store.open("INBOX"), b"Subject: a\n\n1\n")
    uidfile = UidlistFile(store.root, nfs=True)
    first = uidfile.read_locked()
    parses = []
    real = Uidlist.parse
    monkeypatch.setattr(Uidlist, "parse", lambda data, path="": parses.append(path)
                        or real(data, path))
    assert uidfile.read_locked() is first
    assert parses == []
    with open(os.path.join(store.root, UIDLIST_NAME), "ab") as f:
        f.write(b"9 :appended-elsewhere\n")
    assert [r.uid for r in uidfile.read_locked().records] == [1, 9]
    # The appended line is parsed onto what the process had, not the file again.
    assert parses == []
