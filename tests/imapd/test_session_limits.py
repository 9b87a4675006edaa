"""
What one client may make the server do (issue 18 items 2, 3, 8): the
command pump is a loop that yields to other connections, compressed input
is inflated only as commands are consumed, a command line and the time
before login are bounded, connections are counted per address and in
total, and a client that does not read stops getting commands run.  All
over the conversation harness (StringTransport and a fake clock).
"""

import zlib

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from imapd import protocol
from imapd.server import IMAPFactory, SessionLimits


def drain(conv, turns: int = 100_000) -> None:
    """Let the fake reactor run the turns the session scheduled."""
    for _ in range(turns):
        if not conv.clock.getDelayedCalls() or conv.proto._next_turn is None:
            return
        conv.clock.advance(0)
    raise AssertionError("the session never ran out of work")


def one_turn(conv) -> None:
    """Run the one reactor turn the session scheduled (not the ones it schedules then)."""
    call = conv.proto._next_turn
    assert call is not None and call.active()
    conv.clock.calls.remove(call)
    call.func(*call.args, **call.kw)


def tags_in_order(lines, count, prefix="n"):
    tagged = [l for l in lines if l.startswith(prefix)]
    assert tagged == [f"{prefix}{i} OK NOOP completed" for i in range(count)]


def noops(count, prefix="n") -> bytes:
    return b"".join(b"%s%d NOOP\r\n" % (prefix.encode(), i) for i in range(count))


@pytest.mark.parametrize("when", ["before login", "after login"])
def test_ten_thousand_pipelined(conv, when):
    """10,000 pipelined commands in one read are all answered, in order, in bounded turns."""
    if when == "after login":
        conv.login()
    conv.send(noops(10_000))
    # One read runs at most one turn's worth, then yields to the reactor.
    first = [l for l in conv.lines() if l.startswith("n")]
    assert len(first) <= protocol._TURN_COMMANDS
    drain(conv)
    tags_in_order(first + conv.lines(), 10_000)


def test_ten_thousand_pipelined_compressed(authed):
    """The same through COMPRESS=DEFLATE."""
    authed.ok("c1 COMPRESS DEFLATE")
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    authed.send(deflate.compress(noops(10_000)) + deflate.flush(zlib.Z_SYNC_FLUSH))
    drain(authed)
    plain = inflate.decompress(authed.output()).decode()
    tags_in_order([l for l in plain.split("\r\n") if l], 10_000)


def test_compression_bomb_is_inflated_as_consumed(authed):
    """
    A few hundred octets that inflate to 65,536 NOOPs (the daemon test
    in tests/security sends 262,144): one read inflates a bounded
    amount, runs a bounded number of commands and pauses the transport;
    the rest follows turn by turn, with the parser never holding more
    than a few chunks.
    """
    authed.ok("c1 COMPRESS DEFLATE")
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflate.compress(b"a NOOP\r\n" * 65_536) + deflate.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 1024
    authed.send(bomb)
    inflate = zlib.decompressobj(-15)
    first = inflate.decompress(authed.output()).count(b"a OK NOOP completed")
    assert 0 < first <= protocol._TURN_COMMANDS
    assert authed.transport.producerState == "paused"
    assert len(authed.proto._queue) <= 2 * 65536 // len(b"a NOOP\r\n") + protocol._MAX_QUEUED
    answered = first
    for _ in range(300):
        one_turn(authed)
        answered += inflate.decompress(authed.output()).count(b"a OK NOOP completed")
        assert len(authed.proto.parser._buf) <= 2 * 65536
    assert answered == first + 300 * protocol._TURN_COMMANDS
    drain(authed)
    answered += inflate.decompress(authed.output()).count(b"a OK NOOP completed")
    assert answered == 65_536
    assert authed.transport.producerState == "producing"


def test_client_that_does_not_read(authed):
    """While the transport's write buffer is full no pipelined command runs."""
    authed.proto.pauseProducing()
    authed.send(b"a1 NOOP\r\na2 NOOP\r\n")
    drain(authed)
    assert authed.lines() == []
    authed.proto.resumeProducing()
    drain(authed)
    assert authed.lines() == ["a1 OK NOOP completed", "a2 OK NOOP completed"]


def test_line_timeout(conv):
    """A line trickled one octet every 2 s is cut off line_timeout after its first octet."""
    timeout = conv.context.limits.line_timeout
    for octet in b"a1 NOOP"[:5]:
        conv.send(bytes([octet]))
        conv.clock.advance(2)
    conv.clock.advance(timeout - 10 - 0.5)
    assert conv.lines() == []
    conv.clock.advance(1)
    assert conv.lines() == ["* BYE Command line not completed in time"]
    assert conv.transport.disconnecting


def test_line_timeout_restarts_per_line(conv):
    """Complete lines are fine however slow the session; each new line gets its own time."""
    timeout = conv.context.limits.line_timeout
    for i in range(3):
        conv.send(b"a NO")
        conv.clock.advance(timeout - 1)
        conv.send(b"OP\r\n")
        assert conv.lines() == ["a OK NOOP completed"]
    assert not conv.transport.disconnecting


def test_login_deadline(conv):
    """Before login, a client that keeps busy is still closed login_timeout after it connected."""
    limits = conv.context.limits
    step = limits.idle_timeout_unauth / 2
    elapsed = 0.0
    while elapsed + step < limits.login_timeout:
        conv.ok("a NOOP")
        conv.clock.advance(step)
        elapsed += step
    conv.ok("a NOOP")
    conv.clock.advance(limits.login_timeout - elapsed - 0.5)
    assert conv.lines() == []
    conv.clock.advance(1)
    assert conv.lines() == ["* BYE Login timeout; authenticate sooner"]
    assert conv.transport.disconnecting


def test_no_login_deadline_after_login(conv):
    """Once logged in, only the idle timeout applies."""
    conv.login()
    for _ in range(10):
        conv.clock.advance(conv.context.limits.login_timeout / 2)
        conv.ok("a NOOP")
    assert not conv.transport.disconnecting


def _connect(factory, host, port=40000):
    addr = IPv4Address("TCP", host, port)
    proto = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def test_connection_limits(server):
    """Per address and in total; the one beyond gets BYE [UNAVAILABLE]; loopback is not counted per address."""
    from dataclasses import replace

    server.limits = replace(server.limits, max_connections=5, max_connections_per_ip=2)
    factory = IMAPFactory(server)
    a1 = _connect(factory, "192.0.2.1")
    a2 = _connect(factory, "192.0.2.1")
    proto, transport = _connect(factory, "192.0.2.1")
    assert transport.value() == b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
    assert transport.disconnecting
    # Another address, and loopback beyond the per-address limit.
    _connect(factory, "192.0.2.2")
    _connect(factory, "127.0.0.1")
    _connect(factory, "127.0.0.1")
    proto, transport = _connect(factory, "192.0.2.3")
    assert transport.value() == b"* BYE [UNAVAILABLE] Too many connections to this server\r\n"
    # A closed connection frees its place.
    a1[0].connectionLost(None)
    proto, transport = _connect(factory, "192.0.2.1")
    assert transport.value().startswith(b"* OK [CAPABILITY ")
    assert server.connections.by_host == {"192.0.2.1": 2, "192.0.2.2": 1, "127.0.0.1": 2}


def test_conversation_counts_released(server, new_conv):
    """Every connection the harness opens is released when it is lost."""
    conv = new_conv()
    assert server.connections.total == 1
    conv.proto.connectionLost(None)
    assert server.connections.total == 0
    assert server.connections.by_host == {}


def test_defaults_leave_room_and_bound():
    """The defaults: a deadline before login, a line deadline, and finite connection limits."""
    limits = SessionLimits()
    assert 0 < limits.line_timeout <= limits.login_timeout <= 300
    assert 10 <= limits.max_connections_per_ip <= 50 < limits.max_connections


def test_compressed_done_then_pipeline(selected):
    """IDLE's DONE followed by more than one inflated piece of commands: all answered, in order."""
    selected.ok("c1 COMPRESS DEFLATE")
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)

    def send(data):
        selected.send(deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH))

    send(b"i1 IDLE\r\n")
    assert inflate.decompress(selected.output()).startswith(b"+ ")
    send(b"DONE\r\n" + noops(5000))
    drain(selected)
    lines = [l for l in inflate.decompress(selected.output()).decode().split("\r\n") if l]
    assert lines[0] == "i1 OK IDLE terminated"
    tags_in_order(lines[1:], 5000)


def test_unexpected_errors_do_not_flood_the_log(conv, monkeypatch):
    """A client that triggers a server bug 1,000 times gets 1,000 NO [SERVERBUG] but the log a few tracebacks."""
    import dataclasses

    from twisted.logger import globalLogPublisher

    from imapd import commands

    async def broken(session, cmd):
        raise RuntimeError("a bug")

    spec = commands.COMMANDS["NOOP"]
    monkeypatch.setitem(commands.COMMANDS, "NOOP", dataclasses.replace(spec, handler=broken))
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        conv.send(noops(1000))
        drain(conv)
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = conv.lines()
    assert len(lines) == 1000 and all("NO [SERVERBUG]" in l for l in lines)
    assert sum(1 for e in events if "log_failure" in e) == protocol._MAX_TRACEBACKS
    assert len(events) == protocol._MAX_TRACEBACKS + 1
