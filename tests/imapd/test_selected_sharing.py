"""
Tests for L{imapd.selected.SelectedView}'s copy-on-write sharing: views of
one store snapshot share its UID list and record map (the memory an idle
session holds does not grow with the mailbox), copy them before changing
them, and share again once they show a snapshot exactly.
"""

from __future__ import annotations

from datetime import datetime, timezone

from imapd.selected import SelectedView
from storage.flagchange import FlagChange
from storage.interfaces import CommitResult, MailboxSnapshot, MessageRecord

WHEN = datetime(2024, 1, 1, tzinfo=timezone.utc)


def snapshot(*uids_flags, uidnext=None) -> MailboxSnapshot:
    messages = tuple(MessageRecord(u, frozenset(f), WHEN, 10, str(u)) for u, f in uids_flags)
    last = messages[-1].uid if messages else 0
    return MailboxSnapshot(7, uidnext or last + 1, messages)


def test_views_of_one_snapshot_share_and_copy_on_write():
    snap = snapshot((1, ()), (2, ("\\Seen",)), (3, ()))
    a = SelectedView(None, snap, readonly=False)
    b = SelectedView(None, snap, readonly=False)
    assert a.uids is b.uids and a.records is b.records
    # A change elsewhere (message 2 loses \Seen) reaches both views.
    changed = snapshot((1, ()), (2, ()), (3, ()))
    out = a.apply(changed, allow_expunge=True)
    assert out == [b"* 2 FETCH (FLAGS ())\r\n"]
    # a now shows `changed` exactly and shares its lists; b is untouched.
    assert a.records[2].flags == frozenset()
    assert b.records[2].flags == frozenset({"\\Seen"})
    assert a.uids is not b.uids
    b.apply(changed, allow_expunge=True)
    assert a.uids is b.uids and a.records is b.records


def test_pending_expunge_keeps_a_private_copy():
    snap = snapshot((1, ()), (2, ()), (3, ()))
    a = SelectedView(None, snap, readonly=False)
    b = SelectedView(None, snap, readonly=False)
    gone = snapshot((1, ()), (3, ()), uidnext=4)
    # While FETCH/STORE/SEARCH run, no EXPUNGE may be sent: 2 stays, pending.
    assert a.apply(gone, allow_expunge=False) == []
    assert a.uids == [1, 2, 3] and a.vanished == {2}
    assert b.uids == [1, 2, 3] and not b.vanished
    assert a.apply(gone, allow_expunge=True) == [b"* 2 EXPUNGE\r\n"]
    assert a.uids == [1, 3] and b.uids == [1, 2, 3]
    b.apply(gone, allow_expunge=True)
    assert a.uids is b.uids


def test_new_mail_is_shared_after_apply():
    snap = snapshot((1, ()), (2, ()))
    views = [SelectedView(None, snap, readonly=False) for _ in range(3)]
    more = snapshot((1, ()), (2, ()), (5, ()))
    for v in views:
        assert v.apply(more, allow_expunge=True)[0] == b"* 3 EXISTS\r\n"
    assert views[0].uids == [1, 2, 5]
    assert all(v.uids is views[0].uids for v in views)


class _Store:
    """A mailbox whose sync after a flag commit gives C{after}."""

    def __init__(self, after: MailboxSnapshot) -> None:
        self.after = after
        self.written: dict[int, FlagChange] = {}

    def transaction(self):
        return self

    def change_flags(self, uid, change):
        self.written[uid] = change

    def commit(self):
        return CommitResult(uidvalidity=7)

    def sync(self):
        return self.after


def test_commit_flags_takes_the_stores_records_and_names_surprises():
    """
    A flag commit hands the store the change itself (never the view's
    result), then shows the store's records (with their new MODSEQs) as
    they are.  A message whose flags ended other than the view's flags
    plus the change (another program set \\Deleted meanwhile) is named,
    so that even a .SILENT STORE tells the client.
    """
    before = snapshot((1, ()), (2, ()), (3, ()))
    after = MailboxSnapshot(7, 4, (
        before.messages[0].replace(flags=frozenset({"\\Seen"}), modseq=11),
        before.messages[1].replace(flags=frozenset({"\\Seen", "\\Deleted"}), modseq=12),
        before.messages[2].replace(modseq=5),
    ))
    store = _Store(after)
    view = SelectedView(store, before, readonly=False)
    seen = FlagChange(add=frozenset({"\\Seen"}))
    modified, surprised = view.commit_flags({1: seen, 2: seen})
    assert store.written == {1: seen, 2: seen}
    assert modified == [] and surprised == {2}
    assert view.records[1] is after.messages[0]
    assert view.records[2] is after.messages[1]
    assert view.records[3] is before.messages[2]
    # Nothing left to report for 1 and 2; 3 only changed its MODSEQ.
    assert view.apply(after, allow_expunge=True) == []
