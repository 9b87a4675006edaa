# -*- test-case-name: tests.imapd.test_tcp_nodelay -*-
"""
Connections turn off Nagle's algorithm.  A command's untagged data and its
tagged OK often leave in two writes (the OK waits for the after-command
re-sync in the thread pool); with Nagle on, the second small segment waits
for the client's delayed ACK, about 40 ms on Linux, which dwarfed a warm
SEARCH (imapbench search_header: 75 ms with Nagle, 35 ms without).
"""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from imapd.protocol import IMAPServerProtocol


class _TCPTransport(StringTransport):
    nodelay = None

    def setTcpNoDelay(self, enabled):
        self.nodelay = enabled


def test_nodelay_set_on_connect(server):
    proto = IMAPServerProtocol(server)
    transport = _TCPTransport()
    proto.makeConnection(transport)
    assert transport.nodelay is True
    assert transport.value().startswith(b"* OK ")


def test_transport_without_nodelay(server):
    """A transport with no TCP (a UNIX socket, a test transport) is served as before."""
    proto = IMAPServerProtocol(server)
    transport = StringTransport()
    proto.makeConnection(transport)
    assert transport.value().startswith(b"* OK ")


class _UNIXTransport(StringTransport):
    def setTcpNoDelay(self, enabled):
        raise OSError(95, "Operation not supported")


def test_unix_socket_refusing_nodelay(server):
    """twisted's UNIX transport has setTcpNoDelay but the socket refuses it: still served."""
    proto = IMAPServerProtocol(server)
    transport = _UNIXTransport()
    proto.makeConnection(transport)
    assert transport.value().startswith(b"* OK ")
