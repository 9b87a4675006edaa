"""
IDLE (RFC 2177) over time: what an idling session holds does not grow
with the polls it makes, and a session that goes away while idling
leaves no timer behind.
"""

from __future__ import annotations

import gc

from twisted.internet import defer
from twisted.internet.error import ConnectionDone


def _live_deferreds() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, defer.Deferred))


def test_idle_holds_no_more_objects_after_many_polls(selected):
    """
    Each poll's wait is dropped when it ends: 300 polls (ten minutes at
    the default interval) leave as many Deferreds alive as 3 do.  A
    DeferredList per poll left its callbacks on the line's Deferred until
    DONE: some 700 bytes per poll and session.
    """
    selected.send(b"i1 IDLE\r\n")
    assert selected.lines() == ["+ idling"]
    interval = selected.context.limits.idle_poll_interval
    for _ in range(3):
        selected.clock.advance(interval)
    before = _live_deferreds()
    for _ in range(300):
        selected.clock.advance(interval)
    assert _live_deferreds() - before < 5
    assert selected.lines() == []
    selected.send(b"DONE\r\n")
    assert selected.lines() == ["i1 OK IDLE terminated"]


def test_connection_lost_while_idling_leaves_no_timer(selected):
    selected.send(b"i1 IDLE\r\n")
    assert selected.lines() == ["+ idling"]
    selected.clock.advance(selected.context.limits.idle_poll_interval)
    selected.proto.connectionLost(ConnectionDone())
    assert [c for c in selected.clock.getDelayedCalls() if c.active()] == []
