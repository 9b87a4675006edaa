"""
Deliveries to one mailbox that arrive together share one transaction
(L{imapd.delivery.batch}, L{imapd.delivery.core.Deliverer.deliver_batch}):
on both stores each message keeps its own trace headers and envelope
sender and gets the next UID in order, under one lock and one sync of the
UID list or the file; the queue starts a lone delivery at once and groups
only what waited; a quota keeps deliveries apart.
"""

from __future__ import annotations

import os

from twisted.internet import defer

from imapd.delivery.batch import DeliveryQueue
from imapd.delivery.core import DeliveryError, Message, TemporaryFailure
from imapd.server import QuotaLimits, QuotaPolicy
from tests.delivery.delivery_helpers import make_deliverer, messages_of


def _message(n: int) -> Message:
    return Message.from_bytes(b"Subject: number %d\r\n\r\nbody %d\r\n" % (n, n))


def test_a_batch_is_one_transaction_with_each_messages_own_headers(
        deliverer, location, tmp_path, store_kind, monkeypatch):
    """
    Three deliveries in one batch: UIDs 2, 3, 4 after an earlier one, each
    message with its own Return-Path (and mbox From_ line), and the UID
    list (Maildir) or the file (mbox) synced once for all three.
    """
    alice = deliverer.resolve("alice")
    assert deliverer.deliver(alice, _message(1), "first@example.net") == ("INBOX", 1)
    syncs = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(os.readlink(
        f"/proc/self/fd/{fd}")), real(fd))[1])
    outcomes = deliverer.deliver_batch([(alice, _message(n), f"s{n}@example.net")
                                        for n in (2, 3, 4)])
    monkeypatch.undo()
    assert outcomes == [("INBOX", 2), ("INBOX", 3), ("INBOX", 4)]
    stored = messages_of(location, "alice", tmp_path)
    assert len(stored) == 4
    for n, data in zip((2, 3, 4), stored[1:]):
        assert data.startswith(b"Return-Path: <s%d@example.net>\r\nDelivered-To: alice\r\n" % n)
        assert b"Subject: number %d" % n in data
    if store_kind == "mbox":
        inbox = b"".join(p.read_bytes() for p in (tmp_path / "mail" / "alice").rglob("*")
                         if p.is_file() and ".imapd-journal" not in p.parts)
        for n in (2, 3, 4):
            assert b"\nFrom s%d@example.net " % n in inbox
        # One fsync of the file for the three (the journal's record is fdatasync'ed).
        assert len(syncs) == 1, syncs
    else:
        # Three message files, the UID list once, and new/ once for the
        # three renames into it.
        assert sum(p.endswith("dovecot-uidlist") for p in syncs) == 1, syncs
        assert sum(p.endswith("/new") for p in syncs) == 1, syncs
        assert len(syncs) == 5, syncs


def test_a_failed_batch_stores_nothing_and_fails_each(deliverer, location, tmp_path,
                                                      monkeypatch):
    """A commit that fails leaves the mailbox as it was and every delivery gets 451."""
    from storage.errors import StoreError

    alice = deliverer.resolve("alice")
    deliverer.deliver(alice, _message(1), "")

    def broken(self):
        raise StoreError("cannot write: disk on fire")
    cls = type(_open_inbox(deliverer, alice).transaction())
    monkeypatch.setattr(cls, "commit", broken)
    outcomes = deliverer.deliver_batch([(alice, _message(n), "") for n in (2, 3)])
    assert [type(o) for o in outcomes] == [TemporaryFailure, TemporaryFailure]
    assert all((o.code, o.status) == (451, "4.3.0") for o in outcomes)
    monkeypatch.undo()
    assert len(messages_of(location, "alice", tmp_path)) == 1


def _open_inbox(deliverer, recipient):
    store = deliverer._open_store(deliverer.location, recipient.user, recipient.home,
                                  deliverer.index_dir)
    return store.open("INBOX", False)


class _Pool:
    """A storage pool whose jobs finish when the test says (run them now, one by one)."""

    def __init__(self) -> None:
        self.jobs: list = []

    def run(self, user, fn, *args):
        d = defer.Deferred()
        self.jobs.append((fn, args, d))
        return d

    def finish(self) -> None:
        fn, args, d = self.jobs.pop(0)
        d.callback(fn(*args))


def test_queue_starts_a_lone_delivery_at_once_and_groups_what_waited(deliverer):
    """
    The first delivery runs alone at once; three that come while it runs
    go in one batch after it, each answered with its own UID.
    """
    pool = _Pool()
    queue = DeliveryQueue(deliverer, pool.run)
    alice = deliverer.resolve("alice")
    results = []
    first = queue.deliver(alice, _message(1), "")
    first.addCallback(results.append)
    assert [len(args[0]) for _, args, _ in pool.jobs] == [1]
    for n in (2, 3, 4):
        queue.deliver(alice, _message(n), "").addCallback(results.append)
    # Another user's delivery is not held up by alice's.
    queue.deliver(deliverer.resolve("bob@example.org"), _message(9), "").addCallback(
        results.append)
    assert [len(args[0]) for _, args, _ in pool.jobs] == [1, 1]
    pool.finish()
    assert results == [("INBOX", 1)]
    assert [len(args[0]) for _, args, _ in pool.jobs] == [1, 3]
    pool.finish()
    pool.finish()
    assert results == [("INBOX", 1), ("INBOX", 1), ("INBOX", 2), ("INBOX", 3), ("INBOX", 4)]
    assert pool.jobs == [] and queue._waiting == {}


def test_queue_keeps_deliveries_under_a_quota_apart(location, passwd_file, tmp_path):
    """Under a quota each delivery is judged alone: no batch, the one that does not fit is refused."""
    deliverer = make_deliverer(location, passwd_file, tmp_path,
                               quota=QuotaPolicy(QuotaLimits(messages=2)))
    pool = _Pool()
    queue = DeliveryQueue(deliverer, pool.run)
    alice = deliverer.resolve("alice")
    outcomes = []
    for n in (1, 2, 3):
        queue.deliver(alice, _message(n), "").addBoth(outcomes.append)
    assert [fn for fn, _, _ in pool.jobs] == [deliverer.deliver] * 3
    for _ in range(3):
        fn, args, d = pool.jobs.pop(0)
        try:
            d.callback(fn(*args))
        except DeliveryError as e:
            d.errback(e)
    assert outcomes[:2] == [("INBOX", 1), ("INBOX", 2)]
    assert outcomes[2].value.code == 552
