# -*- test-case-name: tests.imapd.test_response_stream -*-
"""
L{IMAPServerProtocol.run_streaming}: a worker thread hands a long response
to the reactor in parts (FETCH does, batch by batch).  With a real thread
pool and a reactor stand-in whose thread calls the test runs by hand:
parts arrive in order and all before the call's result, at most a window
of them waits for the reactor, and the worker stops once the connection
is closing.
"""

from __future__ import annotations

import queue
import threading
import time

import pytest
from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.python.threadpool import ThreadPool

from imapd import protocol
from imapd.fetch import compile_fetch
from imapd.parser.types import FetchAttr
from imapd.protocol import IMAPServerProtocol


class _Reactor(task.Clock):
    """A clock whose callFromThread queues calls for the test to run."""

    def __init__(self) -> None:
        super().__init__()
        self.thread_calls: queue.Queue = queue.Queue()

    def callFromThread(self, f, *args, **kwargs):
        self.thread_calls.put((f, args, kwargs))

    def run_until(self, d, timeout: float = 10.0) -> None:
        """Run queued thread calls on this thread until C{d} has fired."""
        deadline = time.monotonic() + timeout
        while not d.called:
            f, args, kwargs = self.thread_calls.get(timeout=max(0.0, deadline - time.monotonic()))
            f(*args, **kwargs)


@pytest.fixture
def pooled(server):
    reactor = _Reactor()
    pool = ThreadPool(1, 2, name="test-stream")
    pool.start()
    try:
        server.reactor = reactor
        server.storage_pool = pool
        proto = IMAPServerProtocol(server)
        transport = StringTransport()
        proto.makeConnection(transport)
        transport.clear()
        yield proto, transport, reactor
    finally:
        pool.stop()


def test_parts_in_order_then_result(pooled):
    proto, transport, reactor = pooled
    parts = [b"* %d part\r\n" % i for i in range(20)]
    seen_at_result = []

    def produce(emit):
        for p in parts:
            assert emit(p)
        return "done"

    d = proto.run_streaming(produce)
    d.addCallback(lambda r: seen_at_result.append((r, transport.value())))
    reactor.run_until(d)
    # Every part was written, in order, before the result arrived.
    assert seen_at_result == [("done", b"".join(parts))]


def test_window_bounds_waiting_parts(pooled):
    proto, transport, reactor = pooled
    window = protocol._STREAM_WINDOW
    produced = []

    def produce(emit):
        for i in range(window * 3):
            emit(b"%d\r\n" % i)
            produced.append(i)
        return len(produced)

    d = proto.run_streaming(produce)
    deadline = time.monotonic() + 10
    while reactor.thread_calls.qsize() < window and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    # The worker waits for the reactor: no more than the window queued.
    assert reactor.thread_calls.qsize() == window
    assert len(produced) <= window
    reactor.run_until(d)
    assert d.result == window * 3
    assert transport.value() == b"".join(b"%d\r\n" % i for i in range(window * 3))


def test_stops_when_connection_closes(pooled):
    proto, transport, reactor = pooled
    answers = []
    closed = threading.Event()

    def produce(emit):
        answers.append(emit(b"* first\r\n"))
        closed.wait(10)
        for _ in range(3):
            answers.append(emit(b"* later\r\n"))
        return None

    d = proto.run_streaming(produce)
    f, args, kwargs = reactor.thread_calls.get(timeout=10)
    f(*args, **kwargs)                      # the first part is written
    proto.connectionLost()
    closed.set()
    reactor.run_until(d)
    assert answers == [True, False, False, False]
    assert transport.value() == b"* first\r\n"


def test_inline_without_pool(server):
    """Unit tests run without a pool: parts are written at once."""
    proto = IMAPServerProtocol(server)
    transport = StringTransport()
    proto.makeConnection(transport)
    transport.clear()

    def produce(emit):
        assert emit(b"* one\r\n")
        assert transport.value() == b"* one\r\n"
        return 1

    d = proto.run_streaming(produce)
    assert d.result == 1


def test_long_literal_is_its_own_fragment():
    """
    A body longer than the inline limit is not copied into its line: the
    batch gets the line up to the literal's header, the data itself, and
    the rest; joined, it is the same response.
    """
    from imapd.fetch import render as r
    from imapd.parser.types import Section
    from storage.interfaces import MessageRecord
    from datetime import datetime, timezone

    class Msg:
        raw = b"x" * (r._INLINE_MAX + 1)

        def section(self, part, text, fields=()):
            return self.raw

    record = MessageRecord(uid=7, flags=frozenset(), internaldate=datetime.now(timezone.utc),
                           size=len(Msg.raw))
    renderer = compile_fetch((FetchAttr("BODY", Section(), None, True),), True)
    out: list = []
    renderer.render_into(out, 3, record, None, Msg())
    assert out[1] is Msg.raw
    assert b"".join(out) == b"* 3 FETCH (UID 7 BODY[] {%d}\r\n%s)\r\n" % (len(Msg.raw), Msg.raw)
    assert renderer(3, record, None, Msg()) == b"".join(out)


def test_byte_budget_splits_batches_without_changing_the_answer(authed, monkeypatch):
    """
    FETCH BODY[] cuts a batch short once its content passes the byte
    budget; the client sees the same responses, in order, either way.
    """
    from imapd.commands import fetch

    for i in range(7):
        authed.append("a%d" % i, b"Subject: m%d\r\n\r\n" % i + b"x" * (100 * i) + b"\r\n")
    authed.ok("s SELECT INBOX")
    authed.output()
    authed.send(b"f1 FETCH 2:6 (UID BODY.PEEK[])\r\n")
    whole = authed.output()
    writes = []
    real_send = authed.proto.send
    monkeypatch.setattr(authed.proto, "send", lambda data: (writes.append(data), real_send(data)))
    monkeypatch.setattr(fetch, "_BATCH", 3)
    monkeypatch.setattr(fetch, "_BATCH_BYTES", 150)
    authed.send(b"f1 FETCH 2:6 (UID BODY.PEEK[])\r\n")
    assert authed.output() == whole
    assert whole.count(b" FETCH (UID ") == 5
    # Messages 2 and 3 hold 114 and 214 octets: each batch ends early.
    assert len([w for w in writes if b" FETCH (" in w]) >= 3


def test_time_slices_resume_where_they_stopped(authed, monkeypatch):
    """
    A streaming FETCH job gives its pool thread back after a time slice
    and the next job goes on from where it stopped: same answer, several
    jobs.
    """
    from imapd.commands import fetch

    for i in range(5):
        authed.append("a%d" % i, b"Subject: m%d\r\n\r\nbody\r\n" % i)
    authed.ok("s SELECT INBOX")
    authed.output()
    authed.send(b"f1 FETCH 1:* (FLAGS BODY.PEEK[])\r\n")
    whole = authed.output()
    jobs = []
    real = authed.proto.run_streaming
    monkeypatch.setattr(authed.proto, "run_streaming",
                        lambda fn, *args: (jobs.append(args[2]), real(fn, *args))[1])
    monkeypatch.setattr(fetch, "_BATCH", 2)
    monkeypatch.setattr(fetch, "_SLICE", 0.0)
    authed.send(b"f1 FETCH 1:* (FLAGS BODY.PEEK[])\r\n")
    assert authed.output() == whole
    assert whole.count(b" FETCH (FLAGS ") == 5
    assert jobs == [0, 2, 4]
