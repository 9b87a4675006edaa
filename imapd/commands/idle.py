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
from twisted.python.failure import Failure

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

    An idling session is what a server holds most of (a mail client keeps
    one per watched mailbox for hours), so each wait of the loop costs one
    Deferred and one timer, both gone when the wait ends: the client's
    line, the poll's timer and a wake-up all fire the one pending
    Deferred.  (A C{DeferredList} per wait would leave its callbacks on
    the line's Deferred, which only fires at DONE: some 700 bytes every
    poll interval, for as long as the session idles.)
    """
    from imapd.commands.notify import changes

    line_d = session.read_line(b"idling")
    interval = session.limits.idle_poll_interval
    arrived: list = []         # the client's line, or the Failure of a lost connection
    pending: list = [None]     # the Deferred the loop waits on
    woken = [False]            # a wake-up came since the last sync

    def fire(_=None) -> None:
        waiter, pending[0] = pending[0], None
        if waiter is not None and not waiter.called:
            waiter.callback(None)

    def line_arrived(result) -> None:
        arrived.append(result)  # a Failure is kept, so it is not unhandled
        fire()

    def wake() -> None:
        woken[0] = True
        fire()

    line_d.addBoth(line_arrived)
    subscription = await _subscribe(session, wake)
    changes.idling(session, wake)
    call = None
    try:
        while not arrived:
            if not woken[0]:
                waiter = pending[0] = defer.Deferred()
                call = session.clock.callLater(interval, fire)
                await waiter
                if call.active():
                    call.cancel()
                call = None
                if arrived:
                    break
            woken[0] = False
            if session.selected is not None:
                await session.sync(allow_expunge=True)
            if session.notify is not None:
                # RFC 5465 section 4: the other mailboxes NOTIFY watches.
                from imapd.commands.notify import look_during_idle

                await look_during_idle(session)
    finally:
        if call is not None and call.active():
            call.cancel()
        pending[0] = None
        changes.idle_done(session)
        if subscription is not None:
            subscription.cancel()
    line = arrived[0]
    if isinstance(line, Failure):
        line.raiseException()
    if line.strip().upper() != b"DONE":
        raise BadCommand("Expected DONE to end IDLE")
    return None, "IDLE terminated"
