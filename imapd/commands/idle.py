# -*- test-case-name: tests.imapd.commands.test_idle -*-
"""
IDLE (RFC 2177): report changes as they happen until the client says DONE.

Changes by others reach us only through the store (DESIGN.md), so the
session re-syncs every L{SessionLimits.idle_poll_interval} seconds while
idling; that bounds how late an MTA's delivery is seen.
"""

from __future__ import annotations

from twisted.internet import defer

from imapd.errors import BadCommand
from imapd.parser.types import Idle

__all__ = ["handle_idle"]


async def handle_idle(session, cmd: Idle):
    """
    RFC 2177 section 3.  Besides the poll, a change made by another
    session of this process to the selected mailbox wakes us at once
    (L{imapd.commands.notify.changes}).
    """
    from imapd.commands.notify import changes

    line_d = session.read_line(b"idling")
    interval = session.limits.idle_poll_interval
    try:
        while True:
            tick = defer.Deferred()
            call = session.clock.callLater(interval, tick.callback, None)

            def wake(tick=tick, call=call) -> None:
                if not tick.called:
                    if call.active():
                        call.cancel()
                    tick.callback(None)
            changes.idling(session, wake)
            result, index = await defer.DeferredList(
                [line_d, tick], fireOnOneCallback=True, fireOnOneErrback=True,
                consumeErrors=True
            )
            if index == 0:
                if call.active():
                    call.cancel()
                line = result
                break
            if session.selected is not None:
                await session.sync(allow_expunge=True)
            if session.notify is not None:
                # RFC 5465 section 4: the other mailboxes NOTIFY watches.
                from imapd.commands.notify import look_during_idle

                await look_during_idle(session)
    finally:
        changes.idle_done(session)
    if line.strip().upper() != b"DONE":
        raise BadCommand("Expected DONE to end IDLE")
    return None, "IDLE terminated"
