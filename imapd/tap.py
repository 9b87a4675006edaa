# -*- test-case-name: tests.e2e.test_startup -*-
"""
C{twistd imapd}: command-line options and the service they build.

L{Options} reads and checks the configuration (L{conf.load_config}) while
the command line is parsed, so a bad option stops C{twistd} before it
daemonizes, with a message that names the option and the file.
L{makeService} then fills in the embedded default (L{imapd.defaults}) and
builds, by default, the master of several processes
(L{imapd.process.master.MasterService}: login processes and mail workers,
issue 14), or with C{[service] single_process = true} the whole server in
this process:

    IMAPService (MultiService)
      ThreadPoolService        the storage thread pool, started first
      IndexSweepService        removes old index files now and then
      one ListenerService per listener (imapd.listeners), each with an
        IMAPFactory
      one ListenerService per LMTP listener (imapd.delivery.lmtp)
      the cluster's listeners and work (imapd.cluster.service)

(In the multi-process server the LMTP and cluster listeners are served by
the C{imapd: services} child: L{imapd.process.services}.)
"""

from __future__ import annotations

import dataclasses
import sys

from twisted.application import service, strports
from twisted.logger import Logger
from twisted.python import usage

from conf import ConfigError, load_config
from imapd.fts import settings_from

__all__ = ["Options", "makeService", "IMAPService", "ThreadPoolService", "IndexSweepService"]

log = Logger(namespace="imapd.start")


def _fail(message: str) -> SystemExit:
    """Stop start-up with one line on stderr and exit status 1."""
    return SystemExit(f"imapd: {message}")


class Options(usage.Options):
    synopsis = "[--config FILE] [options]"
    longdesc = (
        "An IMAP4rev1 server.  Without options it serves 127.0.0.1:1143 "
        "(STARTTLS) and 127.0.0.1:1993 (implicit TLS) from ./imapd-data/, "
        "created on first start with a self-signed certificate and a user "
        "'demo' whose password is logged once.  Options given here override "
        "the configuration file; --example-config prints a file that "
        "documents every option."
    )
    optParameters = [
        ["config", "c", None, "TOML configuration file."],
        ["tls-cert", None, None, "PEM certificate (option tls.cert)."],
        ["tls-key", None, None, "PEM private key (option tls.key)."],
        ["passwd-file", None, None, "Dovecot-style passwd-file (option auth.passwd_file)."],
        [
            "mail-location",
            None,
            None,
            "Mail location in Dovecot syntax, e.g. maildir:/srv/mail/%u "
            "(option mail.location).",
        ],
        ["index-dir", None, None, "Local index cache directory (option mail.index_dir)."],
        ["data-dir", None, None, "Directory of the embedded default (option data_dir)."],
        ["hostname", None, None, "Server name in greetings (option hostname)."],
    ]
    optFlags = [
        [
            "allow-plaintext-auth",
            None,
            "Allow logins without TLS (option auth.allow_plaintext).",
        ],
    ]

    #: command-line option -> dotted configuration option
    _OVERRIDES = {
        "tls-cert": "tls.cert",
        "tls-key": "tls.key",
        "passwd-file": "auth.passwd_file",
        "mail-location": "mail.location",
        "index-dir": "mail.index_dir",
        "data-dir": "data_dir",
        "hostname": "hostname",
    }

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["lmtp-listen"] = []

    def opt_listen(self, description: str) -> None:
        "Listen here (repeatable; replaces option listen): a Twisted endpoint such as tcp:143:interface=0.0.0.0, tls:993 (implicit TLS with the configured certificate), ssl:993:privateKey=KEY:certKey=CERT or unix:/run/imapd.sock."
        self["listen"].append(description)

    def opt_lmtp_listen(self, description: str) -> None:
        "Accept LMTP deliveries here (repeatable; replaces option lmtp_listen): unix:/run/imapd/lmtp or tcp:24:interface=127.0.0.1."
        self["lmtp-listen"].append(description)

    def opt_version(self) -> None:
        "Print imapd's version (and Twisted's and Python's), and exit."
        sys.stdout.write(version_line() + "\n")
        raise SystemExit(0)

    def opt_example_config(self) -> None:
        "Print an example configuration file that documents every option, and exit."
        from importlib import resources

        sys.stdout.write(resources.files("conf").joinpath("imapd.example.toml").read_text())
        raise SystemExit(0)

    def overrides(self) -> dict:
        """The configuration options set on the command line."""
        result = {
            name: self[opt] for opt, name in self._OVERRIDES.items() if self[opt] is not None
        }
        if self["listen"]:
            result["listen"] = list(self["listen"])
        if self["lmtp-listen"]:
            result["lmtp_listen"] = list(self["lmtp-listen"])
        if self["allow-plaintext-auth"]:
            result["auth.allow_plaintext"] = True
        return result

    def postOptions(self) -> None:
        try:
            self.config = load_config(self["config"], self.overrides())
        except ConfigError as e:
            raise _fail(str(e)) from None


def version_line() -> str:
    """C{imapd 0.1.0 (Twisted 26.10.0, Python 3.11.7)}: --version and the log at start."""
    import platform

    import twisted

    from imapd import __version__

    return (f"imapd {__version__} (Twisted {twisted.__version__}, "
            f"Python {platform.python_version()})")


class ThreadPoolService(service.Service):
    """Runs a L{twisted.python.threadpool.ThreadPool} while the server runs."""

    def __init__(self, pool) -> None:
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> None:
        super().stopService()
        self.pool.stop()


class IndexSweepService(service.Service):
    """
    Every C{interval} seconds, L{index.sweep} the index directory in the
    storage pool: databases unused for C{max_age} seconds go, then the
    least recently used ones beyond C{max_bytes}.  The first sweep waits
    one interval, so start-up does no work that grows with the number of
    mailboxes (issue 6).
    """

    def __init__(self, pool, reactor, index_dir: str, interval: float,
                 max_age: float, max_bytes: int) -> None:
        self.pool = pool
        self.reactor = reactor
        self.index_dir = index_dir
        self.interval = interval
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._loop = None
        self._running = None

    def startService(self) -> None:
        super().startService()
        if self.interval <= 0 or not (self.max_age or self.max_bytes):
            return
        from twisted.internet import task

        self._loop = task.LoopingCall(self.sweep)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: log.failure("index sweep stopped", f))

    def sweep(self):
        """One sweep, in the pool (under its own key: a slow index disk
        holds one share); skipped while the last one still runs."""
        from index import sweep

        if self._running is not None:
            return None
        d = self._running = self.pool.run(self.reactor, ("", "index-sweep"), sweep,
                                          self.index_dir, self.max_age, self.max_bytes)

        def done(result):
            self._running = None
            return result
        d.addBoth(done)
        d.addErrback(lambda f: log.failure("index sweep failed", f))
        return None

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()


class ListenerService(service.Service):
    """
    One listener of the single process, bound by L{imapd.listeners} (as
    the master binds them) and served with C{factory} once the service
    starts.
    """

    def __init__(self, description: str, factory, reactor) -> None:
        self.description = description
        self.factory = factory
        self.reactor = reactor
        self.sockets: list = []
        self.ports: list = []

    def bind(self) -> None:
        """Bind now, if not bound yet; raises L{imapd.listeners.ListenError}."""
        from imapd.listeners import bind_listeners

        if not self.sockets and not self.ports:
            self.sockets = bind_listeners(self.description)

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self.bind()

    def startService(self) -> None:
        from imapd.process.sysutil import adopt_listener

        super().startService()
        self.bind()
        sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                self.ports.append(adopt_listener(self.reactor, sock.fileno(), sock.family,
                                                 self.factory))
            finally:
                sock.close()

    def stopService(self):
        from twisted.internet import defer

        super().stopService()
        ports, self.ports = self.ports, []
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])


class IMAPService(service.MultiService):
    """The whole server; applies the configured log level when it starts."""

    def __init__(self, log_level: str = "info", log_section=None) -> None:
        super().__init__()
        self.log_level = log_level
        self.log_section = log_section
        self._bound = False

    def bind_listeners(self) -> None:
        """
        Bind every listener, once: L{makeService} calls this before twistd
        daemonizes, so that a listener that cannot bind stops C{twistd}
        with one line and status 1 in daemon mode as with C{-n}, and
        leaves no pid file (issue 16 item 1).  A port in use is a
        configuration problem: one line, not a traceback.
        """
        from twisted.internet.error import CannotListenError

        from imapd.listeners import ListenError

        if self._bound:
            return
        self._bound = True
        for child in self:
            option = getattr(child, "option", "listen")
            try:
                if isinstance(child, ListenerService):
                    child.bind()
                else:
                    child.privilegedStartService()
            except ListenError as e:
                self._unbind()
                raise _fail(f"option {option!r}: {e}") from None
            except CannotListenError as e:
                # An endpoint Twisted binds (systemd:, plugins).
                self._unbind()
                reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
                address = e.port.decode(errors="replace") if isinstance(e.port, bytes) \
                    else f"{e.interface or '*'}:{e.port}"
                raise _fail(f"option {option!r}: cannot listen on {address}: {reason}") from None
            except OSError as e:
                self._unbind()
                raise _fail(f"option {option!r}: cannot listen on "
                            f"{getattr(child, 'description', '?')}: {e.strerror or e}") from None

    def _unbind(self) -> None:
        for child in self:
            if isinstance(child, ListenerService):
                for sock in child.sockets:
                    sock.close()
                child.sockets = []

    def privilegedStartService(self) -> None:
        # Listening happens here (before twistd drops privileges), unless
        # makeService did it already.
        # (bind_listeners gave every child its privilegedStartService.)
        self.bind_listeners()

    def startService(self) -> None:
        from imapd import sdnotify

        _apply_log_level(self.log_level, self.log_section)
        warm_up()
        super().startService()
        # The listeners accept now (ListenerService adopted them): a
        # Type=notify unit's start is done.
        sdnotify.ready("Serving " + ", ".join(
            getattr(child, "description", "") for child in self
            if getattr(child, "option", None) == "listen"))

    def stopService(self):
        from imapd import sdnotify

        sdnotify.stopping()
        return super().stopService()


def add_listener(top, option: str, description: str, factory, reactor) -> None:
    """
    Serve C{factory} on C{description} under C{top}: bound by
    L{imapd.listeners} where it can (TCP, TLS, UNIX), else by Twisted's
    endpoint parser (C{systemd:}, plugins).
    """
    from conf.endpoints import split_endpoint, twisted_description
    from imapd.listeners import BINDABLE

    if split_endpoint(description)[0] in BINDABLE:
        listener = ListenerService(description, factory, reactor)
    else:
        listener = strports.service(twisted_description(description), factory)
    listener.option = option
    listener.setServiceParent(top)


#: Modules the command handlers import on first use (to keep start-up of
#: tests and tools small); the daemon imports them before it serves, so
#: that the first SEARCH after a restart does not pay 10 ms of imports.
WARM_MODULES = (
    "imapd.message", "imapd.search", "imapd.search.sets", "imapd.search.match",
    "imapd.sort", "imapd.sort.keys", "imapd.sort.results", "imapd.sort.thread",
    "imapd.fetch", "imapd.cache", "imapd.catenate", "index",
    "storage.maildir.store", "storage.mbox.store",
)

#: CPython's first-generation GC threshold for the daemon (the default is
#: 700).  A cold SELECT of 10,000 messages builds some 100,000 objects, and
#: with the default every 700 allocations start a collection that walks
#: the young objects, and every tenth one the older ones: a third of a
#: cold SEARCH's time.  At 50,000 a cold SELECT still paid 9 ms of its
#: 55 for collections; at 200,000 nothing measurable.  Nearly all of
#: these objects are not cyclic garbage, so collecting less often costs
#: little memory: at most the cycles made by 200,000 allocations wait.
GC_THRESHOLD = (200_000, 20, 100)


def warm_up() -> None:
    """
    Prepare the process to serve: import L{WARM_MODULES}, move everything
    allocated so far out of the collector's sight (C{gc.freeze}: modules,
    configuration, nothing that will become garbage) and set
    L{GC_THRESHOLD}.
    """
    import gc
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


#: twistd's observers as it registered them (unwrapped), and the filtering
#: observers L{_apply_log_level} put in their place: a reload (SIGHUP)
#: installs them again with the new level and target.
_twistd_observers: list = []
_installed: list = []


def _apply_log_level(level: str, section=None) -> None:
    """
    Drop events below C{level} before they reach the observers twistd set
    up (--logfile, --syslog), and escape control characters in what
    reaches them (L{imapd.logtext.escaping_observer}).  twistd offers no
    hook between "where" and "what", so the observers it registered are
    wrapped in place.  With C{section.target} "syslog" or "journal"
    (L{imapd.logsink}), that sink replaces twistd's observers.

    @param section: the L{conf.schema.LogSection}, or None for twistd's
        observers.
    """
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogPublisher,
    )

    observers = getattr(globalLogPublisher, "_observers", None)
    if observers is None:
        log.warn("log.level is not supported by this Twisted; logging everything")
        return
    from imapd.logsink import sink_for
    from imapd.logtext import escaping_observer, quiet_predicate

    predicates = [LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level)),
                  quiet_predicate()]
    for observer in list(observers):
        if observer in _installed:
            globalLogPublisher.removeObserver(observer)
            continue
        if isinstance(observer, FilteringLogObserver):
            continue
        globalLogPublisher.removeObserver(observer)
        _twistd_observers.append(observer)
    _installed.clear()
    sink = sink_for(section) if section is not None else None
    for observer in [sink] if sink is not None else _twistd_observers:
        # Client text in any event is escaped before it is written
        # (issue 18 item 9; imapd.logtext).
        wrapped = FilteringLogObserver(escaping_observer(observer), predicates)
        _installed.append(wrapped)
        globalLogPublisher.addObserver(wrapped)


def _portal(config, effective, pool=None, reactor=None):
    """
    The single-process server's portal: the configured L{Authenticator}
    (L{imapd.auth.build_authenticator}, the call the auth process makes
    too) in front of the mail realm.

    @raises conf.ConfigError: the authentication options do not fit.
    """
    from twisted.cred.portal import Portal

    from imapd.account import MailRealm
    from imapd.auth.authenticator import AuthenticatorChecker, build_authenticator

    authenticator = build_authenticator(config, effective)

    runner = None
    if pool is not None:
        # Opening a store touches the user's directory: in the storage
        # pool, under the share the user's other work without a mailbox
        # uses (imapd.protocol), never on the reactor thread.
        def runner(user, fn, *args):
            return pool.run(reactor, (user, None), fn, *args)

    def home_for(user: str):
        record = authenticator.user(user)
        return record.home if record is not None else None

    # URLFETCH of another user's URL (RFC 4467) opens that user's store
    # only for a user of the user database who may be served.
    realm = MailRealm(effective.mail_location, home_for, effective.index_dir, runner=runner,
                      lookup=authenticator.user)
    return Portal(realm, [AuthenticatorChecker(authenticator)])


def _users_from(config, effective) -> str:
    """Where passwords and users come from, for the start-up log."""
    if config.auth.passdb:
        named = {"pam": f"PAM service {config.auth.pam!r}",
                 "passwd-file": effective.passwd_file,
                 "ldap": "LDAP " + " ".join(config.ldap.uris)}
        return "password databases, in order: " + ", ".join(
            named[d] for d in config.auth.passdb)
    passwords = f"PAM service {config.auth.pam!r}" if config.auth.pam else effective.passwd_file
    if config.userdb.system or not effective.passwd_file:
        return f"{passwords} (uid, gid and home from the system password database)"
    return passwords


def _check_login_user(config, where: str) -> None:
    """
    As root, login processes become C{service.login_user} (in
    C{login_chroot}): both must exist, or start-up stops here rather than
    with login processes that die one after another.
    """
    import os
    import pwd

    service_ = config.service
    if os.getuid() != 0:
        return
    try:
        pwd.getpwnam(service_.login_user)
    except KeyError:
        raise _fail(f"{where}: option 'service.login_user': no user "
                    f"{service_.login_user!r}") from None
    if service_.mail_user:
        try:
            if pwd.getpwnam(service_.mail_user).pw_uid == 0:
                raise _fail(f"{where}: option 'service.mail_user': {service_.mail_user!r} is "
                            "root; name the user virtual users' mail belongs to")
        except KeyError:
            raise _fail(f"{where}: option 'service.mail_user': no user "
                        f"{service_.mail_user!r}") from None
    if service_.login_chroot and not os.path.isdir(service_.login_chroot):
        raise _fail(f"{where}: option 'service.login_chroot': {service_.login_chroot} "
                    "is not a directory") from None


def _quota_policy(section):
    """The C{[quota]} options as an L{imapd.server.QuotaPolicy}."""
    from imapd.server import QuotaLimits, QuotaPolicy

    default = QuotaLimits(section.storage, section.messages)
    users = tuple(
        (user,
         QuotaLimits(default.storage if storage is None else storage,
                     default.messages if messages is None else messages))
        for user, storage, messages in section.users
    )
    return QuotaPolicy(default, users)


def _lmtp_services(config, effective, context, top) -> None:
    """
    One listener per C{lmtp_listen} endpoint, delivering through
    the server's storage pool (L{imapd.delivery.lmtp.build_lmtp_factory}).
    """
    if not config.server.lmtp_listen:
        return
    from imapd.delivery.lmtp import build_lmtp_factory

    factory = build_lmtp_factory(config, effective, context.reactor, context.storage_pool)
    # One process: delivered mail is indexed here, for the sessions here.
    factory.fts = context.fts
    for description in config.server.lmtp_listen:
        add_listener(top, "lmtp_listen", description, factory, context.reactor)
        log.info("LMTP listener {description}", description=description)


def _cluster_services(config, effective, top, portal) -> None:
    """
    The socketmap and auth_http listeners of C{[cluster]}, and placement
    refreshes for the users with sessions on this node (CLUSTER.md).
    """
    from imapd.cluster.service import add_cluster_services

    add_cluster_services(config, effective.passwd_file, top, portal)


def _control_service(config, portal, top) -> None:
    """
    The control socket (L{imapd.control}, C{imapd-admin who} and
    C{kick}): the realm counts the sessions it opens accounts for.
    """
    from imapd.cluster.sessions import SessionTracker, TrackingRealm
    from imapd.control import ControlService, answer, control_path

    tracker = SessionTracker()
    portal.realm = TrackingRealm(portal.realm, tracker)

    def handle(request):
        sessions = [s for user in tracker.active() for s in tracker.sessions(user)]
        return answer(sessions, request, "single")
    ControlService(control_path(config), handle).setServiceParent(top)


def _check_metrics(config, where: str) -> None:
    """C{[metrics] listen} needs prometheus-client: one line at start if missing."""
    from imapd.metrics import missing_client

    if config.metrics.listen and missing_client():
        raise _fail(f"{where}: option 'metrics.listen': {missing_client()}")


def _metrics_service(config, context, top) -> None:
    """The single process's Prometheus endpoint (L{imapd.metrics})."""
    if not config.metrics.listen:
        return
    from twisted.web.server import Site

    from imapd import metrics

    metrics.watch_locks()
    site = Site(metrics.metrics_resource(metrics.RECORDER, lambda: context.connections.total))
    site.noisy = False
    for description in config.metrics.listen:
        add_listener(top, "metrics.listen", description, site, context.reactor)
        log.info("Metrics on {description}", description=description)


def makeService(options: Options) -> service.MultiService:
    """Build the server from checked options (see the module docstring)."""
    from twisted.internet import reactor
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from conf.endpoints import is_implicit_tls, split_endpoint, uses_tls_section
    from imapd.defaults import prepare
    from imapd.listeners import ssl_context
    from imapd.proxyprotocol import proxy_protocol_factory, trusted_proxies
    from imapd.server import IMAPFactory, MailboxPolicy, ServerContext, SessionLimits, StoragePool
    from imapd.tls import TLSError, certificate_options

    config = options.config
    where = config.source or "command line"
    log.info("{version} starting", version=version_line())
    _check_metrics(config, where)
    try:
        effective = prepare(config)
    except TLSError as e:
        raise _fail(f"{where}: option 'tls.cert': {e}") from None
    except ConfigError as e:
        raise _fail(str(e)) from None
    except OSError as e:
        raise _fail(f"{e.filename}: {e.strerror} (option 'data_dir' is {config.server.data_dir})") from None

    tls = None
    if effective.cert is not None:
        try:
            tls = certificate_options(effective.cert, effective.key, config.tls.min_version)
        except TLSError as e:
            if config.tls.cert:
                raise _fail(f"{where}: option 'tls.cert': {e}") from None
            raise _fail(f"{e} (generated under option 'data_dir'; delete it to make a new one)") from None

    if not config.service.single_process:
        # Issue 14: a master, login processes and mail workers
        # (imapd.process.master); the same checks above stopped start-up.
        from imapd.process.master import MasterService

        _check_login_user(config, where)
        # The auth process builds the same; its option errors (PAM service,
        # userdb) stop start-up here, in one line, not in a child.
        from imapd.auth import build_authenticator

        try:
            build_authenticator(config, effective)
        except ConfigError as e:
            raise _fail(str(e)) from None
        log.info("Mail location {location}, index {index}, users from {passwd}",
                 location=effective.mail_location, index=effective.index_dir,
                 passwd=_users_from(config, effective))
        master = MasterService(config, effective, (options["config"], options.overrides()))
        master.bind_listeners()
        return master

    storage = config.storage
    pool = StoragePool(storage.threads, per_key=storage.threads_per_mailbox or None,
                       stuck_after=storage.stuck_after)
    try:
        portal = _portal(config, effective, pool, reactor)
    except ConfigError as e:
        raise _fail(str(e)) from None
    from imapd.cluster.relay import relay_options

    try:
        relay = relay_options(config.cluster)
    except (OSError, ValueError) as e:
        raise _fail(f"{where}: option 'cluster.relay_tls_ca': {e}") from None
    context = ServerContext(
        portal=portal,
        reactor=reactor,
        storage_pool=pool,
        tls=tls,
        allow_plaintext_auth=effective.allow_plaintext_auth,
        limits=SessionLimits(**dataclasses.asdict(config.limits)),
        hostname=effective.hostname,
        quota=_quota_policy(config.quota),
        mailboxes=MailboxPolicy(config.mailboxes.special_use, config.mailboxes.auto_create),
        urlauth_submit_user=config.urlauth.submit_user,
        trusted_proxies=trusted_proxies(config),
        relay=relay,
        fts=settings_from(config),
    )

    top = IMAPService(config.log.level, config.log)
    ThreadPoolService(pool).setServiceParent(top)
    mail = config.mail
    IndexSweepService(pool, reactor, effective.index_dir, mail.index_sweep_interval,
                      mail.index_max_age * 86400, mail.index_max_size * 1024 * 1024,
                      ).setServiceParent(top)
    for description in config.server.listen:
        factory = IMAPFactory(context, implicit_tls=is_implicit_tls(description))
        if uses_tls_section(description):
            factory = TLSMemoryBIOFactory(tls, False, factory)
        elif split_endpoint(description)[0] == "ssl":
            # Bound here like the rest; its own certificate wraps it.
            factory = TLSMemoryBIOFactory(ssl_context(description), False, factory)
        factory = proxy_protocol_factory(config, description, factory)
        add_listener(top, "listen", description, factory, reactor)
        log.info("Listener {description}", description=description)
    _lmtp_services(config, effective, context, top)
    _cluster_services(config, effective, top, context.portal)
    _control_service(config, context.portal, top)
    _metrics_service(config, context, top)
    log.info("Mail location {location}, index {index}, users from {passwd}",
             location=effective.mail_location, index=effective.index_dir,
             passwd=_users_from(config, effective))
    top.bind_listeners()
    return top
