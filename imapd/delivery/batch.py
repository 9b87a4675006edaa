# -*- test-case-name: tests.delivery.test_delivery_batch -*-
"""
Deliveries to one mailbox that arrive together share one transaction.

Each delivery costs its own message's write and sync, plus work per
mailbox: the UID list's lock and sync (Maildir), or the journal's and
the file's syncs (mbox).  When several MTA connections deliver to one
user at once, the second and later deliveries would only wait for that
lock anyway; here they wait in a queue instead, and when the mailbox is
free all that waited go in one L{imapd.delivery.core.Deliverer.deliver_batch}.
A delivery that finds the mailbox free starts at once, alone, so one
connection's deliveries are not delayed.  Deliveries under a quota are
never grouped (each is judged against the usage before it).

Runs on the reactor thread; the store work runs in the storage pool
through C{run}.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from twisted.python.failure import Failure

from imapd.delivery.core import DeliveryError

__all__ = ["DeliveryQueue"]


class DeliveryQueue:
    """
    @param deliverer: an L{imapd.delivery.core.Deliverer}.
    @param run: C{run(user, fn, *args) -> Deferred}: C{fn} in C{user}'s
        share of the storage pool.
    """

    #: The most deliveries one transaction takes.
    MAX_BATCH = 32

    def __init__(self, deliverer, run: Callable) -> None:
        self.deliverer = deliverer
        self.run = run
        #: (user, folder) -> deliveries waiting for the one under way
        self._waiting: dict[tuple, list] = {}

    def deliver(self, recipient, message, sender: str) -> defer.Deferred:
        """Store C{message} for C{recipient}: a Deferred of (mailbox, UID)."""
        if not self.deliverer.batchable(recipient):
            return self.run(recipient.user, self.deliverer.deliver, recipient, message, sender)
        key = (recipient.user, recipient.folder)
        d: defer.Deferred = defer.Deferred()
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.append((recipient, message, sender, d))
        else:
            self._waiting[key] = []
            self._start(key, [(recipient, message, sender, d)])
        return d

    def _start(self, key: tuple, items: list) -> None:
        batch = [(recipient, message, sender) for recipient, message, sender, _ in items]
        done = self.run(key[0], self.deliverer.deliver_batch, batch)

        def finished(outcomes) -> None:
            for (_r, _m, _s, d), outcome in zip(items, _per_item(outcomes, len(items))):
                if isinstance(outcome, (Failure, DeliveryError)):
                    d.errback(outcome)
                else:
                    d.callback(outcome)
            waiting = self._waiting.get(key)
            if not waiting:
                del self._waiting[key]
                return
            self._waiting[key] = waiting[self.MAX_BATCH:]
            self._start(key, waiting[:self.MAX_BATCH])
        done.addBoth(finished)


def _per_item(outcomes, count: int) -> list:
    """One outcome per delivery: a failure of the whole job is each one's."""
    if isinstance(outcomes, Failure):
        return [outcomes] * count
    return list(outcomes)
