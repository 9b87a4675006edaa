# -*- test-case-name: tests.process.test_processes -*-
"""
C{imapd: login}: the not-authenticated state, then a handoff.

A login process adopts the master's listening sockets and runs the
existing L{IMAPServerProtocol} up to a successful LOGIN or AUTHENTICATE
(greeting, CAPABILITY, ID, STARTTLS, implicit TLS, every limit, delay and
throttle).  Passwords are checked by the auth process, through the master
(L{LoginRole.authenticate}); the master also keeps the connection counts
and the failed logins per address for all login processes, so the limits
hold for the server as a whole.  On success the session goes to the
user's mail worker (L{LoginRole.hand_off}), with a L{SessionState}:

  - plain text: the client socket itself travels (SCM_RIGHTS); this
    process closes its copy without shutting the connection down;
  - TLS: TLS stays here.  A socketpair's other end goes to the worker as
    "the client", and this process relays plain text both ways, each side
    pausing the other when its buffer is full (Dovecot's login proxy).

With C{[cluster] relay}, a user the auth process says another node owns
is not handed off: this process logs in at the owner and relays the
session there (L{imapd.cluster.relay}, issue 15's proxy-when-not-ours),
for plain and TLS clients alike, and what the client pipelined after its
LOGIN, still unparsed here, goes to the owner after it.

The process never opens mail.  When the master starts as root it runs as
C{[service] login_user} (optionally chrooted into C{login_chroot}).
"""

from __future__ import annotations

import os
import socket

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from imapd.auth.checker import LoginRefused
from imapd.errors import CommandFailed, ConnectionClosing
from imapd.process.channel import Requests
from imapd.process.wire import SessionState, b64, record_from_json
from imapd.protocol import IMAPServerProtocol

__all__ = ["LoginRole", "LoginProtocol"]

log = Logger(namespace="imapd.login")

class _NoCounting:
    """Connections and failed logins are counted by the master."""

    def admit(self, host, limits, now):
        return None

    def release(self, host):
        pass

    def blocked(self, *args):
        return False

    def failed(self, *args):
        pass


def _address(addr) -> tuple:
    host = getattr(addr, "host", None)
    if host is None:
        name = getattr(addr, "name", None)
        return (os.fsdecode(name) if name else "unix", 0)
    return (str(host), int(getattr(addr, "port", 0)))


class LoginProtocol(IMAPServerProtocol):
    """L{IMAPServerProtocol} before login, in a login process."""

    def __init__(self, context, implicit_tls: bool, role: "LoginRole") -> None:
        super().__init__(context, implicit_tls=implicit_tls)
        # Unique across the login processes: the pid makes it so.
        self.session_id += f".{os.getpid()}"
        self.role = role
        self.handing_off = False
        self.handed_off = False
        self.relay = None
        self.slot = None
        self.gone = False
        self.auth_token = None

    # -- admission by the master ------------------------------------------

    def connectionMade(self) -> None:
        self.role.sessions.add(self)
        host = getattr(self.transport.getPeer(), "host", None)
        self.transport.pauseProducing()
        d = self.role.request({"op": "admit", "host": host})
        d.addCallbacks(self._admitted, self._not_admitted)

    def _admitted(self, reply) -> None:
        if reply.get("refused"):
            if not self.gone:
                self.transport.write(f"* BYE [UNAVAILABLE] {reply['refused']}\r\n".encode())
                self.transport.loseConnection()
            return
        self.slot = reply.get("slot")
        if self.gone:
            self._release_slot()
            return
        self.transport.resumeProducing()
        super().connectionMade()

    def _not_admitted(self, failure) -> None:
        if not self.gone:
            self.transport.write(b"* BYE [UNAVAILABLE] Server restarting\r\n")
            self.transport.loseConnection()

    def _release_slot(self) -> None:
        slot, self.slot = self.slot, None
        if slot is not None:
            self.role.send({"op": "release", "slot": slot})

    def connectionLost(self, reason=None) -> None:
        self.gone = True
        if self.relay is not None:
            self.relay.close()
        if not self.handed_off:
            self._release_slot()
        super().connectionLost(reason)
        self.role.session_ended(self)

    # -- one command at a time before login ---------------------------------

    def handed_away(self) -> bool:
        # The worker logs the session's end (the relay carries its bytes).
        return self.handed_off

    def dataReceived(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.forward(data)
            return
        if self._relay is not None:
            # Relayed to the owning node (imapd.cluster.relay).
            self.bytes_in += len(data)
            self._relay.transport.write(data)
            return
        if self._closing:
            return
        self.bytes_in += len(data)
        self._reset_timeout()
        self._unfed += data
        self._pump()

    def _pump(self) -> None:
        if self.handing_off or self.relay is not None or self._relay is not None:
            return
        super()._pump()

    def _holding_input(self) -> bool:
        # Always: what follows a successful LOGIN goes to the mail worker
        # (or the owning node) unparsed, for pipelining.
        return True

    # -- the handoff -----------------------------------------------------------

    def session_state(self, tag: str, record) -> SessionState:
        return SessionState(
            tag=tag, record=record,
            peer=self._client_peer(), local=_address(self.transport.getHost()),
            tls=self.tls_active, enabled=tuple(sorted(self.enabled)),
            client_id=tuple(getattr(self, "client_id", ())),
            pending=bytes(self._unfed), session_id=self.session_id, slot=self.slot,
            bytes_in=self.bytes_in - len(self._unfed), bytes_out=self.bytes_out)

    def _client_peer(self) -> tuple:
        """The client's address: a trusted proxy's ID fields, else the peer."""
        if self.client_address is None:
            return _address(self.transport.getPeer())
        port = self.peer.rpartition(":")[2]
        return (self.client_address, int(port) if port.isdigit() else 0)

    def _flushed(self) -> bool:
        t = self.transport
        return not (len(getattr(t, "dataBuffer", b"")) - getattr(t, "offset", 0)
                    + getattr(t, "_tempDataLen", 0))

    def detach(self) -> None:
        """The worker has the client socket: close our copy, quietly."""
        self.handed_off = True
        self._closing = True
        self.slot = None
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()
        # No shutdown(2): it would end the connection for the worker too
        # (on the socket's own transport, under a PROXY header reader).
        _socket_transport(self.transport)._shouldShutdown = False
        self.transport.loseConnection()

    def start_worker_relay(self, sock: socket.socket) -> None:
        """Relay between the TLS client and the worker's end of C{sock}."""
        self.handed_off = True
        self.slot = None
        for name in ("_timeout_call", "_login_call", "_line_call", "_next_turn"):
            self._cancel(name)
        self._closing = True
        relay = Relay(self)
        sock.setblocking(False)
        try:
            self.clock.adoptStreamConnection(sock.fileno(), socket.AF_UNIX,
                                             Factory.forProtocol(lambda: relay))
        finally:
            sock.close()
        self.relay = relay
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()
        # Each side stops reading while the other does not take its writes.
        self.transport.registerProducer(relay.transport, True)
        relay.transport.registerProducer(self.transport, True)
        self.handing_off = False
        self.transport.resumeProducing()


class Relay(Protocol):
    """The login process's end of a TLS session's socketpair."""

    def __init__(self, session: LoginProtocol) -> None:
        self.session = session
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        session = self.session
        if not session.gone:
            session.bytes_out += len(data)
            session.transport.write(data)

    def forward(self, data: bytes) -> None:
        self.session.bytes_in += len(data)
        if not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.loseConnection()

    def connectionLost(self, reason=None) -> None:
        self.closed = True
        session = self.session
        if not session.gone:
            session.transport.loseConnection()


class LoginFactory(Factory):
    noisy = False

    def __init__(self, role: "LoginRole", implicit_tls: bool) -> None:
        self.role = role
        self.implicit_tls = implicit_tls

    def buildProtocol(self, addr):
        proto = LoginProtocol(self.role.context, self.implicit_tls, self.role)
        proto.factory = self
        return proto


def drop_privileges(user: str, chroot: str = "") -> None:
    """Become C{user} for good (and chroot first, if asked)."""
    import pwd

    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise SystemExit(f"imapd: option 'service.login_user': no user {user!r}") from None
    if chroot:
        os.chroot(chroot)
        os.chdir("/")
    os.setgroups([])
    os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
    os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)


class LoginRole:
    """
    The login process: its listeners, its sessions, and the requests to
    the master (admission, authentication, handoff).

    @ivar context: the L{ServerContext} of its sessions; its C{handoff}
        is this object.
    """

    def __init__(self, config, effective, args: dict, listener_fds: list[int]) -> None:
        self.config = config
        self.effective = effective
        self.args = args
        self.listener_fds = listener_fds
        self.sessions: set = set()
        self.retiring = False
        self.ports: list = []
        #: authentications waiting for the master's reply
        self.requests = Requests()

    def prepare(self) -> None:
        """Read the certificates, then become C{login_user} if root."""
        from conf.endpoints import is_implicit_tls, uses_tls_section
        from imapd.listeners import ssl_context
        from imapd.tls import certificate_options

        tls = None
        if self.effective.cert is not None:
            tls = certificate_options(self.effective.cert, self.effective.key,
                                      self.config.tls.min_version)
        self.tls = tls
        from imapd.cluster.relay import relay_options

        self.relay = relay_options(self.config.cluster)
        self.listeners = []
        for spec, fd in zip(self.args["listeners"], self.listener_fds):
            description = spec["description"]
            wrap = None
            if uses_tls_section(description):
                wrap = tls
            elif is_implicit_tls(description):
                wrap = ssl_context(description)
            self.listeners.append((description, spec["family"], fd, wrap,
                                   is_implicit_tls(description)))
        if self.args.get("drop"):
            service = self.config.service
            if service.login_chroot:
                # Twisted's listening ports keep /dev/null open to survive
                # running out of descriptors; a chroot has no /dev/null.
                from twisted.internet import tcp

                reserved = getattr(tcp, "_reservedFD", None)
                if reserved is not None:
                    reserved.reserve()
            drop_privileges(service.login_user, service.login_chroot)

    def start(self, reactor, control) -> None:
        import dataclasses

        from twisted.protocols.tls import TLSMemoryBIOFactory

        from imapd.proxyprotocol import proxy_protocol_factory, trusted_proxies
        from imapd.process.sysutil import adopt_listener
        from imapd.server import ServerContext, SessionLimits
        from imapd.tap import _quota_policy

        config = self.config
        self.reactor = reactor
        self.control = control
        self.context = ServerContext(
            portal=None, reactor=reactor, tls=self.tls,
            allow_plaintext_auth=self.effective.allow_plaintext_auth,
            limits=SessionLimits(**dataclasses.asdict(config.limits)),
            hostname=self.effective.hostname, quota=_quota_policy(config.quota),
            connections=_NoCounting(), login_failures=_NoCounting(), handoff=self,
            # ID x-originating-ip from these (imapd.commands.any), as in
            # the single process: a relaying node names the client.
            trusted_proxies=trusted_proxies(config), relay=self.relay)
        for description, family, fd, wrap, implicit in self.listeners:
            factory = LoginFactory(self, implicit)
            if wrap is not None:
                factory = TLSMemoryBIOFactory(wrap, False, factory)
            # A haproxy: listener reads the PROXY header first, as in the
            # single process (imapd.tap): the client's address is the
            # header's, for the limits, the log and the worker.
            factory = proxy_protocol_factory(config, description, factory)
            try:
                self.ports.append(adopt_listener(reactor, fd, family, factory))
            finally:
                os.close(fd)
        control.send({"op": "ready"})

    # -- the master ----------------------------------------------------------

    def send(self, message: dict, fds=()) -> None:
        self.control.send(message, fds)

    def request(self, message: dict, fds=()) -> defer.Deferred:
        return self.requests.send(self.control, message, fds)

    def on_message(self, channel, message: dict, fds) -> None:
        op = message.get("op")
        if op == "reply":
            self.requests.answer(message)
        elif op == "retire":
            self.retire()
        for fd in fds:
            os.close(fd)

    def control_lost(self) -> None:
        self.requests.fail_all(ConnectionError("the master is gone"))
        if self.reactor.running:
            self.reactor.stop()

    def retire(self) -> None:
        """A new generation took over: accept nothing more, go when idle."""
        self.retiring = True
        for port in self.ports:
            port.stopListening()
        self.ports = []
        self._maybe_exit()

    def session_ended(self, session) -> None:
        self.sessions.discard(session)
        self._maybe_exit()

    def _maybe_exit(self) -> None:
        if self.retiring and not self.sessions and self.reactor.running:
            self.reactor.stop()

    # -- called by imapd.commands.auth ---------------------------------------

    @defer.inlineCallbacks
    def authenticate(self, session, user: bytes, password: bytes):
        """
        The user's record, from the auth process through the master, which
        also counts the failure per address (or refuses the address).
        """
        host = getattr(session.transport.getPeer(), "host", None)
        message = {"op": "auth", "user": b64(user), "password": b64(password), "host": host}
        if self.config.cluster.relay:
            # What the auth process needs to decide on a relay
            # (imapd.cluster.relay.relay_target): the hops left and the
            # TCP peer, not a PROXY header's or ID's client.
            peer = _socket_transport(session.transport).getPeer()
            message["relay"] = {"ttl": session.proxy_ttl, "peer": getattr(peer, "host", None)}
        reply = yield self.request(message)
        result = reply.get("result")
        if result == "blocked":
            session.log_event("login refused", user.decode("utf-8", "replace"),
                              reason="too many failures from address")
            raise ConnectionClosing("Too many failed logins from your address; try again later")
        if result == "error":
            # The auth process ended during the check: not the client's fault.
            raise CommandFailed("Authentication is unavailable now; try again", "UNAVAILABLE")
        if result != "ok":
            raise LoginRefused(reply.get("reason") or "authentication failed")
        owner = reply.get("owner")
        if owner is not None:
            from imapd.cluster.relay import NotOurs
            from imapd.cluster.table import HostEntry

            raise NotOurs(HostEntry(owner["address"], int(owner["port"])))
        session.auth_token = reply["token"]
        return record_from_json(reply["record"])

    @defer.inlineCallbacks
    def hand_off(self, session, tag: str, record):
        """
        Give the logged-in session to its worker, which answers the login
        command; fails with L{CommandFailed} (the session stays here, not
        authenticated) if no worker takes it.
        """
        session.handing_off = True
        session.transport.pauseProducing()
        if not session.tls_active:
            # Our answers so far must reach the client before the worker's.
            waited = 0
            while not session._flushed() and not session.gone and waited < 600:
                yield _sleep(self.reactor, 0.01)
                waited += 1
        if session.gone:
            return
        state = session.session_state(tag, record)
        ours = None
        if session.tls_active:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            fd, family = theirs.fileno(), socket.AF_UNIX
        else:
            theirs = None
            transport = _socket_transport(session.transport)
            fd, family = transport.fileno(), transport.socket.family
        try:
            reply = yield self.request({"op": "handoff", "token": session.auth_token,
                                        "state": state.to_json(), "family": int(family)}, [fd])
        except ConnectionError:
            reply = {"ok": False, "reason": "Server restarting"}
        finally:
            if theirs is not None:
                theirs.close()
        if not reply.get("ok"):
            if ours is not None:
                ours.close()
            session.handing_off = False
            if not session.gone:
                session.transport.resumeProducing()
            raise CommandFailed(reply.get("reason") or "Login unavailable", "UNAVAILABLE")
        if ours is None:
            if not session.gone:
                session.detach()
        elif session.gone:
            ours.close()
        else:
            session.start_worker_relay(ours)


def _socket_transport(transport):
    """The TCP or UNIX transport under wrappers (a PROXY header reader)."""
    from twisted.protocols.policies import ProtocolWrapper

    while isinstance(transport, ProtocolWrapper):
        transport = transport.transport
    return transport


def _sleep(reactor, seconds: float) -> defer.Deferred:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)
