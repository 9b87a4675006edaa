# -*- test-case-name: tests.storage.mbox.test_mbox_stale_size -*-
"""
A writer holding the mbox's write lock must not trust a size the client
serves from its attribute cache (issue 20): an NFS client (or nfsfuse,
whose attribute fetch can put an old size back right after an open
cleared it) may still say the file ends where it ended before another
node appended.  An append planned on that size lands on the other node's
message; a rewrite renames a copy without it over the file.

L{StaleAttrs} stands for that client: C{fstat} of the mbox's inode gives
the attributes from before node A's append, a number of times.
"""

from __future__ import annotations

import os

import pytest

from storage import nfs
from storage.errors import StaleRead
from storage.mbox.mailbox import LockSettings
from storage.mbox.store import MboxStore

from storage_mbox_testutil import new_store, read


class StaleAttrs:
    """C{os.fstat} of C{old}'s inode answers C{old}, C{times} times (None: always)."""

    def __init__(self, monkeypatch, old: os.stat_result, times: int | None) -> None:
        self.old = old
        self.left = times
        self.served = 0
        real = os.fstat

        def fstat(fd):
            st = real(fd)
            if ((st.st_dev, st.st_ino) == (old.st_dev, old.st_ino)
                    and (self.left is None or self.left > 0)):
                if self.left is not None:
                    self.left -= 1
                self.served += 1
                return old
            return st

        monkeypatch.setattr(os, "fstat", fstat)


def _append(box, data: bytes) -> int:
    t = box.transaction()
    t.append(data)
    return t.commit().appended[0]


@pytest.fixture
def nodes(tmp_path):
    """
    Node B appended and synced C{box}; node A (another path to the same
    files: another mount) then appended.

    @return: (the mbox path, node B's open mailbox, the file's attributes
        as B last saw them)
    """
    locks = LockSettings(shared=True)
    store_a = new_store(tmp_path, locks=locks)
    store_a.create("box")
    alias = str(tmp_path / "node-b")
    os.symlink(store_a.root, alias)
    store_b = MboxStore(alias, "user", fsync=False, locks=locks)
    box_b = store_b.open("box")
    assert _append(box_b, b"Subject: b1\r\n\r\nfrom B\r\n") == 1
    box_b.sync()
    path = store_a.layout.path("box")
    before = os.stat(path)
    assert _append(store_a.open("box"), b"Subject: a1\r\n\r\nfrom A\r\n") == 2
    return path, box_b, before


@pytest.mark.parametrize("times", [2, 3])
def test_an_append_at_a_stale_size_keeps_the_other_nodes_message(nodes, monkeypatch, times):
    """
    B's APPEND under the lock, while its client still serves the size
    from before A's append: the old store wrote B's message over A's.
    """
    path, box_b, before = nodes
    stale = StaleAttrs(monkeypatch, before, times)
    assert _append(box_b, b"Subject: b2\r\n\r\nfrom B again\r\n") == 3
    assert stale.served >= 1
    monkeypatch.undo()
    data = read(path)
    for subject in (b"Subject: b1", b"Subject: a1", b"Subject: b2"):
        assert data.count(subject) == 1, subject
    snapshot = box_b.sync()
    assert [m.uid for m in snapshot.messages] == [1, 2, 3]


def test_a_size_that_stays_stale_fails_the_write_and_changes_nothing(nodes, monkeypatch):
    """
    Flushing does not help: the write fails with L{StaleRead} and the file
    keeps both messages, byte for byte.
    """
    path, box_b, before = nodes
    content = read(path)
    monkeypatch.setattr(nfs, "STALE_PAUSES", (0.0,))
    StaleAttrs(monkeypatch, before, None)
    t = box_b.transaction()
    t.append(b"Subject: b2\r\n\r\nfrom B again\r\n")
    with pytest.raises(StaleRead, match="nothing was changed"):
        t.commit()
    monkeypatch.undo()
    assert read(path) == content


def test_a_flag_change_at_a_stale_size_keeps_the_other_nodes_message(nodes, monkeypatch):
    """
    A STORE that makes B rewrite the file (a keyword the X-IMAPbase line
    has no room for) from a state short of the end: the old store renamed
    a copy without A's message over the file.
    """
    path, box_b, before = nodes
    StaleAttrs(monkeypatch, before, 2)
    t = box_b.transaction()
    t.set_flags(1, frozenset({"\\Seen"} | {f"$Keyword{i:02d}" for i in range(12)}))
    t.commit()
    monkeypatch.undo()
    data = read(path)
    assert data.count(b"Subject: a1") == 1
    assert [m.uid for m in box_b.sync().messages] == [1, 2]
