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
      one strports service per listener, each with an IMAPFactory
      one strports service per LMTP listener (imapd.delivery.lmtp)
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


class IMAPService(service.MultiService):
    """The whole server; applies the configured log level when it starts."""

    def __init__(self, log_level: str = "info") -> None:
        super().__init__()
        self.log_level = log_level

    def privilegedStartService(self) -> None:
        # Listening happens here (before twistd drops privileges).  A port in
        # use is a configuration problem: say so in one line, not a traceback.
        from twisted.internet.error import CannotListenError

        try:
            super().privilegedStartService()
        except CannotListenError as e:
            reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
            address = f"{e.interface or '*'}:{e.port}"
            log.critical("Cannot listen on {address}: {reason}", address=address, reason=reason)
            raise _fail(f"option 'listen': cannot listen on {address}: {reason}") from None

    def startService(self) -> None:
        _apply_log_level(self.log_level)
        warm_up()
        super().startService()


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


def _apply_log_level(level: str) -> None:
    """
    Drop events below C{level} before they reach the observers twistd set
    up (--logfile, --syslog), and escape control characters in what
    reaches them (L{imapd.logtext.escaping_observer}).  twistd offers no
    hook between "where" and "what", so the observers it registered are
    wrapped in place.
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
    from imapd.logtext import escaping_observer

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    for observer in list(observers):
        if isinstance(observer, FilteringLogObserver):
            continue
        globalLogPublisher.removeObserver(observer)
        # Client text in any event is escaped before it is written
        # (issue 18 item 9; imapd.logtext).
        globalLogPublisher.addObserver(
            FilteringLogObserver(escaping_observer(observer), [predicate]))


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
    if service_.login_chroot and not os.path.isdir(service_.login_chroot):
        raise _fail(f"{where}: option 'service.login_chroot': {service_.login_chroot} "
                    "is not a directory") from None


def _check_cluster_multi_process(config, where: str) -> None:
    """
    Relaying logins to the node that owns the user (C{[cluster] relay},
    L{imapd.cluster.relay}) wraps the realm the login opens the account
    with; in the multi-process server the password is checked in the
    login process and the account opened in a worker, and neither can
    relay: start-up says so rather than serving users owned elsewhere.
    """
    if config.cluster.relay:
        raise _fail(f"{where}: option 'cluster.relay' needs [service] single_process = true")


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
    One strports service per C{lmtp_listen} endpoint, delivering through
    the server's storage pool (L{imapd.delivery.lmtp.build_lmtp_factory}).
    """
    if not config.server.lmtp_listen:
        return
    from conf.endpoints import twisted_description
    from imapd.delivery.lmtp import build_lmtp_factory

    factory = build_lmtp_factory(config, effective, context.reactor, context.storage_pool)
    # One process: delivered mail is indexed here, for the sessions here.
    factory.fts = context.fts
    for description in config.server.lmtp_listen:
        strports.service(twisted_description(description), factory).setServiceParent(top)
        log.info("LMTP listener {description}", description=description)


def _cluster_services(config, effective, top, portal) -> None:
    """
    The socketmap and auth_http listeners of C{[cluster]}, and placement
    refreshes for the users with sessions on this node (CLUSTER.md).
    """
    from imapd.cluster.service import add_cluster_services

    add_cluster_services(config, effective.passwd_file, top, portal)


def makeService(options: Options) -> service.MultiService:
    """Build the server from checked options (see the module docstring)."""
    from twisted.internet import reactor
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from conf.endpoints import is_implicit_tls, twisted_description, uses_tls_section
    from imapd.defaults import prepare
    from imapd.proxyprotocol import proxy_protocol_factory, trusted_proxies
    from imapd.server import IMAPFactory, MailboxPolicy, ServerContext, SessionLimits, StoragePool
    from imapd.tls import TLSError, certificate_options

    config = options.config
    where = config.source or "command line"
    try:
        effective = prepare(config)
    except TLSError as e:
        raise _fail(f"{where}: option 'tls.cert': {e}") from None
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
        _check_cluster_multi_process(config, where)
        # The auth process builds the same; its option errors (PAM service,
        # userdb) stop start-up here, in one line, not in a child.
        from imapd.auth import build_authenticator

        try:
            build_authenticator(config, effective)
        except ConfigError as e:
            raise _fail(str(e)) from None
        log.info("Mail location {location}, index {index}, users from {passwd}",
                 location=effective.mail_location, index=effective.index_dir,
                 passwd=effective.passwd_file)
        return MasterService(config, effective, (options["config"], options.overrides()))

    storage = config.storage
    pool = StoragePool(storage.threads, per_key=storage.threads_per_mailbox or None,
                       stuck_after=storage.stuck_after)
    try:
        portal = _portal(config, effective, pool, reactor)
    except ConfigError as e:
        raise _fail(str(e)) from None
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
        fts=settings_from(config),
    )

    top = IMAPService(config.log.level)
    ThreadPoolService(pool).setServiceParent(top)
    mail = config.mail
    IndexSweepService(pool, reactor, effective.index_dir, mail.index_sweep_interval,
                      mail.index_max_age * 86400, mail.index_max_size * 1024 * 1024,
                      ).setServiceParent(top)
    for description in config.server.listen:
        factory = IMAPFactory(context, implicit_tls=is_implicit_tls(description))
        if uses_tls_section(description):
            factory = TLSMemoryBIOFactory(tls, False, factory)
        factory = proxy_protocol_factory(config, description, factory)
        strports.service(twisted_description(description), factory).setServiceParent(top)
        log.info("Listener {description}", description=description)
    _lmtp_services(config, effective, context, top)
    _cluster_services(config, effective, top, context.portal)
    log.info("Mail location {location}, index {index}, users from {passwd}",
             location=effective.mail_location, index=effective.index_dir,
             passwd=_users_from(config, effective))
    return top
