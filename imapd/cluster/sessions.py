# -*- test-case-name: tests.imapd.cluster.test_sessions -*-
"""
A backend keeps its users placed while they have sessions, and ends
their sessions when an admin moves them away.

Placements expire C{user_expire} seconds after they were last made
(L{imapd.cluster.placement}); a user whose only session is a day-long IDLE
would otherwise be placed again by the ring while still logged in, and
its next session could land on another node.  So a node that is in the
host table (C{[cluster] node} = its address) counts its users' sessions
(L{TrackingRealm}) and every few seconds (L{NodeSessionsService}):

  - refreshes the placement of each user with a session here whose
    current owner is this node (when a third of C{user_expire} has gone);
  - ends the sessions of each user that was owned here and no longer is
    (this host flushed, taken down or removed, the user moved): the
    client reconnects and reaches the new owner, as a Dovecot director's
    flush kicks.  A stray session of a user owned elsewhere all along (a
    client that bypassed the proxy) is neither claimed nor ended.
"""

from __future__ import annotations

import time

from twisted.cred.portal import IRealm
from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from imapd.cluster.periodic import Periodic

__all__ = ["SessionTracker", "TrackingRealm", "NodeSessionsService", "check_sessions"]

log = Logger(namespace="imapd.cluster")


class SessionTracker:
    """Open sessions per user (reactor thread only)."""

    def __init__(self) -> None:
        self._sessions: dict[str, list] = {}

    def opened(self, user: str, session=None) -> None:
        self._sessions.setdefault(user, []).append(session)

    def closed(self, user: str, session=None) -> None:
        sessions = self._sessions.get(user, [])
        if session in sessions:
            sessions.remove(session)
        if not sessions:
            self._sessions.pop(user, None)

    def active(self) -> list[str]:
        return sorted(self._sessions)

    def sessions(self, user: str) -> list:
        """The sessions (the portal's C{mind}s) of C{user}."""
        return [s for s in self._sessions.get(user, []) if s is not None]


@implementer(IRealm)
class TrackingRealm:
    """
    Wraps a realm: each account it makes counts as a session until its
    C{logout} (which the session calls when it ends; the wrapper is set on
    the account instance, so the account's type and interfaces stay).
    """

    def __init__(self, realm, tracker: SessionTracker, directory=None, clock=None,
                 runner=None) -> None:
        self.realm = realm
        self.tracker = tracker
        #: With a directory, the login of a user being moved waits for the
        #: move's end (L{imapd.cluster.moves}).
        self.directory = directory
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.runner = threads.deferToThread if runner is None else runner

    def requestAvatar(self, avatarId, mind, *interfaces):
        if self.directory is None or mind is None:
            d = defer.maybeDeferred(self.realm.requestAvatar, avatarId, mind, *interfaces)
        else:
            d = defer.Deferred.fromCoroutine(self._after_move(avatarId, mind, interfaces))
        return d.addCallback(self._track, mind)

    async def _after_move(self, avatarId, mind, interfaces):
        """
        A user being moved logs in once the move is over (Dovecot blocks
        such logins the same way), on whichever node it then lands.
        """
        from imapd.cluster.moves import wait_unblocked

        user = getattr(avatarId, "name", avatarId)
        user = user.decode("utf-8", "replace") if isinstance(user, bytes) else user
        waited = await wait_unblocked(lambda now: self.directory.blocked_until(user, now),
                                      self.clock, self.runner)
        if waited:
            log.info("Login of {user!r} waited {s:.1f}s for its move", user=user, s=waited)
        return await defer.maybeDeferred(self.realm.requestAvatar, avatarId, mind, *interfaces)

    def _track(self, result, session):
        iface, account, logout = result
        user = account.user
        self.tracker.opened(user, session)
        original = account.logout
        ended = []

        def tracked_logout(*args, **kwargs):
            if not ended:
                ended.append(True)
                self.tracker.closed(user, session)
            return original(*args, **kwargs)
        account.logout = tracked_logout
        return iface, account, tracked_logout


def check_sessions(directory, me: str, users, mine: set, now: float) -> list[str]:
    """
    Blocking: refresh the placements of C{users} owned by C{me}, write
    them, and return the users to end the sessions of: those in C{mine}
    (owned here at the last check) that are owned elsewhere now.  C{mine}
    is updated.
    """
    placements = directory.placements
    statuses = directory.statuses(users, now)
    held = placements.lookup_many([s.key for s in statuses], now)
    moved = []
    for user, status in zip(users, statuses):
        if status.current is not None and status.current.address == me:
            mine.add(user)
            p = held[status.key]
            if p is None or p.host != me or now - p.when >= placements.user_expire / 3:
                placements.record(status.key, me, status.epoch, now)
        elif user in mine:
            mine.discard(user)
            moved.append(user)
    mine.intersection_update(users)
    placements.flush(now)
    return moved


class NodeSessionsService(Periodic):
    """Every C{interval} seconds, L{check_sessions} in a thread, then the kicks."""

    failure_message = "cannot check this node's sessions"

    def __init__(self, directory, tracker: SessionTracker, me: str, interval: float,
                 clock=None, runner=None) -> None:
        super().__init__(interval, clock)
        self.directory = directory
        self.tracker = tracker
        self.me = me
        self.runner = threads.deferToThread if runner is None else runner
        #: Users owned here at the last check (touched in the runner only).
        self.mine: set = set()
        #: The last check reported sessions (so an empty report follows).
        self._reported = False
        self._report_failed = False

    def work(self):
        users = self.tracker.active()
        if not users and not self.mine and not self._reported:
            return None
        self._reported = bool(users)
        d = self.runner(self._check, users, time.time())
        return d.addCallback(self._kick)

    def _check(self, users, now: float) -> list[str]:
        moved = check_sessions(self.directory, self.me, users, self.mine, now)
        reports = self.directory.reports
        if reports is not None and reports.writer is not None:
            # For a move waiting to see these sessions gone (imapd.cluster.moves).
            from imapd.cluster.hashing import expand_key

            try:
                reports.report(expand_key(u, self.directory.fmt) for u in users)
            except Exception as e:  # OSError, StoreError: never at the kicks' cost
                if not self._report_failed:
                    log.warn("Cannot write this node's session report in {d}: {e}; moves "
                             "of its users wait their whole move_timeout", d=reports.directory,
                             e=e)
                self._report_failed = True
        return moved

    def _kick(self, moved: list[str]) -> None:
        for user in moved:
            sessions = self.tracker.sessions(user)
            log.info("{user!r} is no longer placed on {me}: ending its {n} sessions",
                     user=user, me=self.me, n=len(sessions))
            for session in sessions:
                session.kick("Your mailbox moved to another server; please reconnect")
