# -*- test-case-name: tests.imapd.cluster.test_relay -*-
"""
Proxy-when-not-ours: a node that accepts the login of a user owned by
another node relays the session to that node itself, so that a plain TCP
balancer (HAProxy, LVS) or DNS round robin in front of equal nodes needs
no lookup tier (Dovecot's C{director_proxy_maybe} idea).

After the password was checked here (the portal's checker runs before its
realm), L{RelayingRealm} asks the owner; when it is another node it raises
L{NotOurs}, and the LOGIN/AUTHENTICATE handler calls L{relay_login}: it
connects to the owner's IMAP port, sends C{ID} with the client's address
(C{x-originating-ip}, C{x-originating-port}, which the owner believes
from C{haproxy_trusted_networks}) and a hop count C{x-proxy-ttl}, after
STARTTLS when C{[cluster] relay_tls} says so, logs in with the client's
credentials (LOGIN as LOGIN, SASL as C{AUTHENTICATE PLAIN}), answers the client with the owner's tagged
OK, and from then on passes bytes both ways (L{IMAPServerProtocol.start_relay}).

Loops (two nodes that briefly disagree about a table) end: each hop
lowers C{x-proxy-ttl} and a login arriving with 0 is served where it
lands, as is a login whose connection comes from a host of the table
(for nodes that do not trust each other's ID fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from twisted.cred.portal import IRealm
from twisted.internet import defer, threads
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["NotOurs", "RelayingRealm", "RelayOptions", "relay_options", "relay_login",
           "login_command", "relay_target", "DEFAULT_TTL"]

log = Logger(namespace="imapd.cluster.relay")

#: Hops a relayed login may still make (Dovecot's proxy TTL is 5 too).
DEFAULT_TTL = 5
#: Seconds for the owner to greet and answer ID and LOGIN.
LOGIN_TIMEOUT = 30.0


@dataclass(frozen=True)
class RelayOptions:
    """
    How this node relays (L{imapd.server.ServerContext.relay}).

    @ivar tls: address -> C{IOpenSSLClientConnectionCreator} for STARTTLS
        to the owner (C{[cluster] relay_tls}), or None: plain TCP.
    """

    tls: Optional[Callable] = None


def relay_options(section) -> Optional[RelayOptions]:
    """
    The C{[cluster]} section's relay settings, or None when this node does
    not relay.  The CA certificates are read now, before a login process
    gives up its privileges.
    """
    if not section.relay:
        return None
    if not section.relay_tls:
        return RelayOptions()
    from twisted.internet.ssl import optionsForClientTLS

    trust = None
    if section.relay_tls_ca:
        from twisted.internet.ssl import Certificate, trustRootFromCertificates

        with open(section.relay_tls_ca, "rb") as f:
            pem = f.read()
        end = b"-----END CERTIFICATE-----"
        blocks = [b + end for b in pem.split(end) if b"-----BEGIN" in b]
        trust = trustRootFromCertificates([Certificate.loadPEM(b) for b in blocks])

    def creator(address: str):
        # The certificate must name the owner's address (the host table
        # holds addresses, never names): an IP subjectAltName.
        return optionsForClientTLS(address, trustRoot=trust)
    return RelayOptions(tls=creator)


class NotOurs(Exception):
    """The user is owned by C{host} (an L{imapd.cluster.table.HostEntry})."""

    def __init__(self, host) -> None:
        super().__init__(host.address)
        self.host = host


def _peer_host(session) -> Optional[str]:
    transport = getattr(session, "transport", None)
    if transport is None:
        return None
    # The TCP peer, not a PROXY header's client (a relay connects directly).
    inner = getattr(transport, "transport", None) or transport
    return getattr(inner.getPeer(), "host", None)


@implementer(IRealm)
class RelayingRealm:
    """
    Wraps the realm: users owned by another node raise L{NotOurs} instead
    of opening their store here.

    @param me: this node's address in the host table.
    """

    def __init__(self, realm, directory, me: str, runner=None) -> None:
        self.realm = realm
        self.directory = directory
        self.me = me
        self.runner = threads.deferToThread if runner is None else runner

    def requestAvatar(self, avatarId, mind, *interfaces):
        # The checker's avatar id is the user's record (imapd.auth), or a name.
        user = getattr(avatarId, "name", avatarId)
        user = user.decode("utf-8") if isinstance(user, bytes) else user
        d = defer.maybeDeferred(self.runner, self._owner_elsewhere, user, mind)

        def decide(host):
            if host is not None:
                raise NotOurs(host)
            return self.realm.requestAvatar(avatarId, mind, *interfaces)
        return d.addCallback(decide)

    def _owner_elsewhere(self, user: str, session):
        """Blocking: the owner when it is another node and a relay may go."""
        if session is None:
            return None
        return relay_target(self.directory, self.me, user,
                            getattr(session, "proxy_ttl", None), _peer_host(session))


def relay_target(directory, me: str, user: str, ttl: Optional[int], peer: Optional[str],
                 record: bool = True):
    """
    Blocking: the host to relay C{user}'s login to, or None to serve it
    here: here is the owner, no host is up, the login has no hops left
    (C{ttl} 0, from ID C{x-proxy-ttl}), or it comes straight from a node
    of the table (C{peer}, the TCP peer: a relay of a node that does not
    send, or is not believed in, its ID fields).

    @param record: remember the placement (L{Directory.owner}); a process
        that writes no placements asks without.
    """
    if ttl == 0:
        return None
    table = directory.hosts.table()
    if table.get(peer or "") is not None:
        return None  # a relayed login from a node of the table: serve it
    host = directory.owner(user, record=record)
    if host is None or host.address == me:
        return None
    return host


def _astring(value: bytes) -> bytes:
    """A quoted string when it can be one, else a LITERAL+ literal."""
    if all(0x20 <= b < 0x7F for b in value):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d+}\r\n" % len(value) + value


def login_command(user: bytes, password: bytes, authzid: Optional[bytes] = None) -> bytes:
    """
    The owner-side login, without its tag: C{LOGIN} for a client that
    said LOGIN (C{authzid} None), else C{AUTHENTICATE PLAIN} with the
    client's identities as an initial response (RFC 4616, RFC 4959).
    """
    import base64

    if authzid is None:
        return b"LOGIN " + _astring(user) + b" " + _astring(password)
    return b"AUTHENTICATE PLAIN " + base64.b64encode(authzid + b"\0" + user + b"\0" + password)


class _Backend(Protocol):
    """
    The connection to the owner: greeting, STARTTLS when configured, ID,
    the login, then a pipe to the client's session.  C{done} fires with
    the tagged line of the login, or fails.

    @param login: the login command without its tag.
    @param tls: an C{IOpenSSLClientConnectionCreator} for STARTTLS, or
        None for a plain connection.
    """

    def __init__(self, user: bytes, login: bytes, fields: list[tuple[str, str]],
                 tls=None) -> None:
        self.user = user
        self.login = login
        self.fields = fields
        self.tls = tls
        self.state = "greeting"
        self.buffer = b""
        self.session = None
        self.done: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.state == "relay":
            self.session.relay_received(data)
            return
        self.buffer += data
        while self.state not in ("relay", "ready", "failed") and b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            self._line(line)

    def _send_id(self) -> None:
        pairs = b" ".join(_astring(k.encode()) + b" " + _astring(v.encode())
                          for k, v in self.fields)
        self.transport.write(b"r1 ID (" + pairs + b")\r\n")
        self.state = "id"

    def _line(self, line: bytes) -> None:
        if self.state == "greeting":
            if not line.startswith(b"* OK"):
                return self._fail(f"the owner greeted {line[:80]!r}")
            if self.tls is None:
                self._send_id()
            else:
                # RFC 3501 section 6.2.1; the greeting's capabilities are
                # not needed: the owner runs this server.
                self.transport.write(b"r0 STARTTLS\r\n")
                self.state = "starttls"
        elif self.state == "starttls" and line.startswith(b"r0 "):
            if not line.startswith(b"r0 OK"):
                return self._fail(f"the owner refused STARTTLS: {line[3:120]!r}")
            # Nothing may follow the OK in clear text; the handshake checks
            # the owner's certificate against its address.
            self.buffer = b""
            self.transport.startTLS(self.tls)
            self._send_id()
        elif self.state == "id" and line.startswith(b"r1 "):
            self.transport.write(b"r2 " + self.login + b"\r\n")
            self.state = "login"
        elif self.state == "login" and line.startswith(b"r2 "):
            if line.startswith(b"r2 OK"):
                self.state = "ready"
                self.done.callback(line)
            else:
                self._fail(f"the owner refused the login: {line[3:120]!r}")
        return None

    def _fail(self, why: str) -> None:
        self.state = "failed"
        if not self.done.called:
            self.done.errback(ConnectionError(why))
        self.transport.loseConnection()

    def start(self, session) -> None:
        """Pass everything from now on to C{session}."""
        self.session = session
        self.state = "relay"
        if self.buffer:
            data, self.buffer = self.buffer, b""
            session.relay_received(data)

    def connectionLost(self, reason=None) -> None:
        if not self.done.called:
            why = "the owner closed the connection"
            if reason is not None and _certificate_failure(reason):
                # The handshake of relay_tls failed (before the password
                # went out): the log must say so, not that the owner left.
                why = ("the owner's TLS certificate does not check against relay_tls_ca "
                       f"and its address: {reason.getErrorMessage()}")
            elif reason is not None and not reason.check(ConnectionDone):
                why = f"{why}: {reason.getErrorMessage()}"
            self.done.errback(ConnectionError(why))
        elif self.session is not None:
            self.session.relay_lost()


def _certificate_failure(reason) -> bool:
    """Whether C{reason} (a lost connection) is a TLS handshake that failed to verify."""
    from OpenSSL import SSL
    from service_identity import VerificationError

    return bool(reason.check(SSL.Error, VerificationError))


def _tagged_parts(line: bytes) -> tuple[Optional[str], str]:
    """C{r2 OK [CODE ...] text} -> (code, text)."""
    rest = line[5:].lstrip().decode("utf-8", "replace")
    if rest.startswith("[") and "]" in rest:
        code, _, text = rest[1:].partition("]")
        return code, text.strip() or "Logged in"
    return None, rest or "Logged in"


async def relay_login(session, host, user: bytes, password: bytes,
                      authzid: Optional[bytes] = None):
    """
    Log C{user} in at C{host} for C{session} and arrange the relay.

    @param authzid: None for a client that said LOGIN (relayed as LOGIN);
        for a SASL client, its authorization identity (maybe empty): the
        login is relayed as C{AUTHENTICATE PLAIN} with an initial response
        (RFC 4616, RFC 4959), so that the owner sees the identities the
        client gave, whatever bytes they hold.
    @return: (code, text) of the owner's tagged OK, for the client; the
        session starts relaying once it has written it.
    @raises CommandFailed: the owner cannot be reached or refused.
    """
    from twisted.internet.endpoints import (TCP4ClientEndpoint, TCP6ClientEndpoint,
                                            connectProtocol)

    from imapd.errors import CommandFailed

    reactor = session.context.reactor
    peer = session.transport.getPeer()
    ttl = session.proxy_ttl if session.proxy_ttl is not None else DEFAULT_TTL
    fields = [("name", "imapd relay"),
              ("x-originating-ip", session.client_address or str(getattr(peer, "host", ""))),
              ("x-originating-port", str(getattr(peer, "port", ""))),
              ("x-proxy-ttl", str(max(0, ttl - 1)))]
    login = login_command(user, password, authzid)
    options = session.context.relay
    tls = None
    if options is not None and options.tls is not None:
        tls = options.tls(host.address)
    backend = _Backend(user, login, fields, tls)
    kind = TCP6ClientEndpoint if ":" in host.address else TCP4ClientEndpoint
    endpoint = kind(reactor, host.address, host.port, timeout=LOGIN_TIMEOUT)
    connecting = connectProtocol(endpoint, backend)

    def expire():
        if backend.done.called:
            return
        if backend.transport is None:
            connecting.cancel()
        else:
            backend._fail("the owner did not answer in time")
    timer = reactor.callLater(LOGIN_TIMEOUT, expire)
    try:
        await connecting
        line = await backend.done
    except Exception as e:  # connection refused, timeout, refusal: all the same to the client
        log.warn("Cannot relay {user!r} to {host}: {e}", user=user.decode("utf-8", "replace"),
                 host=host.address, e=e)
        if backend.transport is not None:
            backend.transport.loseConnection()
        raise CommandFailed("The server holding your mailbox is not available; try again "
                            "later", "UNAVAILABLE") from None
    finally:
        if timer.active():
            timer.cancel()
    session.relay_pending = backend
    session.log_event("relayed", user.decode("utf-8", "replace"), to=host.address)
    return _tagged_parts(line)
