# -*- test-case-name: tests.imapd.cluster.test_sessions -*-
"""
A backend keeps its users placed while they have sessions.

Placements expire C{user_expire} seconds after they were last made
(L{imapd.cluster.placement}); a user whose only session is a day-long IDLE
would otherwise be placed again by the ring while still logged in, and
its next session could land on another node.  So a node that is in the
host table (C{[cluster] node} = its address) counts its users' sessions
(L{TrackingRealm}) and, every third of C{user_expire}, refreshes the
placement of every user with a session here whose current owner is this
node (L{SessionRefreshService}).  A stray session of a user owned
elsewhere (a client that bypassed the proxy) claims nothing.
"""

from __future__ import annotations

import time

from twisted.cred.portal import IRealm
from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from imapd.cluster.periodic import Periodic

__all__ = ["SessionTracker", "TrackingRealm", "SessionRefreshService", "refresh_placements"]

log = Logger(namespace="imapd.cluster")


class SessionTracker:
    """Open sessions per user (reactor thread only)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def opened(self, user: str) -> None:
        self._counts[user] = self._counts.get(user, 0) + 1

    def closed(self, user: str) -> None:
        left = self._counts.get(user, 0) - 1
        if left > 0:
            self._counts[user] = left
        else:
            self._counts.pop(user, None)

    def active(self) -> list[str]:
        return sorted(self._counts)


@implementer(IRealm)
class TrackingRealm:
    """
    Wraps a realm: each account it makes counts as a session until its
    C{logout} (which the session calls when it ends; the wrapper is set on
    the account instance, so the account's type and interfaces stay).
    """

    def __init__(self, realm, tracker: SessionTracker) -> None:
        self.realm = realm
        self.tracker = tracker

    def requestAvatar(self, avatarId, mind, *interfaces):
        d = defer.maybeDeferred(self.realm.requestAvatar, avatarId, mind, *interfaces)
        return d.addCallback(self._track)

    def _track(self, result):
        iface, account, logout = result
        user = account.user
        self.tracker.opened(user)
        original = account.logout
        ended = []

        def tracked_logout(*args, **kwargs):
            if not ended:
                ended.append(True)
                self.tracker.closed(user)
            return original(*args, **kwargs)
        account.logout = tracked_logout
        return iface, account, tracked_logout


def refresh_placements(directory, me: str, users, now: float) -> int:
    """
    Blocking: refresh the placement on C{me} of each of C{users} whose
    current owner is C{me}, and write them.  Returns how many.
    """
    count = 0
    for user in users:
        status = directory.status(user, now)
        if status.current is not None and status.current.address == me:
            directory.placements.record(status.key, me, status.epoch, now)
            count += 1
    directory.placements.flush(now)
    return count


class SessionRefreshService(Periodic):
    """Every C{interval} seconds, L{refresh_placements} in a thread."""

    failure_message = "cannot refresh placements"

    def __init__(self, directory, tracker: SessionTracker, me: str, interval: float,
                 clock=None, runner=None) -> None:
        super().__init__(interval, clock)
        self.directory = directory
        self.tracker = tracker
        self.me = me
        self.runner = threads.deferToThread if runner is None else runner

    def work(self):
        users = self.tracker.active()
        if not users:
            return None
        return self.runner(refresh_placements, self.directory, self.me, users, time.time())
