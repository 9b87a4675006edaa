# -*- test-case-name: tests.imapd.test_server -*-
"""
The server's shared context and its protocol factory.

Everything a session needs from the outside world comes through
L{ServerContext}: the cred portal, TLS settings for STARTTLS, limits, the
storage thread pool and the clock.  L{imapd.tap} builds one from the
configuration; tests build one by hand with a fake clock.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from storage import afterreply

__all__ = ["SessionLimits", "QuotaLimits", "QuotaPolicy", "MailboxPolicy",
           "SPECIAL_USE_ATTRIBUTES", "DEFAULT_SPECIAL_USE", "ServerContext", "IMAPFactory",
           "StoragePool", "ConnectionCounter"]


@dataclass(frozen=True)
class SessionLimits:
    """
    Limits on what one client controls (mission: "limits on everything a
    client controls").  Times in seconds, sizes in octets.
    """

    #: RFC 3501 section 5.4: at least 30 minutes once authenticated.
    idle_timeout_auth: float = 30 * 60
    #: Before login a connection has no business lingering.
    idle_timeout_unauth: float = 60
    #: From connect to a successful login, however busy the client keeps
    #: the connection (the idle timer restarts at every octet, so a client
    #: trickling one octet at a time would hold it for ever: slowloris).
    #: Three minutes leave a person with a slow password manager time.
    login_timeout: float = 180
    #: From the first octet of a command line to its CRLF (literal data
    #: excluded: its progress is bounded by the idle timeouts and the
    #: literal size limits).  A person typing in telnet needs seconds.
    line_timeout: float = 60
    #: Open connections the process accepts in total; the next one gets
    #: C{* BYE [UNAVAILABLE]} and is closed.  Each costs a descriptor and
    #: some memory, and the common soft limit is 1024 descriptors.
    max_connections: int = 1000
    #: Open connections from one IP address (loopback addresses and UNIX
    #: sockets are not counted: local webmail, proxies and tests).  A
    #: desktop client opens 2 to 5; an office behind one NAT address or a
    #: webmail host needs this raised.
    max_connections_per_ip: int = 20
    #: Longest command line, literal contents excluded.
    max_line: int = 64 * 1024
    #: Largest literal after login (APPEND size limit, APPENDLIMIT).
    max_literal: int = 64 * 1024 * 1024
    #: Largest literal before login: only credentials are expected there.
    max_literal_unauth: int = 8 * 1024
    #: Most literals in one command once authenticated (MULTIAPPEND sends
    #: one per message); with C{max_literal} it bounds a command's size.
    max_literals_per_command: int = 16
    #: Before login: LOGIN's user and password are the only literals.
    max_literals_unauth: int = 2
    #: Consecutive BAD commands before the server says BYE.
    max_bad_commands: int = 20
    #: Delay before answering a failed login (slows password guessing).
    failed_login_delay: float = 2.0
    #: Failed logins on one connection before BYE.
    max_failed_logins: int = 3
    #: Failed logins from one remote address, over all its connections,
    #: before it is refused (BYE) until some are forgotten; 0: no limit.
    max_failed_logins_per_address: int = 20
    #: Seconds after which one failed login of an address is forgotten.
    failed_login_decay: float = 60.0
    #: How often a session in IDLE re-syncs its mailbox against the store.
    idle_poll_interval: float = 2.0
    #: RFC 5465 NOTIFY: how often a session re-checks the mailboxes it
    #: watches for changes made by other processes, nodes or an MDA
    #: (changes by sessions of this process are noticed at once).
    notify_poll_interval: float = 30.0
    #: RFC 5465 NOTIFY: most mailboxes one session may watch besides the
    #: selected one (each costs a STATUS read per poll); beyond it, NO
    #: [NOTIFICATIONOVERFLOW].
    max_notify_mailboxes: int = 64
    #: RFC 5267 CONTEXT=SEARCH/SORT: most search results one session has
    #: kept up to date at once (each is evaluated again after every change
    #: of the mailbox); beyond it, NO [NOUPDATE].
    max_updating_searches: int = 8


@dataclass(frozen=True)
class QuotaLimits:
    """
    One user's limits (RFC 9208 section 5): C{storage} in units of 1024
    octets (RES-STORAGE), C{messages} a message count (RES-MESSAGE); 0
    means no limit on that resource.
    """

    storage: int = 0
    messages: int = 0


@dataclass(frozen=True)
class QuotaPolicy:
    """
    The quota limits from configuration: C{default} for every user and
    per-user overrides in C{users} (user name -> L{QuotaLimits}, already
    merged with the default, so an override that names only one resource
    keeps the default of the other).
    """

    default: QuotaLimits = QuotaLimits()
    users: tuple[tuple[str, QuotaLimits], ...] = ()

    def limits_for(self, user: str, record=None) -> QuotaLimits:
        """
        C{user}'s limits; the user database's fields win (C{record}'s
        C{userdb_quota_storage} in KiB and C{userdb_quota_messages}, which
        the LDAP C{user_attrs} give), each over this configuration's.
        """
        limits = self.default
        for name, configured in self.users:
            if name == user:
                limits = configured
                break
        extra = getattr(record, "extra", None) or {}
        given = {}
        for key, field in (("userdb_quota_storage", "storage"),
                           ("userdb_quota_messages", "messages")):
            if extra.get(key, "").isdigit():
                given[field] = int(extra[key])
        return dataclasses.replace(limits, **given) if given else limits


#: RFC 6154 section 2: the special-use attributes, spelled as sent.
SPECIAL_USE_ATTRIBUTES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk",
                          "\\Sent", "\\Trash")

#: The special-use mailboxes when none are configured: Dovecot's default
#: names (mailbox name -> attribute).
DEFAULT_SPECIAL_USE: tuple[tuple[str, str], ...] = (
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


@dataclass(frozen=True)
class MailboxPolicy:
    """
    RFC 6154 special-use mailboxes from configuration.

    @ivar special_use: (mailbox name, attribute) pairs; names compare
        without regard to case, as whole names.
    @ivar auto_create: mailboxes created when missing, at the user's LIST.
    """

    special_use: tuple[tuple[str, str], ...] = DEFAULT_SPECIAL_USE
    auto_create: tuple[str, ...] = ()


class ConnectionCounter:
    """
    Open connections in total and per client address, shared by every
    listener of the process (C{limits.max_connections},
    C{limits.max_connections_per_ip}).  Runs on the reactor thread.
    """

    #: Seconds between two log lines about refused connections: a flood of
    #: connections must not become a flood of log lines.
    LOG_INTERVAL = 60.0

    def __init__(self) -> None:
        self.total = 0
        self.by_host: dict[str, int] = {}
        self._refused = 0
        self._logged_at: Optional[float] = None

    def admit(self, host: Optional[str], limits: SessionLimits, now: float) -> Optional[str]:
        """
        Count a new connection from C{host} (None: no IP address), or
        say why it is refused (and count nothing).
        """
        if self.total >= limits.max_connections:
            return self._refuse("Too many connections to this server", host, now)
        limited = host is not None and not _is_loopback(host)
        if limited and self.by_host.get(host, 0) >= limits.max_connections_per_ip:
            return self._refuse("Too many connections from your address", host, now)
        self.total += 1
        if host is not None:
            self.by_host[host] = self.by_host.get(host, 0) + 1
        return None

    def release(self, host: Optional[str]) -> None:
        """A connection counted by L{admit} has ended."""
        self.total -= 1
        if host is not None:
            left = self.by_host[host] - 1
            if left:
                self.by_host[host] = left
            else:
                del self.by_host[host]

    def _refuse(self, reason: str, host: Optional[str], now: float) -> str:
        self._refused += 1
        if self._logged_at is None or now - self._logged_at >= self.LOG_INTERVAL:
            from twisted.logger import Logger

            Logger(namespace="imapd.server").warn(
                "Refused {count} connection(s) ({reason}; latest from {host}; "
                "{total} open)", count=self._refused, reason=reason, host=host,
                total=self.total)
            self._refused = 0
            self._logged_at = now
        return reason


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class _Refused(Protocol):
    """
    A connection beyond the limits: a BYE greeting (RFC 3501 section
    7.1.5, the server will not accept the connection) with
    C{[UNAVAILABLE]} (RFC 5530 section 3), then close.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def connectionMade(self) -> None:
        self.transport.write(f"* BYE [UNAVAILABLE] {self.reason}\r\n".encode())
        self.transport.loseConnection()


@dataclass
class ServerContext:
    """
    @ivar portal: a L{twisted.cred.portal.Portal} whose realm returns
        L{imapd.account.IAccount} avatars for L{IUsernamePassword}.
    @ivar tls: a Twisted TLS context factory (e.g.
        L{twisted.internet.ssl.CertificateOptions}) for STARTTLS, or None
        when no certificate is configured (STARTTLS is then not offered).
    @ivar allow_plaintext_auth: allow LOGIN/AUTHENTICATE without TLS.
    @ivar storage_pool: the thread pool for blocking store calls.
    @ivar reactor: provides L{IReactorTime} (a L{task.Clock} in tests).
    """

    portal: Any
    reactor: Any
    storage_pool: Any = None
    tls: Any = None
    allow_plaintext_auth: bool = False
    limits: SessionLimits = field(default_factory=SessionLimits)
    hostname: str = "localhost"
    #: Values for the RFC 2971 ID response.
    server_id: dict = field(
        default_factory=lambda: {"name": "imapd", "vendor": "imapd developers"}
    )
    #: Whether connections through this factory start in TLS already
    #: (implicit TLS, port 993), which makes STARTTLS pointless.
    implicit_tls: bool = False
    #: RFC 9208 limits per user.
    quota: QuotaPolicy = field(default_factory=QuotaPolicy)
    #: RFC 6154 special-use mailboxes.
    mailboxes: MailboxPolicy = field(default_factory=MailboxPolicy)
    #: Open connections of every listener (L{ConnectionCounter}).
    connections: "ConnectionCounter" = field(default_factory=ConnectionCounter)
    #: Failed logins per remote address, shared by all listeners.
    login_failures: Any = field(default_factory=lambda: _failure_ledger())
    #: The login of the submission server (RFC 4468 BURL), which may fetch
    #: C{submit+} URLAUTH URLs (RFC 4467 section 3); "" for none.
    urlauth_submit_user: str = ""
    #: Networks (L{ipaddress} networks) of trusted proxies, whose ID
    #: C{x-originating-ip} before login names the client (RFC 2971 fields
    #: as Dovecot's proxies send them).
    trusted_proxies: tuple = ()
    #: Full-text search (C{[fts]}, L{imapd.fts.FtsSettings}); None: the defaults.
    fts: Any = None

    #: In a login process (L{imapd.process.login.LoginRole}): checks
    #: passwords through the master and hands a logged-in session to its
    #: mail worker; None in the single process, where the portal does.
    handoff: Any = None
    #: With C{[cluster] relay}: how logins of users other nodes own are
    #: relayed to them (L{imapd.cluster.relay.RelayOptions}); None if not.
    relay: Any = None


def _failure_ledger():
    from imapd.auth.throttle import FailureLedger

    return FailureLedger()


class IMAPFactory(Factory):
    """Builds one L{imapd.protocol.IMAPServerProtocol} per connection."""

    #: No "Starting factory" lines: the daemon logs its listeners itself.
    noisy = False

    def __init__(self, context: ServerContext, implicit_tls: Optional[bool] = None):
        self.context = context
        self.implicit_tls = context.implicit_tls if implicit_tls is None else implicit_tls

    def buildProtocol(self, addr):
        from imapd.protocol import IMAPServerProtocol

        host = getattr(addr, "host", None)
        refused = self.context.connections.admit(host, self.context.limits,
                                                 self.context.reactor.seconds())
        if refused is not None:
            return _Refused(refused)
        from imapd import metrics

        metrics.RECORDER.inc("imapd_sessions_total")
        proto = IMAPServerProtocol(self.context, implicit_tls=self.implicit_tls)
        proto.factory = self
        # Released in connectionLost.
        proto.connection_slot = (host,)
        return proto


def _daemon_thread(*args, **kwargs):
    import threading

    thread = threading.Thread(*args, **kwargs)
    thread.daemon = True
    return thread


class _Job:
    """
    One job of L{_thread_pool}: C{func(*args, **kw)} in the submitter's
    Twisted context, then C{on_result(ok, result)} in the worker thread.

    Twisted's own C{ThreadPool.callInThreadWithCallback} wraps each job in
    a function that refers to itself (it stores the work and the callback
    as attributes of that function), a reference cycle of four objects
    that only the cycle collector frees.  The daemon collects the young
    generation every 200,000 allocations (L{imapd.tap.GC_THRESHOLD}), and
    every store call of every session is a job (an idling session syncs
    every poll): those cycles held some 4 MB more per minute in a worker
    with 300 idling sessions until the next collection.  A plain object
    has no cycle and goes when the job ends.
    """

    __slots__ = ("ctx", "func", "args", "kw", "on_result")

    def __init__(self, ctx, func, args, kw, on_result) -> None:
        self.ctx, self.func, self.args, self.kw = ctx, func, args, kw
        self.on_result = on_result

    def __call__(self) -> None:
        from twisted.python import context

        # Housekeeping the store leaves until the result is out (an mbox
        # writer's lock kept until the file clock ticks) runs after
        # on_result, in this thread (storage.afterreply).
        with afterreply.collecting() as later:
            try:
                result = context.call(self.ctx, self.func, *self.args, **self.kw)
                ok = True
            except BaseException:
                result = Failure()
                ok = False
        on_result = self.on_result
        self.ctx = self.func = self.args = self.kw = self.on_result = None
        if on_result is not None:
            on_result(ok, result)
        elif not ok:
            from twisted.python import log

            log.err(result)
        afterreply.run(later)


def _thread_pool(threads: int, name: str):
    """
    A Twisted C{ThreadPool} of daemon threads (a worker stuck in a hung
    read must not keep the process alive after the reactor stopped) whose
    jobs are L{_Job}s.
    """
    from twisted.python import context
    from twisted.python.threadpool import ThreadPool

    class Pool(ThreadPool):
        threadFactory = staticmethod(_daemon_thread)

        def callInThreadWithCallback(self, onResult, func, *args, **kw):
            if self.joined:
                return
            ctx = context.theContextTracker.currentContext().contexts[-1]
            # What ThreadPool.callInThreadWithCallback itself does, with
            # an acyclic job (_team is the pool's work queue).
            self._team.do(_Job(ctx, func, args, kw, onResult))

    return Pool(minthreads=0, maxthreads=threads, name=name)


class StoragePool:
    """
    The storage thread pool, shared fairly (DESIGN.md: "a hung NFS server
    must not stop logins to other mailboxes"; issue 6: "a mailbox on a
    hung file system stalls only the sessions that use it").

    A blocked read (a hung NFS server, a FIFO in a Maildir) holds its
    thread until the kernel gives up, and one pool shared by every
    session would soon have none left.  Two rules bound what one stuck
    store can take:

      - Shares: every job has a key (the session's user and selected
        mailbox, see L{imapd.protocol}); at most C{per_key} jobs of one
        key run at once, the others wait in that key's queue without
        holding a thread.  Clients can open many connections to the same
        mailbox; they still get C{per_key} threads.
      - Growth: a job running longer than C{stuck_after} seconds no
        longer counts against the pool, which grows by one thread for it
        (up to C{max_extra} extra threads) when the next job arrives, and
        shrinks back as stuck jobs end.  Many stuck keys (a whole NFS
        server hung, users on it still trying) thus cost threads, bounded,
        rather than the service of every other user.

    Every method runs on the reactor thread, except the job itself.

    @ivar pool: the underlying L{twisted.python.threadpool.ThreadPool}.
    """

    def __init__(self, threads: int, per_key: Optional[int] = None,
                 stuck_after: float = 10.0, max_extra: Optional[int] = None,
                 name: str = "imapd-storage", pool=None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threads = threads
        self.per_key = per_key if per_key is not None else max(1, threads // 4)
        self.stuck_after = stuck_after
        self.max_extra = max_extra if max_extra is not None else 4 * threads
        if pool is None:
            pool = _thread_pool(threads, name)
        self.pool = pool
        self._clock = clock
        self._running: dict[Hashable, int] = {}
        self._waiting: dict[Hashable, deque] = {}
        self._started: dict[int, list] = {}
        self._ids = itertools.count()

    def start(self) -> None:
        self.pool.start()

    def stop(self, grace: float = 5.0) -> None:
        """
        Stop the pool, waiting at most C{grace} seconds for running jobs:
        ThreadPool.stop joins every worker, and one stuck in a hung read
        would hold shutdown forever.
        """
        import threading

        stopper = threading.Thread(target=self.pool.stop, name="imapd-storage-stop",
                                   daemon=True)
        stopper.start()
        stopper.join(grace)
        if stopper.is_alive():
            from twisted.logger import Logger

            Logger(namespace="imapd.server").warn(
                "Storage jobs still running after {grace}s ({stuck} stuck); not waiting",
                grace=grace, stuck=self.stuck())

    def stuck(self) -> int:
        """Jobs running longer than C{stuck_after} seconds."""
        now = self._clock()
        return sum(1 for (t,) in self._started.values()
                   if t is not None and now - t > self.stuck_after)

    def queued(self, key: Hashable) -> int:
        """Jobs of C{key} waiting for their share."""
        return len(self._waiting.get(key, ()))

    def run(self, reactor, key: Hashable, fn: Callable, *args, **kwargs) -> defer.Deferred:
        """
        Run C{fn(*args, **kwargs)} in a worker thread within C{key}'s
        share; the Deferred fires on the reactor thread with its result.
        """
        d: defer.Deferred = defer.Deferred()
        if self._running.get(key, 0) >= self.per_key:
            self._waiting.setdefault(key, deque()).append((d, fn, args, kwargs))
        else:
            self._start(reactor, key, d, fn, args, kwargs)
        return d

    def _start(self, reactor, key, d, fn, args, kwargs) -> None:
        self._running[key] = self._running.get(key, 0) + 1
        job = next(self._ids)
        # The worker writes its start time into the cell: a job still
        # queued for a thread is not stuck, however long it waits.
        cell: list = [None]
        self._started[job] = cell
        self._resize()

        def on_result(success: bool, result) -> None:
            reactor.callFromThread(self._finished, reactor, key, job, d, success, result)
        self.pool.callInThreadWithCallback(on_result, self._work, cell, fn, args, kwargs)

    def _work(self, cell: list, fn: Callable, args, kwargs):
        cell[0] = self._clock()
        return fn(*args, **kwargs)

    def _finished(self, reactor, key, job, d, success, result) -> None:
        del self._started[job]
        left = self._running[key] - 1
        waiting = self._waiting.get(key)
        if waiting:
            nd, fn, args, kwargs = waiting.popleft()
            if not waiting:
                del self._waiting[key]
            self._running[key] = left
            self._start(reactor, key, nd, fn, args, kwargs)
        elif left:
            self._running[key] = left
        else:
            del self._running[key]
        self._resize()
        if success:
            d.callback(result)
        else:
            d.errback(result if isinstance(result, Failure) else Failure(result))

    def _resize(self) -> None:
        want = self.threads + min(self.stuck(), self.max_extra)
        if want != self.pool.max:
            self.pool.adjustPoolsize(minthreads=min(self.pool.min, want), maxthreads=want)
