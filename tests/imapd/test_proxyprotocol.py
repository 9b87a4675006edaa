"""
PROXY protocol v1/v2 on haproxy: listeners, from trusted networks only:
the session is built for the client's address in the header.
"""

import socket
import struct

import pytest
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport

from conf.endpoints import is_implicit_tls, proxy_protocol, twisted_description
from imapd.proxyprotocol import TrustedProxyFactory, parse_networks


class Recorder(Protocol):
    def connectionMade(self):
        self.factory.made.append(self)
        self.received = b""
        peer = self.transport.getPeer()
        self.peer = (peer.host, peer.port)
        self.transport.write(b"* OK hello\r\n")

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = True


class Recording(Factory):
    protocol = Recorder

    def __init__(self):
        self.made = []
        self.addrs = []

    def buildProtocol(self, addr):
        self.addrs.append((addr.host, addr.port))
        return super().buildProtocol(addr)


def connect(peer="127.0.0.1", networks=("127.0.0.0/8",)):
    clock = task.Clock()
    wrapped = Recording()
    factory = TrustedProxyFactory(wrapped, parse_networks(networks), 10, clock)
    addr = IPv4Address("TCP", peer, 40000)
    proto = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr,
                                hostAddress=IPv4Address("TCP", "127.0.0.3", 143))
    proto.makeConnection(transport)
    return proto, transport, wrapped, clock


def v2_header(src, dst, sport, dport):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body))
            + body)


def test_v1_header_names_the_client():
    """A trusted proxy's v1 header: the session sees the client, nothing before."""
    proto, transport, wrapped, _ = connect()
    assert wrapped.made == [] and transport.value() == b""
    proto.dataReceived(b"PROXY TCP4 192.0.2.7 127.0.0.3 5555 143\r\na1 NOOP\r\n")
    (session,) = wrapped.made
    assert wrapped.addrs == [("192.0.2.7", 5555)]
    assert session.peer == ("192.0.2.7", 5555)
    assert session.received == b"a1 NOOP\r\n"
    assert transport.value() == b"* OK hello\r\n"


def test_v2_header_in_pieces():
    """A v2 header split over several reads is assembled first."""
    proto, transport, wrapped, _ = connect()
    data = v2_header("198.51.100.9", "127.0.0.3", 6000, 143) + b"a1 NOOP\r\n"
    for i in range(len(data)):
        proto.dataReceived(data[i:i + 1])
    (session,) = wrapped.made
    assert session.peer == ("198.51.100.9", 6000)
    assert session.received == b"a1 NOOP\r\n"


def test_untrusted_peer_cannot_claim_an_address():
    """From outside the trusted networks, a PROXY line is just data."""
    proto, transport, wrapped, _ = connect(peer="203.0.113.5")
    (session,) = wrapped.made
    proto.dataReceived(b"PROXY TCP4 192.0.2.7 127.0.0.3 5555 143\r\n")
    assert session.peer == ("203.0.113.5", 40000)
    assert session.received.startswith(b"PROXY")


@pytest.mark.parametrize("data", [
    b"a1 LOGIN alice secret\r\n",
    b"PROXY TCP4 nonsense\r\n",
    b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x00",
])
def test_trusted_peer_without_a_valid_header_is_dropped(data):
    """A trusted peer must send a valid header first."""
    proto, transport, wrapped, _ = connect()
    proto.dataReceived(data)
    assert wrapped.made == []
    assert transport.disconnecting or transport.disconnected


def test_trusted_peer_that_sends_nothing_times_out():
    """No header within the timeout: the connection is aborted."""
    proto, transport, wrapped, clock = connect()
    clock.advance(10)
    assert transport.disconnected and wrapped.made == []


def test_unknown_keeps_the_proxy_address():
    """PROXY UNKNOWN (a proxy's own health check) keeps the real peer."""
    proto, transport, wrapped, clock = connect()
    proto.dataReceived(b"PROXY UNKNOWN\r\n")
    (session,) = wrapped.made
    assert session.peer == ("127.0.0.1", 40000)
    clock.advance(20)
    assert not transport.disconnected


def test_endpoint_prefix():
    """haproxy: is a prefix of any listener; Twisted gets the rest."""
    assert proxy_protocol("haproxy:tls:993") == (True, "tls:993")
    assert proxy_protocol("tcp:143") == (False, "tcp:143")
    assert is_implicit_tls("haproxy:tls:993")
    assert twisted_description("haproxy:tls:993:interface=10.0.0.1") == \
        "tcp:993:interface=10.0.0.1"


def test_networks_checked():
    """A bad network entry is refused with its text."""
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_networks(["10.0.0.0/33"])
    assert parse_networks(["10.0.0.1/8"])[0].with_prefixlen == "10.0.0.0/8"


def test_config_needs_trusted_networks(tmp_path):
    """A haproxy: listener without trusted networks stops start-up."""
    from conf import ConfigError, load_config

    with pytest.raises(ConfigError, match="haproxy_trusted_networks"):
        load_config(None, {"listen": ["haproxy:tcp:10143:interface=127.0.0.1"]})
    config = load_config(None, {"listen": ["haproxy:tcp:10143:interface=127.0.0.1"],
                                "haproxy_trusted_networks": ["127.0.0.1"]})
    assert config.server.haproxy_trusted_networks == ("127.0.0.1",)
