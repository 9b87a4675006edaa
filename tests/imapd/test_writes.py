"""
L{imapd.writes.write_now}: a short message goes to the socket at once when
nothing waits before it, else through the transport, in order.
"""

from __future__ import annotations

import socket

import pytest
from twisted.internet.testing import StringTransport

from imapd.writes import write_now


class _SocketTransport:
    """What write_now looks at on a Twisted socket transport, over a real socket."""

    def __init__(self, sock, queued: int = 0) -> None:
        self.socket = sock
        self.connected = True
        self.disconnecting = False
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = queued
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_write_now_sends_at_once_only_when_nothing_is_queued():
    """
    A reply goes straight to the socket when the transport holds nothing
    before it; behind queued data, or what the socket does not take, it
    goes through the transport's write, in order.
    """
    ours, peer = socket.socketpair()
    try:
        ours.setblocking(False)
        transport = _SocketTransport(ours)
        write_now(transport, b"250 2.0.0 Ok\r\n")
        assert peer.recv(100) == b"250 2.0.0 Ok\r\n" and transport.written == []
        queued = _SocketTransport(ours, queued=5)
        write_now(queued, b"250 next\r\n")
        assert queued.written == [b"250 next\r\n"]
        peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.recv(100)
        # A full socket buffer: the rest waits in the transport.
        big = b"x" * (8 << 20)
        write_now(transport, big)
        (rest,) = transport.written
        assert 0 < len(rest) < len(big) and big.endswith(rest)
        # Not a socket's transport (TLS, a test's StringTransport): write.
        plain = StringTransport()
        write_now(plain, b"221 Bye\r\n")
        assert plain.value() == b"221 Bye\r\n"
    finally:
        ours.close()
        peer.close()
