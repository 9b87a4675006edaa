# -*- test-case-name: tests.imapd.test_proxyprotocol -*-
"""
The PROXY protocol (HAProxy's, v1 text and v2 binary) on listeners whose
description starts with C{haproxy:}, from C{haproxy_trusted_networks} only.

A proxy in front of us (nginx's C{proxy_protocol on}, HAProxy's
C{send-proxy}) opens each connection with a header naming the client's
address.  Without it, the log, the per-address connection limits and the
failed-login ledger would all see the proxy.  So on such a listener:

  - a connection from a trusted network must start with the header; the
    session is built only once it has arrived, for the client's address
    (the factory's admission checks, the log's C{remote=}, the ledger all
    use it);
  - a connection from anywhere else is served as it is, its own address
    counted, and a header it might send is just a bad command: nobody but
    a trusted proxy can claim another address.

Parsing is Twisted's (C{twisted.protocols.haproxy}); its public wrapper
connects the session before the header is read, which is why this one
waits.  A trusted peer that sends no valid header within
C{HEADER_TIMEOUT} seconds, or a broken one, is disconnected.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Optional

from twisted.logger import Logger
from twisted.protocols import policies
# Twisted exposes only proxyEndpoint(); its parsers and wrapper live in
# these modules (Twisted 22 and later).
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._info import ProxyInfo
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper

__all__ = ["TrustedProxyFactory", "parse_networks", "HEADER_TIMEOUT", "trusted_proxies",
           "proxy_protocol_factory"]

log = Logger(namespace="imapd.proxyprotocol")

#: Seconds a trusted peer has to send its PROXY header.
HEADER_TIMEOUT = 10.0
#: The shortest v1 header ("PROXY UNKNOWN\r\n") and the fixed v2 part.
_V1_MIN, _V2_MIN = 15, 16


def parse_networks(values: Iterable[str]) -> tuple:
    """
    C{["10.0.0.0/8", "127.0.0.1"]} as L{ipaddress} networks.

    @raises ValueError: naming the bad entry.
    """
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not a network (write 10.0.0.0/8 or an "
                             f"address)") from None
    return tuple(networks)


def _trusted(host: Optional[str], networks) -> bool:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return any(address in net for net in networks)


class _ProxiedConnection(HAProxyProtocolWrapper):
    """
    A trusted peer's connection: read the header, then build the session
    for the address it names and hand it the rest of the bytes.
    """

    def __init__(self, factory: "TrustedProxyFactory") -> None:
        super().__init__(factory, None)
        self._buffer = b""
        self._timer = None

    def makeConnection(self, transport) -> None:
        # ProtocolWrapper.makeConnection without connecting the (not yet
        # built) session.
        from twisted.internet.protocol import Protocol
        from zope.interface import directlyProvides, providedBy

        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self._timer = self.factory.clock.callLater(self.factory.header_timeout, self._late)

    def _late(self) -> None:
        self._timer = None
        log.info("No PROXY header from {peer} in {n:g}s", peer=self.transport.getPeer(),
                 n=self.factory.header_timeout)
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.wrappedProtocol is not None:
            return self.wrappedProtocol.dataReceived(data)
        try:
            if self._parser is None:
                self._buffer += data
                data, self._buffer = self._buffer, b""
                if data.startswith(V2Parser.PREFIX[:len(data)]) and len(data) < _V2_MIN:
                    self._buffer = data
                    return None
                if len(data) >= _V2_MIN and data[:12] == V2Parser.PREFIX \
                        and data[12] & 0xF0 == 0x20:
                    self._parser = V2Parser()
                elif data.startswith(V1Parser.PROXYSTR[:len(data)]) and len(data) < _V1_MIN:
                    self._buffer = data
                    return None
                elif data.startswith(V1Parser.PROXYSTR):
                    self._parser = V1Parser()
                else:
                    raise InvalidProxyHeader()
            if isinstance(self._parser, V1Parser):
                info, remaining = self._feed_v1(data)
            else:
                info, remaining = self._parser.feed(data)
        except InvalidProxyHeader:
            log.info("Bad PROXY header from {peer}", peer=self.transport.getPeer())
            self.transport.abortConnection()
            return None
        if info is None:
            return None
        self._proxyInfo = info
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # The session is built for the client's address (admission
        # checks, the log), then connected to us as its transport, whose
        # getPeer/getHost answer the header's addresses.
        self.wrappedProtocol = self.factory.wrappedFactory.buildProtocol(self.getPeer())
        if self.wrappedProtocol is None:
            self.transport.loseConnection()
            return None
        self.wrappedProtocol.makeConnection(self)
        if remaining:
            self.wrappedProtocol.dataReceived(remaining)
        return None

    def _feed_v1(self, data: bytes):
        """
        A v1 line, whole: C{PROXY UNKNOWN} (a proxy's own connection, the
        real peer stays) is read here, since Twisted's parser refuses it
        without address fields; other lines go to Twisted's parser.
        """
        self._buffer += data
        if b"\r\n" not in self._buffer:
            if len(self._buffer) > 107:  # the protocol's longest v1 line
                raise InvalidProxyHeader()
            return None, None
        line, remaining = self._buffer.split(b"\r\n", 1)
        self._buffer = b""
        if line.split(b" ")[1:2] == [b"UNKNOWN"]:
            return ProxyInfo(line, None, None), remaining
        return self._parser.feed(line + b"\r\n" + remaining)

    def connectionLost(self, reason) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.factory.unregisterProtocol(self)
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.connectionLost(reason)
            self.wrappedProtocol = None


class TrustedProxyFactory(policies.WrappingFactory):
    """
    Wraps a listener's factory: PROXY header from trusted networks,
    nothing from others (see the module docstring).
    """

    def __init__(self, wrappedFactory, networks, header_timeout: float = HEADER_TIMEOUT,
                 clock=None) -> None:
        super().__init__(wrappedFactory)
        if clock is None:
            from twisted.internet import reactor as clock
        self.networks = tuple(networks)
        self.header_timeout = header_timeout
        self.clock = clock

    def buildProtocol(self, addr):
        if _trusted(getattr(addr, "host", None), self.networks):
            return _ProxiedConnection(self)
        return self.wrappedFactory.buildProtocol(addr)

    def logPrefix(self) -> str:
        return "PROXY"


def trusted_proxies(config) -> tuple:
    """The networks of C{haproxy_trusted_networks}, parsed."""
    return parse_networks(config.server.haproxy_trusted_networks)


def proxy_protocol_factory(config, description: str, factory):
    """A C{haproxy:} listener's factory reads PROXY headers; others stay."""
    from conf.endpoints import proxy_protocol

    if not proxy_protocol(description)[0]:
        return factory
    return TrustedProxyFactory(factory, trusted_proxies(config))
