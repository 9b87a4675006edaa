# -*- test-case-name: tests.imapd.commands.test_idle -*-
"""
IDLE (RFC 2177): report changes as they happen until the client says DONE.

Changes by others reach us only through the store (DESIGN.md), so the
session re-syncs while idling: at once when L{imapd.mailwatch} says the
selected mailbox may have changed (a delivery by this process, or an
inotify event of its files: an LDA, another process), and every
L{SessionLimits.idle_poll_interval} seconds in any case, which bounds how
late a change nobody announced is seen (another node's, on NFS).
"""

from __future__ import annotations

from twisted.internet import defer

from imapd.errors import BadCommand
from imapd.parser.types import Idle

__all__ = ["handle_idle"]


async def _subscribe(session, wake):
    """
    Ask L{imapd.mailwatch} to call C{wake} when the session's user's mail
    or the selected mailbox's files change; the subscription, or None.
    """
    from imapd.mailwatch import watch_paths, watcher_for

    if session.account is None:
        return None
    dirs, files = (), ()
    if session.selected is not None:
        # Deciding (and stat-ing) the paths may touch shared storage: in
        # the pool, never on the reactor thread.
        try:
            dirs, files = await session.run(watch_paths, session.selected.mailbox)
        except Exception as e:  # a mailbox gone or unreadable: the poll still runs
            session.log.debug("No watch for IDLE: {error}", error=str(e))
    return watcher_for(session.clock).subscribe(session.account.user, wake, dirs, files)


async def handle_idle(session, cmd: Idle):
    """
    RFC 2177 section 3.  Besides the poll, a change made by another
    session of this process to the selected mailbox wakes us at once
    (L{imapd.commands.notify.changes}).
    """
    from imapd.commands.notify import changes

    line_d = session.read_line(b"idling")
    interval = session.limits.idle_poll_interval
    woken = [defer.Deferred()]

    def wake() -> None:
        if not woken[0].called:
            woken[0].callback(None)
    subscription = await _subscribe(session, wake)
    changes.idling(session, wake)
    try:
        while True:
            tick = defer.Deferred()
            call = session.clock.callLater(interval, tick.callback, None)
            result, index = await defer.DeferredList(
                [line_d, tick, woken[0]], fireOnOneCallback=True, fireOnOneErrback=True,
                consumeErrors=True
            )
            if call.active():
                call.cancel()
            if index == 0:
                line = result
                break
            if woken[0].called:
                woken[0] = defer.Deferred()
            if session.selected is not None:
                await session.sync(allow_expunge=True)
            if session.notify is not None:
                # RFC 5465 section 4: the other mailboxes NOTIFY watches.
                from imapd.commands.notify import look_during_idle

                await look_during_idle(session)
    finally:
        changes.idle_done(session)
        if subscription is not None:
            subscription.cancel()
    if line.strip().upper() != b"DONE":
        raise BadCommand("Expected DONE to end IDLE")
    return None, "IDLE terminated"
