# -*- test-case-name: tests.imapd.commands.test_long_responses -*-
"""
Issue 18: a long response made on the reactor thread (SEARCH, LIST) goes
out in parts with the transport's flow control
(L{imapd.protocol.IMAPServerProtocol.send_parts}): while the transport
says the client is not reading, no more than one part is written, so a
client that asks and never reads cannot grow the daemon's memory by the
whole response.  On both stores.
"""

from __future__ import annotations

import pytest

import imapd.commands.search
import imapd.protocol


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of 32 octets (of 4 numbers of a SEARCH), so that a short response has many."""
    monkeypatch.setattr(imapd.protocol, "_SEND_PART", 32, raising=False)
    monkeypatch.setattr(imapd.commands.search, "_PIECE", 4, raising=False)


def _paused_then_resumed(conv, command: bytes) -> tuple[bytes, bytes]:
    """
    What C{command} writes before the transport says its buffer is full
    (as a real one does past its high-water mark: here 16 unread octets)
    and the client stops reading, and what follows once it reads again.
    """
    write = conv.transport.write

    def full_after(data: bytes) -> None:
        write(data)
        if len(conv.transport.value()) > 16:
            conv.proto.pauseProducing()

    conv.transport.write = full_after
    conv.send(command)
    while_paused = conv.output()
    conv.transport.write = write
    conv.proto.resumeProducing()
    return while_paused, conv.output()


def test_search_waits_for_the_client(authed, small_parts):
    """
    A SEARCH whose result takes many parts writes one while the client
    does not read, the rest (and its tagged OK) once it reads again; the
    whole is the usual one-line response.
    """
    for i in range(40):
        authed.append(f"a{i}", b"Subject: %d\r\n\r\nbody\r\n" % i)
    authed.ok("s1 SELECT INBOX")
    paused, rest = _paused_then_resumed(authed, b"t1 SEARCH ALL\r\n")
    assert b"t1 OK" not in paused
    assert 0 < len(paused) <= 32 + 64, paused
    whole = paused + rest
    numbers = " ".join(str(n) for n in range(1, 41)).encode()
    assert whole == b"* SEARCH " + numbers + b"\r\nt1 OK SEARCH completed\r\n"


def test_list_waits_for_the_client(authed, small_parts):
    """The same for a LIST of many names."""
    for i in range(20):
        authed.ok(f"c{i} CREATE box{i:02d}")
    paused, rest = _paused_then_resumed(authed, b'l1 LIST "" "box*"\r\n')
    assert b"l1 OK" not in paused
    assert 0 < len(paused) <= 32 + 64, paused
    lines = (paused + rest).split(b"\r\n")
    assert [line.rsplit(b" ", 1)[-1] for line in lines[:20]] == [
        b"box%02d" % i for i in range(20)]
    assert lines[20].startswith(b"l1 OK")


def test_closing_ends_a_waiting_response(authed, small_parts):
    """A client that disconnects while a response waits for it ends the command."""
    for i in range(10):
        authed.append(f"a{i}", b"Subject: %d\r\n\r\nbody\r\n" % i)
    authed.ok("s1 SELECT INBOX")
    write = authed.transport.write

    def full(data: bytes) -> None:
        write(data)
        authed.proto.pauseProducing()

    authed.transport.write = full
    authed.send(b"t1 SEARCH ALL\r\n")
    assert b"t1 OK" not in authed.output()
    authed.proto.connectionLost(None)
    assert not authed.proto._busy
