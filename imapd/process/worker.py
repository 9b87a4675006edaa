# -*- test-case-name: tests.process.test_processes -*-
"""
C{imapd: worker}: logged-in sessions.

A worker receives sessions from login processes (through the master): a
descriptor (the client's socket, or the worker's end of a TLS relay) and
a L{SessionState}.  It adopts the connection, opens the user's store from
the mail location (the record's home is C{~}), answers the login
command itself (C{OK [CAPABILITY ...] Logged in}, or NO when the store
cannot be opened), then parses what the client sent after the login
command.  From there it is the ordinary L{IMAPServerProtocol}.

Two kinds: pool workers (C{imapd: worker pool-N}) serve the users who
share the server's uid, a user always in the same one
(L{imapd.process.wire.pool_index}); a system user's worker (C{imapd:
worker alice 192.0.2.5}) is forked for that user, becomes the user
(L{imapd.process.privileges.become_user}) before anything else, and asks
to go C{user_worker_grace} seconds after its last session ends (the
master stops sending it sessions first, so no handoff races the exit).
"""

from __future__ import annotations

import os

from twisted.internet.protocol import Factory
from twisted.logger import Logger

from imapd.fts import settings_from
from imapd.process.wire import SessionState, record_from_json
from imapd.protocol import IMAPServerProtocol, _tagged

__all__ = ["WorkerRole", "WorkerProtocol"]

log = Logger(namespace="imapd.worker")


class WorkerProtocol(IMAPServerProtocol):
    """A session that logged in elsewhere: no greeting, starts authenticated."""

    def __init__(self, context, handed: SessionState, role: "WorkerRole") -> None:
        super().__init__(context, implicit_tls=handed.tls)
        self.handed = handed
        self.role = role
        self.session_id = handed.session_id or self.session_id
        self.enabled = set(handed.enabled)
        self.bytes_in = handed.bytes_in
        self.bytes_out = handed.bytes_out

    def connectionMade(self) -> None:
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        handed = self.handed
        self.peer = f"{handed.peer[0]}:{handed.peer[1] or ''}"
        self.transport.registerProducer(self, True)
        self._producing = True
        # Authenticated from the first octet on; commands wait (busy)
        # until the store is open and the login command is answered.
        self.state = "auth"
        self.parser.limits = self._parser_limits()
        self._busy = True
        self._reset_timeout()
        if handed.pending:
            self._feed(handed.pending)
        d = self.role.open_account(handed.record, self)
        d.addCallbacks(self._opened, self._not_opened)

    def _opened(self, result) -> None:
        _iface, account, _logout = result
        if self._closing:
            self._close_quietly(account, "logout")
            return
        self.set_authenticated(account)
        from imapd.commands.any import capabilities

        caps = "CAPABILITY " + " ".join(capabilities(self))
        self.send(_tagged(self.handed.tag, b"OK", caps, "Logged in", self.imap4rev2))
        self._busy = False
        self._pump()

    def _not_opened(self, failure) -> None:
        from imapd.account import store_open_failed

        code, text = store_open_failed(self.log, self.handed.record.name, self, failure)
        self.send(_tagged(self.handed.tag, b"NO", code, text))
        self.send(b"* BYE Closing\r\n")
        self.disconnect()

    def connectionLost(self, reason=None) -> None:
        super().connectionLost(reason)
        self.role.session_ended(self)


class WorkerRole:
    def __init__(self, config, effective, args: dict) -> None:
        self.config = config
        self.effective = effective
        self.args = args
        self.user = record_from_json(args["user"]) if args.get("user") else None
        self.sessions: set = set()
        self.retiring = False
        self.homes: dict[str, str] = {}
        self._idle_call = None
        #: LMTP deliveries to this worker's users (set by L{start})
        self.deliveries = None
        #: the cluster's session tracking (L{imapd.cluster.sessions}), if on
        self.tracking = None

    def prepare(self) -> None:
        from imapd.process.privileges import become_user

        group = self.config.service.mail_privileged_group or None
        if self.user is not None:
            become_user(self.user, group)
        elif os.getuid() == 0 and self.config.service.mail_user:
            # A pool worker: virtual users' mail as service.mail_user, not
            # as root (issue 16 item 7: a container started as root).
            import pwd

            from imapd.auth.userdb import UserRecord

            entry = pwd.getpwnam(self.config.service.mail_user)
            become_user(UserRecord(entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid), group)

    def start(self, reactor, control) -> None:
        import dataclasses

        from imapd.account import MailRealm
        from imapd.auth.passwdfile import PasswdFile
        from imapd.server import MailboxPolicy, ServerContext, SessionLimits, StoragePool
        from imapd.tap import IndexSweepService, _quota_policy

        config, effective = self.config, self.effective
        self.reactor = reactor
        self.control = control
        storage = config.storage
        pool = self.pool = StoragePool(storage.threads, per_key=storage.threads_per_mailbox or None,
                                       stuck_after=storage.stuck_after)
        pool.start()
        reactor.addSystemEventTrigger("before", "shutdown", pool.stop)
        passwd = PasswdFile(effective.passwd_file)

        def passwd_entry(user):
            try:
                return passwd.lookup(user)
            except OSError:  # a system user's worker may not read it
                return None

        def home_for(user):
            if user in self.homes:
                return self.homes[user]
            entry = passwd_entry(user)
            return entry.home if entry is not None else None

        def runner(user, fn, *args):
            return pool.run(reactor, (user, None), fn, *args)
        self.realm = MailRealm(effective.mail_location, home_for, effective.index_dir,
                               runner=runner,
                               user_exists=lambda user: passwd_entry(user) is not None)
        self.context = ServerContext(
            portal=None, reactor=reactor, storage_pool=pool, tls=None,
            allow_plaintext_auth=effective.allow_plaintext_auth,
            limits=SessionLimits(**dataclasses.asdict(config.limits)),
            hostname=effective.hostname, quota=_quota_policy(config.quota),
            mailboxes=MailboxPolicy(config.mailboxes.special_use, config.mailboxes.auto_create),
            urlauth_submit_user=config.urlauth.submit_user,
            fts=settings_from(config))
        if self.args.get("sweep"):
            mail = config.mail
            sweep = IndexSweepService(pool, reactor, effective.index_dir,
                                      mail.index_sweep_interval, mail.index_max_age * 86400,
                                      mail.index_max_size * 1024 * 1024)
            sweep.startService()
            reactor.addSystemEventTrigger("before", "shutdown", sweep.stopService)
        self._start_tracking(reactor)
        self.deliveries = self._deliveries(reactor, runner)
        control.send({"op": "ready"})
        self._check_idle()

    def _deliveries(self, reactor, runner):
        """LMTP deliveries to this worker's users (L{imapd.process.delivery})."""
        from imapd.delivery.core import Deliverer
        from imapd.mailwatch import watcher_for
        from imapd.process.delivery import WorkerDeliveries
        from imapd.tap import _quota_policy

        effective = self.effective
        deliverer = Deliverer(effective.mail_location, None, effective.index_dir,
                              _quota_policy(self.config.quota),
                              self.config.lmtp.recipient_delimiter,
                              hostname=effective.hostname)
        return WorkerDeliveries(deliverer, runner, watcher_for(reactor).changed,
                                self.control.send)

    def _start_tracking(self, reactor) -> None:
        """
        On a cluster node (C{[cluster] node} and C{hosts_file}), keep the
        users with sessions in this worker placed on the node and end
        their sessions when they are moved away, as the single process
        does for all of its sessions (L{imapd.cluster.sessions}).  A
        user's sessions all live in one worker, so each worker tracks its
        own users; it writes its own placement record file (the node's
        name, C{~}, the worker), which readers merge with the others.
        """
        from imapd.cluster.owner import directory_from_config
        from imapd.cluster.placement import placements_dir
        from imapd.cluster.service import (
            PlacementFlushService,
            _check_node,
            session_check_interval,
        )
        from imapd.cluster.sessions import NodeSessionsService, SessionTracker, TrackingRealm

        section = self.config.cluster
        if not (section.hosts_file and section.node):
            return
        if self.user is not None:
            folder = placements_dir(section.hosts_file)
            if not os.access(folder if os.path.isdir(folder) else os.path.dirname(folder),
                             os.W_OK):
                log.warn("Sessions of {user} are not tracked by the cluster: uid {uid} "
                         "cannot write {folder}", user=self.user.name, uid=self.user.uid,
                         folder=folder)
                return
            writer = f"{section.node}~uid-{self.user.uid}"
        else:
            writer = f"{section.node}~pool-{int(self.args.get('index', 0)) + 1}"
        directory = directory_from_config(section, writer=writer)
        tracker = SessionTracker()
        self.tracking = TrackingRealm(self.realm, tracker, directory)
        for work in (PlacementFlushService(directory.placements),
                     NodeSessionsService(directory, tracker, section.node,
                                         session_check_interval(section.user_expire))):
            work.startService()
            reactor.addSystemEventTrigger("before", "shutdown", work.stopService)
        if self.args.get("sweep"):
            _check_node(directory, section.node)

    def open_account(self, record, session=None):
        from imapd.account import IAccount

        if record.home:
            self.homes[record.name] = record.home
        # The record itself: its home is ~ and its userdb_mail extra field
        # overrides the mail location (imapd.account.MailRealm).
        realm = self.tracking if self.tracking is not None else self.realm
        return realm.requestAvatar(record, session, IAccount)

    # -- the master ------------------------------------------------------------

    def on_message(self, channel, message: dict, fds) -> None:
        op = message.get("op")
        if op == "session":
            self._adopt(message, fds)
            return
        if op == "link":
            self._link(message, fds)
            return
        if op == "control":  # imapd-admin who/kick, through the master
            from imapd.control import answer

            process = (f"worker {self.user.name}" if self.user is not None
                       else f"worker pool-{int(self.args.get('index', 0)) + 1}")
            result = answer(list(self.sessions), message.get("request") or {}, process)
            self.control.send({"op": "control-result", "req": message.get("req"),
                               "result": result})
        if op == "deliver":
            self._cancel_idle()
            self.deliveries.handle(message, fds).addCallback(lambda _: self._settle())
            return
        for fd in fds:
            os.close(fd)
        if op == "retire":
            self.retiring = True
            self._maybe_exit()

    def _link(self, message: dict, fds) -> None:
        """
        A delivery link from the services process (a pool worker's only,
        L{imapd.process.delivery}): C{deliver} requests come on it and
        are answered on it; nothing else is taken from it.
        """
        from imapd.process.channel import Channel, adopt_channel

        if self.user is not None or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            log.error("A delivery link was offered to a worker that takes none")
        else:
            uid = os.getuid()

            def on_request(link, request: dict, rfds) -> None:
                if request.get("op") != "deliver":
                    for fd in rfds:
                        os.close(fd)
                    log.warn("A delivery link sent {op!r}; ignored", op=request.get("op"))
                    return
                self._cancel_idle()
                self.deliveries.handle(request, rfds, send=link.send, server_uid=uid) \
                    .addCallback(lambda _: self._settle())
            try:
                adopt_channel(self.reactor, fds[0], Channel(on_request, name="delivery link"))
            except OSError as e:
                log.error("A delivery link could not be set up: {error}", error=e)
        # The master closes its copy of our end now.
        self.control.send({"op": "linked", "link": message.get("link")})

    def _adopt(self, message: dict, fds) -> None:
        ok = False
        try:
            if len(fds) != 1:
                raise ValueError("a session comes with one descriptor")
            handed = SessionState.from_json(message["state"])
            proto = WorkerProtocol(self.context, handed, self)
            self.sessions.add(proto)
            self._cancel_idle()
            self.reactor.adoptStreamConnection(fds[0], int(message["family"]),
                                               Factory.forProtocol(lambda: proto))
            ok = True
        except Exception:
            log.failure("cannot adopt a session")
        finally:
            for fd in fds:
                os.close(fd)
            self.control.send({"op": "adopted", "req": message.get("req"), "ok": ok})

    def control_lost(self) -> None:
        if self.reactor.running:
            self.reactor.stop()

    def session_ended(self, session) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        if session.handed.slot is not None:
            self.control.send({"op": "release", "slot": session.handed.slot})
        self._settle()

    def _settle(self) -> None:
        """A session or a delivery ended: maybe leave, or start the grace."""
        self._maybe_exit()
        self._check_idle()

    def _busy(self) -> bool:
        """Whether sessions or deliveries are under way here."""
        return bool(self.sessions) or bool(self.deliveries and self.deliveries.active)

    def _maybe_exit(self) -> None:
        if self.retiring and not self._busy() and self.reactor.running:
            self.reactor.stop()

    def _check_idle(self) -> None:
        """A system user's worker asks to go after a grace without sessions."""
        if self.user is None or self._busy() or self.retiring or self._idle_call is not None:
            return
        self._idle_call = self.reactor.callLater(self.config.service.user_worker_grace,
                                                 self._idle)

    def _cancel_idle(self) -> None:
        call, self._idle_call = self._idle_call, None
        if call is not None and call.active():
            call.cancel()

    def _idle(self) -> None:
        self._idle_call = None
        if not self._busy() and not self.retiring:
            # The master stops routing to us, then says retire.
            self.control.send({"op": "idle"})
