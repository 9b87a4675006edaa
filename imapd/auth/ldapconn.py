# -*- test-case-name: tests.imapd.auth.test_ldap -*-
"""
The LDAP directory as the password and user databases see it: searches
and password binds against the configured servers (C{[ldap] uris}),
through L{ldap3} (pure Python).

Every call here blocks (network I/O) and is made off the reactor thread:
L{DirectoryThreads} gives the directory a small thread pool of its own,
so that a directory that hangs cannot take the threads the stores and the
passwd-file use.  Each network operation has a timeout (C{[ldap]
timeout}: the TCP connect and every wait for an answer).

Connections are reused: a few connections per server stay open between
calls (C{pool_size}), those for searches bound as C{bind_dn} (or
anonymous), those for password binds (C{auth_bind}) apart, because a
password bind changes who the connection is.  A connection is used by one
thread at a time.

Failover: the servers are tried in the order given.  A server that fails
(cannot be reached, times out, refuses C{bind_dn}, answers a search with
an error) is logged by its URI and skipped for L{RETRY_AFTER} seconds,
while the next one answers; when the others fail too, the ones skipped
are tried after them, so logins work as soon as any comes back.  When
none answers, the caller gets L{DirectoryUnavailable}
(L{imapd.auth.errors.AuthUnavailable}), never "wrong password".

TLS (RFC 4513 section 3): C{ldaps://} URIs, or C{starttls} on C{ldap://}
ones; either way the server's certificate is checked against the CA file
(C{tls_ca_cert_file}, else the system's CAs) and the host name in the
URI.
"""

from __future__ import annotations

import math
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from twisted.logger import Logger

from imapd.auth.errors import AuthUnavailable

__all__ = ["LDAPSettings", "Directory", "DirectoryUnavailable", "DirectoryThreads",
           "RETRY_AFTER", "load_ldap3"]

_log = Logger(namespace="imapd.auth.ldap")

#: Seconds a server that failed is skipped while another one answers.
RETRY_AFTER = 30.0

#: RFC 4511 section 4.1.9 result codes.
SUCCESS = 0
SIZE_LIMIT_EXCEEDED = 4
INVALID_CREDENTIALS = 49

#: The search scopes of C{[ldap] scope}, as Dovecot names them.
SCOPES = ("base", "onelevel", "subtree")


class DirectoryUnavailable(AuthUnavailable):
    """No LDAP server answered; the text names each server and its failure."""


def load_ldap3():
    """
    The L{ldap3} module.

    @raises ImportError: it is not installed (the C{ldap} extra of the
        package).
    """
    import ldap3

    return ldap3


@dataclass(frozen=True)
class LDAPSettings:
    """
    How to reach the directory (the C{[ldap]} options of the same names).

    @ivar uris: C{ldap://host:port} or C{ldaps://host:port}, tried in order.
    @ivar base: the DN searches start from.
    @ivar scope: one of L{SCOPES}.
    @ivar bind_dn: the DN searches are made as; empty for anonymous.
    @ivar bind_password: its password.
    @ivar starttls: upgrade C{ldap://} connections with StartTLS (RFC 4511
        section 4.14) before anything else is sent.
    @ivar ca_file: the CA certificates server certificates are checked
        against; empty for the system's.
    @ivar timeout: seconds for a connect and for each answer.
    @ivar pool_size: connections kept open per server and purpose, and the
        threads of L{DirectoryThreads}.
    """

    uris: tuple[str, ...]
    base: str
    scope: str = "subtree"
    bind_dn: str = ""
    bind_password: str = ""
    starttls: bool = False
    ca_file: str = ""
    timeout: float = 5.0
    pool_size: int = 4


class _Failed(Exception):
    """One server failed (the message says how); try the next."""


class Directory:
    """
    Blocking searches and password binds against the configured servers.

    @param settings: L{LDAPSettings}.
    @param ldap3: the L{ldap3} module (a seam for tests).
    @param clock: C{time.monotonic}, for L{RETRY_AFTER}.
    """

    def __init__(self, settings: LDAPSettings, ldap3=None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not settings.uris:
            raise ValueError("no LDAP server: [ldap] uris is empty")
        if settings.scope not in SCOPES:
            raise ValueError(f"unknown scope {settings.scope!r}")
        self.settings = settings
        self._ldap3 = ldap3 if ldap3 is not None else load_ldap3()
        self._clock = clock
        self._lock = threading.Lock()
        #: (uri, purpose) -> idle open connections
        self._idle: dict[tuple[str, str], list] = {}
        #: uri -> clock time before which it is skipped
        self._down_until: dict[str, float] = {}
        for uri in settings.uris:
            self._server(uri)  # ldap3 refuses a bad URI now, not at the first login
        #: Counters for tests and measurements: connections opened,
        #: searches and binds sent.
        self.opened = 0
        self.searches = 0
        self.binds = 0

    # -- the two operations -------------------------------------------------

    def search(self, filter: str, attributes: tuple[str, ...]) -> list[tuple[str, dict]]:
        """
        Search C{base} with C{filter} (already escaped) for C{attributes}.

        @return: up to two C{(dn, {attribute lower-cased: [str values]})}
            entries (two means "not one": the caller refuses).
        @raises DirectoryUnavailable: no server answered.
        """
        s = self.settings

        def run(conn):
            self.searches += 1
            conn.search(s.base, filter, search_scope=self._scope(), attributes=list(attributes),
                        size_limit=2, time_limit=max(1, int(s.timeout)))
            code = conn.result.get("result")
            if code not in (SUCCESS, SIZE_LIMIT_EXCEEDED):
                raise _Failed(f"search refused: {_describe(conn.result)}")
            return [(entry["dn"], _values(entry.get("raw_attributes") or {}))
                    for entry in (conn.response or []) if entry.get("type") == "searchResEntry"]

        return self._call("search", run)

    def check_bind(self, dn: str, password: bytes) -> bool:
        """
        Whether C{password} is C{dn}'s, by a simple bind as C{dn} (RFC 4513
        section 5.1.3).  An empty password is never sent: to a server it is
        an unauthenticated bind, which succeeds for any DN (section 5.1.2).

        @raises DirectoryUnavailable: no server answered.
        """
        if not password or not dn:
            return False

        def run(conn):
            self.binds += 1
            conn.user, conn.password = dn, password
            if conn.bind():
                return True
            code = conn.result.get("result")
            if code == INVALID_CREDENTIALS:
                return False
            raise _Failed(f"bind as the user refused: {_describe(conn.result)}")

        return self._call("auth", run)

    # -- servers and connections --------------------------------------------

    def _scope(self):
        ldap3 = self._ldap3
        return {"base": ldap3.BASE, "onelevel": ldap3.LEVEL,
                "subtree": ldap3.SUBTREE}[self.settings.scope]

    def _server(self, uri: str):
        ldap3, s = self._ldap3, self.settings
        tls = None
        if uri.lower().startswith("ldaps://") or s.starttls:
            # Certificate checks always: a directory that answers for
            # passwords must prove who it is.  ldap3 checks the host name
            # when validate is CERT_REQUIRED.
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=s.ca_file or None,
                            version=ssl.PROTOCOL_TLS_CLIENT)
        return ldap3.Server(uri, tls=tls, connect_timeout=s.timeout, get_info=ldap3.NONE)

    def _open(self, uri: str, purpose: str):
        """A new connection to C{uri}, StartTLS done, bound as C{bind_dn}."""
        ldap3, s = self._ldap3, self.settings
        # ldap3 packs the receive timeout as whole seconds (SO_RCVTIMEO).
        # A new ldap3 Server each time: one that failed to connect marks
        # its address unavailable for a few seconds and then refuses to
        # try it ("invalid server address"), which would hide a directory
        # that is back.  When to try a server again is RETRY_AFTER's
        # business (and a pooled connection is opened rarely).
        conn = ldap3.Connection(self._server(uri), receive_timeout=max(1, math.ceil(s.timeout)),
                                authentication=ldap3.SIMPLE, raise_exceptions=False,
                                auto_referrals=False,
                                read_only=True, check_names=False)
        self.opened += 1
        try:
            conn.open()
            if s.starttls and not uri.lower().startswith("ldaps://"):
                if not conn.start_tls():
                    raise _Failed(f"StartTLS refused: {_describe(conn.result)}")
            if purpose == "search" and s.bind_dn:
                conn.user, conn.password = s.bind_dn, s.bind_password
                if not conn.bind():
                    raise _Failed(f"bind as bind_dn {s.bind_dn!r} refused: "
                                  f"{_describe(conn.result)}")
        except BaseException:
            _close(conn)
            raise
        return conn

    def _take(self, uri: str, purpose: str):
        """An idle connection (pooled=True) or a new one (pooled=False)."""
        with self._lock:
            idle = self._idle.get((uri, purpose))
            if idle:
                return idle.pop(), True
        return self._open(uri, purpose), False

    def _give_back(self, uri: str, purpose: str, conn) -> None:
        with self._lock:
            idle = self._idle.setdefault((uri, purpose), [])
            if len(idle) < self.settings.pool_size:
                idle.append(conn)
                return
        _close(conn)

    def _order(self) -> list[str]:
        """
        The servers to try now: those not marked down, in order, then
        those marked down (one may be back when the others have failed).
        """
        now = self._clock()
        with self._lock:
            up = [u for u in self.settings.uris if self._down_until.get(u, 0.0) <= now]
        return up + [u for u in self.settings.uris if u not in up]

    def _call(self, purpose: str, run):
        """
        C{run(connection)} on the first server that answers.

        @raises DirectoryUnavailable: every server failed.
        """
        ldap3 = self._ldap3
        failures = []
        for uri in self._order():
            for _attempt in range(2):
                try:
                    conn, pooled = self._take(uri, purpose)
                except (_Failed, ldap3.core.exceptions.LDAPException, OSError) as e:
                    failures.append((uri, _reason(e)))
                    break
                try:
                    result = run(conn)
                except (_Failed, ldap3.core.exceptions.LDAPException, OSError) as e:
                    _close(conn)
                    if pooled and not isinstance(e, _Failed):
                        # A kept connection may have been closed by the
                        # server (idle timeout, restart): one fresh try.
                        continue
                    failures.append((uri, _reason(e)))
                    break
                self._give_back(uri, purpose, conn)
                with self._lock:
                    self._down_until.pop(uri, None)
                return result
            uri, why = failures[-1]
            _log.error("LDAP server {uri} failed: {reason}", uri=uri, reason=why)
            with self._lock:
                self._down_until[uri] = self._clock() + RETRY_AFTER
        raise DirectoryUnavailable("no LDAP server answered: " +
                                   "; ".join(f"{u}: {w}" for u, w in failures))

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                _close(conn)


def _close(conn) -> None:
    try:
        conn.unbind()
    except Exception:
        pass


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, _Failed) else f"{type(error).__name__}: {text}"


def _describe(result: Optional[dict]) -> str:
    result = result or {}
    text = f"{result.get('description')} ({result.get('result')})"
    if result.get("message"):
        text += f" {result['message']}"
    return text


def _values(raw: dict) -> dict[str, list[str]]:
    """Attribute values as text (LDAP strings are UTF-8, RFC 4511 section 4.1.2)."""
    out = {}
    for name, values in raw.items():
        if isinstance(values, (bytes, str)):
            values = [values]
        out[name.lower()] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                             for v in values]
    return out


class DirectoryThreads:
    """
    The directory's own thread pool: C{run(f, *args)} returns a Deferred
    for C{f(*args)} run in it.  Started at the first call, stopped when
    the reactor stops.
    """

    def __init__(self, size: int, reactor=None) -> None:
        self.size = size
        self._reactor = reactor
        self._pool = None

    def run(self, f, *args):
        from twisted.internet.threads import deferToThreadPool

        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        if self._pool is None:
            from twisted.python.threadpool import ThreadPool

            self._pool = ThreadPool(1, self.size, name="ldap")
            self._pool.start()
            self._reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)
        return deferToThreadPool(self._reactor, self._pool, f, *args)
