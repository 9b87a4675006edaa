# -*- test-case-name: tests.process.test_processes -*-
"""
C{imapd: master}: the twistd process of the multi-process server (issue 14).

    master (twistd; binds the listeners, supervises, runs no protocol code)
      spawner             forked from the master (one shared image): forks the rest
        auth              passwords (Authenticator), under the master's uid
        login x N         greeting .. LOGIN, TLS; as login_user when root
        worker pool-1..M  sessions of users under the server's uid
        worker alice ...  one per system user, as that user
        services          LMTP, cluster socketmap and auth_http, cluster
                          work; under the master's uid, only when configured

The master binds every listener itself (privilegedStartService, so that
ports below 1024 work when it starts as root) and hands them to the login
processes; it keeps the connection counts and the failed logins per
address for all of them (a login process asks it before greeting and
before checking a password), relays password checks to the auth process,
and routes each logged-in session to its worker, descriptor included.
A child that dies is started again (after a growing delay, logged);
SIGHUP reads the configuration again and starts a new generation of
processes with it while the old ones finish their sessions (the services
process its LMTP connections); SIGTERM ends
every child.  It runs no thread.
"""

from __future__ import annotations

import itertools
import os
import pickle
import secrets
import signal
import socket
import sys
from typing import Optional

from twisted.application import service
from twisted.internet import defer, protocol
from twisted.logger import Logger, LogLevel

from imapd.listeners import ListenError, bind_listeners
from imapd.process.channel import Channel, adopt_channel
from imapd.process.wire import b64, in_pool, pool_index, record_from_json, record_to_json, unb64

__all__ = ["MasterService"]

log = Logger(namespace="imapd.master")

#: Restart delays of a child that keeps dying: the first restart is at
#: once (a killed worker's users log in again within a second), then
#: each one waits twice as long, up to the last; a child that ran for
#: L{_STABLE} seconds starts over from the first.
_BACKOFF = (0.05, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_STABLE = 30.0
#: Seconds children get to end after SIGTERM before SIGKILL.
_STOP_GRACE = 12.0


class Child:
    """One child as the master knows it."""

    _ids = itertools.count(1)

    def __init__(self, kind: str, name: str, generation: int, args: dict) -> None:
        self.id = next(Child._ids)
        self.kind = kind
        self.name = name
        self.generation = generation
        self.args = args
        self.channel: Optional[Channel] = None
        self.pid: Optional[int] = None
        self.ready = False
        self.dead = False
        self.retiring = False
        self.started = 0.0
        self.queue: list = []        # (message, fds) until ready
        self.keep: list = []         # sockets to close once the spawner has them
        self.restarts = 0

    @property
    def title(self) -> str:
        return f"imapd: {self.name}"

    def send(self, message: dict, fds=()) -> None:
        if self.ready and self.channel is not None:
            self.channel.send(message, fds)
        else:
            self.queue.append((message, list(fds)))


class _SpawnerProcess(protocol.ProcessProtocol):
    """The spawner's stdout and stderr (the children's too): their log."""

    def __init__(self, master: "MasterService") -> None:
        self.master = master
        self._partial = {1: b"", 2: b""}

    def childDataReceived(self, fd: int, data: bytes) -> None:
        lines = (self._partial.get(fd, b"") + data).split(b"\n")
        self._partial[fd] = lines.pop()
        for line in lines:
            relay_log_line(line, fd)

    def processEnded(self, reason) -> None:
        self.master.spawner_ended(reason)


def _forked_spawner(reactor, proto, child_fds):
    """
    A Twisted process whose child runs the spawner (L{imapd.process.spawner.run_forked})
    instead of executing a program: the master's pipes and reaping, a
    fork's shared image.
    """
    from twisted.internet import process

    master = os.getpid()

    class ForkedSpawner(process.Process):
        def _trySpawnInsteadOfFork(self, *args, **kwargs):
            return False  # posix_spawn would execute a program

        def _execChild(self, path, uid, gid, executable, args, environment):
            # In the child, its descriptors set up; never returns.
            from imapd.process import spawner

            spawner.run_then_exit(lambda: spawner.run_forked(master))

    return ForkedSpawner(reactor, sys.executable, [sys.executable, "imapd: spawner"],
                         dict(os.environ), None, proto, childFDs=child_fds)


#: The loggers of the namespaces children log under.
_relay_loggers: dict[str, Logger] = {}


def relay_log_line(line: bytes, fd: int = 1) -> None:
    """Log a child's log line (L{imapd.process.child.child_log_observer})."""
    import json

    if not line.strip():
        return
    try:
        record = json.loads(line)
        level = LogLevel.levelWithName(record["l"])
        namespace, text = record.get("ns") or "imapd.child", record["t"]
    except (ValueError, KeyError, TypeError):
        level = LogLevel.error if fd == 2 else LogLevel.info
        namespace, text = "imapd.child", line.decode("utf-8", "backslashreplace")
    child_log = _relay_loggers.get(namespace)
    if child_log is None:
        child_log = Logger(namespace=namespace)
        if len(_relay_loggers) < 256:  # a child names them: keep a few
            _relay_loggers[namespace] = child_log
    for part in text.split("\n"):
        if part:
            child_log.emit(level, "{text}", text=part)


class MasterService(service.Service):
    """
    @param config: the checked L{conf.Config}.
    @param effective: its L{imapd.defaults.Effective}.
    @param reload_args: (configuration file, command-line overrides), for
        SIGHUP.
    """

    def __init__(self, config, effective, reload_args=(None, {}), reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.reload_args = reload_args
        self.listeners: list = []   # (description, socket)
        #: the services process's listeners: (option, description, socket)
        self.service_listeners: list = []
        #: the Prometheus endpoint's listeners (description, socket), served
        #: here, and their ports once served
        self.metrics_listeners: list = []
        self.metrics_ports: list = []
        self.services: Optional[Child] = None
        self.children: dict[int, Child] = {}
        self.auth: Optional[Child] = None
        self.logins: list[Child] = []
        self.pool: list[Child] = []
        self.users: dict[str, Child] = {}
        self.generation = 0
        self.stopping = False
        self.spawner = None
        self.spawner_channel: Optional[Channel] = None
        self.spawn_queue: list = []
        self.spawner_restarts = 0
        self._reqs = itertools.count(1)
        self.auth_pending: dict[int, tuple] = {}
        self.granted: dict[str, tuple] = {}
        self.handoffs: dict[int, tuple] = {}
        #: deliveries under way: request id -> (services child, its request
        #: id, the message's descriptors, worker)
        self.deliveries: dict[int, tuple] = {}
        #: delivery links on their way: link id -> {child id: our copy of
        #: the end sent to that child}, closed once the child has it
        self.link_ends: dict[int, dict[int, socket.socket]] = {}
        self.slots: dict[int, list] = {}
        self._slot_ids = itertools.count(1)
        self._stopped: Optional[defer.Deferred] = None
        #: READY=1 is owed to systemd once the current generation is up
        #: (at start, and after a reload: L{imapd.sdnotify}).
        self._owe_ready = False
        self._spawner_timer = None
        #: The control socket (L{imapd.control}) and its requests in flight.
        self.control = None
        self.control_pending: dict = {}
        self._set_config(config, effective)
        from imapd.server import ConnectionCounter

        self.connections = ConnectionCounter()
        self.failures = _failure_ledger()

    def _set_config(self, config, effective) -> None:
        import dataclasses

        from imapd.server import SessionLimits

        self.config = config
        self.effective = effective
        self.limits = SessionLimits(**dataclasses.asdict(config.limits))
        self.blobs = (b64(pickle.dumps(config)), b64(pickle.dumps(effective)))

    # -- start and stop --------------------------------------------------------

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self.bind_listeners()

    def bind_listeners(self) -> None:
        """
        Bind every listener (L{imapd.listeners}), once: C{makeService}
        calls it before twistd daemonizes, so that a listener that cannot
        bind stops C{twistd} with one line and status 1 in daemon mode
        too (issue 16 item 1); C{privilegedStartService} again for
        callers that build the service themselves.
        """
        if self.listeners or self.service_listeners or self.metrics_listeners:
            return
        from imapd.process.services import service_listeners

        wanted = [("listen", d, self.listeners) for d in self.config.server.listen]
        wanted += [(o, d, None) for o, d in service_listeners(self.config)]
        # The Prometheus endpoint is the master's own (imapd.metrics).
        wanted += [("metrics.listen", d, self.metrics_listeners)
                   for d in self.config.metrics.listen]
        for option, description, into in wanted:
            try:
                socks = bind_listeners(description)
            except (ListenError, ValueError) as e:
                # (No log line: start-up has not begun logging; the one
                # line on stderr is the message.)
                self._close_listeners()
                from imapd.tap import _fail

                raise _fail(f"option {option!r}: {e}") from None
            for sock in socks:
                if into is None:
                    self.service_listeners.append((option, description, sock))
                else:
                    into.append((description, sock))
            if into is self.listeners:
                log.info("Listener {description}", description=description)

    def _close_listeners(self) -> None:
        for _d, sock in self.listeners:
            sock.close()
        self.listeners = []
        for _o, _d, sock in self.service_listeners:
            sock.close()
        self.service_listeners = []
        for _d, sock in self.metrics_listeners:
            sock.close()
        self.metrics_listeners = []
        for port in self.metrics_ports:
            port.stopListening()
        self.metrics_ports = []

    def startService(self) -> None:
        from imapd.process.sysutil import set_title
        from imapd.tap import _apply_log_level

        super().startService()
        _apply_log_level(self.config.log.level, self.config.log)
        self.bind_listeners()
        set_title("imapd: master")
        signal.signal(signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reload))
        from imapd.control import ControlService, control_path

        self.control = ControlService(control_path(self.config), self.control_request,
                                      self.reactor)
        self.control.startService()
        self._serve_metrics()
        self.start_spawner()
        self._owe_ready = True
        self.start_generation()

    def _serve_metrics(self) -> None:
        """The Prometheus endpoint: the children's reports, added up here."""
        if not self.metrics_listeners:
            return
        from twisted.web.server import Site

        from imapd import metrics
        from imapd.process.sysutil import adopt_listener

        metrics.watch_locks()
        site = Site(metrics.metrics_resource(metrics.RECORDER, lambda: self.connections.total))
        site.noisy = False
        for description, sock in self.metrics_listeners:
            self.metrics_ports.append(adopt_listener(self.reactor, sock.fileno(), sock.family,
                                                     site))
        for description in dict.fromkeys(d for d, _s in self.metrics_listeners):
            log.info("Metrics on {description}", description=description)

    def _on_metrics(self, child: Child, message, fds) -> None:
        from imapd import metrics

        report = message.get("d")
        if isinstance(report, dict):
            metrics.RECORDER.merge(report)

    def stopService(self):
        from imapd import sdnotify

        sdnotify.stopping()
        super().stopService()
        self.stopping = True
        if self.control is not None:
            self.control.stopService()
        self._stopped = defer.Deferred()
        for child in list(self.children.values()):
            if child.pid is not None:
                _kill(child.pid, signal.SIGTERM)
        self._check_stopped()
        timer = self.reactor.callLater(_STOP_GRACE, self._kill_all)
        self._stopped.addBoth(lambda r: timer.cancel() if timer.active() else None)
        return self._stopped

    def _kill_all(self) -> None:
        for child in list(self.children.values()):
            if child.pid is not None:
                log.warn("{title} (pid {pid}) did not stop; killing it", title=child.title,
                         pid=child.pid)
                _kill(child.pid, signal.SIGKILL)
        self._finish_stop()

    def _check_stopped(self) -> None:
        if self.stopping and not any(c.pid is not None for c in self.children.values()):
            self._finish_stop()

    def _finish_stop(self) -> None:
        """Every child is gone: end the spawner (it goes at end of input)."""
        if self._stopped is None or self._stopped.called:
            return
        self._close_listeners()
        if self.spawner is None:
            self._stopped.callback(None)
            return
        if self.spawner_channel is not None:
            self.spawner_channel.close()
        if self._spawner_timer is None:
            self._spawner_timer = self.reactor.callLater(3.0, self._kill_spawner)

    def _kill_spawner(self) -> None:
        if self.spawner is not None and self.spawner.pid is not None:
            _kill(self.spawner.pid, signal.SIGKILL)

    # -- the spawner -------------------------------------------------------------

    def start_spawner(self) -> None:
        """
        Fork the spawner from this process (L{imapd.process.spawner}).

        The master imports what every child needs first and freezes it,
        so that the master, the spawner and the children share that one
        image: a fresh interpreter for the spawner would hold a second
        copy, and the master's own (Twisted alone is some 20 MB) would be
        private to it.
        """
        from imapd.process import spawner

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        spawner.preload()
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()   # nothing buffered is written twice
            except (AttributeError, OSError, ValueError):
                pass
        try:
            self.spawner = _forked_spawner(
                self.reactor, _SpawnerProcess(self),
                {0: "w", 1: "r", 2: "r", 3: theirs.fileno()})
        finally:
            theirs.close()
        self.spawner_channel = adopt_channel(
            self.reactor, ours.detach(),
            Channel(self.on_spawner_message, self.spawner_lost, name="spawner"))
        queue, self.spawn_queue = self.spawn_queue, []
        for message, fds, child in queue:
            # (A child that ended meanwhile closed its socket: not sent.)
            if not child.dead:
                self.spawner_channel.send(message, fds)

    def spawner_lost(self, channel) -> None:
        if self.spawner_channel is channel:
            self.spawner_channel = None

    def spawner_ended(self, reason) -> None:
        self.spawner = None
        self.spawner_channel = None
        # Its children died with it (PR_SET_PDEATHSIG).
        for child in list(self.children.values()):
            self.child_exited(child, "the spawner ended")
        if self.stopping:
            if self._spawner_timer is not None and self._spawner_timer.active():
                self._spawner_timer.cancel()
            self._finish_stop()
            return
        log.error("The spawner ended ({reason}); starting it again",
                  reason=reason.getErrorMessage())
        delay = _BACKOFF[min(self.spawner_restarts, len(_BACKOFF) - 1)]
        self.spawner_restarts += 1
        self.reactor.callLater(delay, self.start_spawner)

    def on_spawner_message(self, channel, message: dict, fds) -> None:
        for fd in fds:
            os.close(fd)
        op = message.get("op")
        child = self.children.get(message.get("id"))
        if op == "spawned" and child is not None:
            child.pid = message["pid"]
            child.started = self.reactor.seconds()
            for sock in child.keep:
                sock.close()
            child.keep = []
            log.info("{title} started (pid {pid})", title=child.title, pid=child.pid)
        elif op == "exited" and child is not None:
            self.child_exited(child, message.get("text", "exited"), message.get("code"))

    def spawn(self, child: Child) -> Child:
        """Ask the spawner for C{child} (which is queued until it is up)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child.channel = adopt_channel(
            self.reactor, ours.detach(),
            Channel(lambda ch, m, f: self.on_child_message(child, m, f),
                    lambda ch: None, name=child.name))
        child.keep = [theirs]
        self.children[child.id] = child
        fds = [theirs.fileno()]
        if child.kind == "login":
            fds += [sock.fileno() for _d, sock in self.listeners]
        elif child.kind == "services":
            fds += [sock.fileno() for _o, _d, sock in self.service_listeners]
        config, effective = child.args.pop("_blobs", self.blobs)
        message = {"op": "spawn", "id": child.id, "kind": child.kind, "title": child.title,
                   "config": config, "effective": effective, "args": child.args}
        child.blobs = (config, effective)
        if self.spawner_channel is None:
            self.spawn_queue.append((message, fds, child))
        else:
            self.spawner_channel.send(message, fds)
        return child

    # -- generations ---------------------------------------------------------------

    def start_generation(self) -> None:
        """Start auth, login processes and pool workers with the current config."""
        self.generation += 1
        gen = self.generation
        cpus = os.cpu_count() or 1
        service_ = self.config.service
        root = os.getuid() == 0
        self.auth = self.spawn(Child("auth", "auth", gen, {}))
        listeners = [{"description": d, "family": int(s.family)} for d, s in self.listeners]
        self.logins = [self.spawn(Child("login", "login", gen,
                                        {"listeners": listeners, "drop": root, "index": i}))
                       for i in range(service_.login_processes or cpus)]
        self.pool = [self.spawn(Child("pool", f"worker pool-{i + 1}", gen,
                                      {"index": i, "sweep": i == 0}))
                     for i in range(service_.mail_workers or cpus)]
        self.users = {}
        self.services = None
        from imapd.process.services import services_wanted

        if services_wanted(self.config) or self.service_listeners:
            # Only the listeners bound at start (a change needs a restart).
            spec = [{"option": o, "description": d, "family": int(s.family)}
                    for o, d, s in self.service_listeners]
            self.services = self.spawn(Child("services", "services", gen, {"listeners": spec}))

    def reload(self) -> None:
        """SIGHUP: the configuration again; a new generation if it is good."""
        from conf import ConfigError, load_config
        from imapd.defaults import prepare
        from imapd.tls import TLSError

        from imapd import sdnotify

        if self.stopping:
            return
        sdnotify.reloading()
        path, overrides = self.reload_args
        try:
            config = load_config(path, overrides)
            effective = prepare(config)
        except (ConfigError, TLSError, OSError) as e:
            log.error("Reload: {error}; keeping the configuration in use", error=e)
            # The settings in use go on serving: the reload is over.
            sdnotify.ready(f"Reload failed ({e}); serving generation {self.generation}")
            return
        if list(config.server.listen) != list(dict.fromkeys(d for d, _s in self.listeners)):
            log.warn("Reload: option 'listen' changed; the listeners change at the next start")
        from imapd.process.services import service_listeners

        if service_listeners(config) != list(dict.fromkeys(
                (o, d) for o, d, _s in self.service_listeners)):
            log.warn("Reload: options 'lmtp_listen', 'cluster.socketmap_listen' or "
                     "'cluster.auth_http_listen' changed; the listeners change at the next start")
        old = [c for c in self.children.values() if not c.retiring]
        self._set_config(config, effective)
        from imapd.tap import _apply_log_level

        _apply_log_level(config.log.level, config.log)
        self._owe_ready = True
        self.start_generation()
        for child in old:
            self.retire(child)
        log.info("Reloaded {source}: generation {gen}", source=path or "command line",
                 gen=self.generation)

    def retire(self, child: Child) -> None:
        """Stop giving C{child} work; it exits once its sessions ended."""
        child.retiring = True
        if not child.dead:
            child.send({"op": "retire"})

    # -- supervision --------------------------------------------------------------

    def child_exited(self, child: Child, text: str, code=None) -> None:
        if child.dead:
            return
        child.dead = True
        self.children.pop(child.id, None)
        for sock in child.keep:
            sock.close()
        child.keep = []
        if child.channel is not None:
            child.channel.close()
        expected = self.stopping or child.retiring
        (log.info if expected else log.warn)(
            "{title} (pid {pid}) ended: {text}", title=child.title, pid=child.pid, text=text)
        child.pid = None
        for link in list(self.link_ends):
            self._drop_link_end(link, child)
        self._fail_work_of(child)
        for slot, (host, holder) in list(self.slots.items()):
            if holder == child.id:
                self._release(slot)
        if self.stopping:
            self._check_stopped()
            return
        if expected or child.kind == "user":
            if child.kind == "user" and self.users.get(child.name_key) is child:
                del self.users[child.name_key]
            return
        lived = self.reactor.seconds() - child.started if child.started else 0
        restarts = 0 if lived >= _STABLE else child.restarts + 1
        delay = _BACKOFF[min(max(restarts - 1, 0), len(_BACKOFF) - 1)]
        again = Child(child.kind, child.name, child.generation, dict(child.args))
        again.restarts = restarts
        again.args["_blobs"] = child.blobs
        if child.kind == "auth":
            self.auth = again
        elif child.kind == "login":
            self.logins[self.logins.index(child)] = again
        elif child.kind == "pool":
            self.pool[self.pool.index(child)] = again
        elif child.kind == "services":
            self.services = again
        log.info("Starting {title} again in {delay}s", title=child.title, delay=delay)
        # In the meantime, work for it waits in its queue.
        self.reactor.callLater(delay, self._respawn, again)

    def _respawn(self, child: Child) -> None:
        if not self.stopping and not child.retiring:
            self.spawn(child)

    def _fail_work_of(self, child: Child) -> None:
        for message, fds in child.queue:
            req = message.get("req")
            if message.get("op") == "session" and req in self.handoffs:
                self._handoff_done(req, False, "The mail worker ended; try again")
            elif message.get("op") == "auth" and req in self.auth_pending:
                self._auth_done(req, None, error=True)
        child.queue = []
        for req, (_login, _lreq, _fd, worker, _slot) in list(self.handoffs.items()):
            if worker is child:
                self._handoff_done(req, False, "The mail worker ended; try again")
        for req, (services, _sreq, _fds, worker) in list(self.deliveries.items()):
            if worker is child:
                log.warn("{title} ended during a delivery; answered 451", title=child.title)
                self._delivery_done(req, {"ok": False, "code": 451, "status": "4.3.0",
                                          "text": "Mail worker ended, try again later"})
            elif services is child:
                # Nobody to answer; the worker's answer is dropped.
                self._delivery_done(req, None)
        for req, entry in list(self.auth_pending.items()):
            if entry[3] is child:
                self._auth_done(req, None, error=True)

    # -- messages from children ----------------------------------------------------

    #: What each kind of child may ask: a login process that went wrong
    #: cannot pose as the auth process, nor a worker as a login process.
    ALLOWED_OPS = {
        "auth": {"ready", "metrics", "auth-result"},
        "login": {"ready", "metrics", "admit", "release", "auth", "handoff"},
        "pool": {"ready", "metrics", "adopted", "release", "control-result", "delivered",
                 "linked"},
        "user": {"ready", "metrics", "adopted", "release", "idle", "control-result",
                 "delivered"},
        "services": {"ready", "metrics", "deliver", "linked"},
    }

    def on_child_message(self, child: Child, message: dict, fds) -> None:
        op = message.get("op")
        allowed = op in self.ALLOWED_OPS.get(child.kind, ())
        if not allowed or child.dead:
            for fd in fds:
                os.close(fd)
            if not allowed:
                log.warn("{title} sent a message it may not send: {op!r}", title=child.title,
                         op=op)
            return
        getattr(self, "_on_" + op.replace("-", "_"))(child, message, fds)

    def _reply(self, child: Child, req, **fields) -> None:
        child.send(dict({"op": "reply", "req": req}, **fields))

    def _on_ready(self, child: Child, message, fds) -> None:
        child.ready = True
        queue, child.queue = child.queue, []
        for queued, qfds in queue:
            child.channel.send(queued, qfds)
        self._link_deliveries(child)
        self._tell_ready()

    # -- delivery links --------------------------------------------------------------

    def _link_deliveries(self, child: Child) -> None:
        """
        Link the services process with each pool worker of this
        generation once both are up (again), so that a virtual user's
        deliveries do not pass through here (L{imapd.process.delivery}).
        """
        services = self.services
        if (not self.config.server.lmtp_listen or services is None or not services.ready
                or services.dead or services.retiring):
            return
        if child is services:
            workers = [w for w in self.pool if w.ready and not w.dead and not w.retiring]
        elif child.kind == "pool" and child in self.pool:
            workers = [child]
        else:
            return
        for worker in workers:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            link = next(self._reqs)
            self.link_ends[link] = {services.id: ours, worker.id: theirs}
            services.send({"op": "link", "link": link, "index": worker.args["index"],
                           "workers": len(self.pool), "uid": os.getuid(),
                           "title": worker.title}, [ours.fileno()])
            worker.send({"op": "link", "link": link}, [theirs.fileno()])

    def _on_linked(self, child: Child, message, fds) -> None:
        """C{child} has its end of a link: our copy goes (else the link never sees EOF)."""
        for fd in fds:
            os.close(fd)
        self._drop_link_end(message.get("link"), child)

    def _drop_link_end(self, link, child: Child) -> None:
        ends = self.link_ends.get(link)
        if ends is None:
            return
        end = ends.pop(child.id, None)
        if end is not None:
            end.close()
        if not ends:
            del self.link_ends[link]

    def _tell_ready(self) -> None:
        """
        READY=1 for systemd once the auth process, every login process,
        every pool worker and the services process of the current
        generation are up: a connection is then served, not only queued.
        """
        from imapd import sdnotify

        if not self._owe_ready or self.stopping:
            return
        current = [self.auth, *self.logins, *self.pool, self.services]
        if all(c.ready for c in current if c is not None):
            self._owe_ready = False
            listening = dict.fromkeys(d for d, _s in self.listeners)
            sdnotify.ready(f"Serving {', '.join(listening)}; "
                           f"generation {self.generation}")

    def _on_admit(self, child: Child, message, fds) -> None:
        host = message.get("host")
        refused = self.connections.admit(host, self.limits, self.reactor.seconds())
        if refused is not None:
            self._reply(child, message["req"], refused=refused)
            return
        from imapd import metrics

        metrics.RECORDER.inc("imapd_sessions_total")
        slot = next(self._slot_ids)
        self.slots[slot] = [host, child.id]
        self._reply(child, message["req"], slot=slot)

    def _on_release(self, child: Child, message, fds) -> None:
        slot = message.get("slot")
        entry = self.slots.get(slot)
        if entry is not None and entry[1] == child.id:
            self._release(slot)

    def _release(self, slot: int) -> None:
        entry = self.slots.pop(slot, None)
        if entry is not None:
            self.connections.release(entry[0])

    def _on_auth(self, child: Child, message, fds) -> None:
        host = message.get("host")
        limits = self.limits
        if self.failures.blocked(host, self.reactor.seconds(), limits.max_failed_logins_per_address,
                                 limits.failed_login_decay):
            self._reply(child, message["req"], result="blocked")
            return
        req = next(self._reqs)
        self.auth_pending[req] = (child, message["req"], host, self.auth)
        self.auth.send({"op": "auth", "req": req, "user": message["user"],
                        "password": message["password"], "relay": message.get("relay")})

    def _on_auth_result(self, child: Child, message, fds) -> None:
        self._auth_done(message.get("req"), message.get("record"),
                        error=bool(message.get("unavailable")), owner=message.get("owner"),
                        reason=message.get("reason"))

    def _auth_done(self, req, record, error: bool = False, owner=None, reason=None) -> None:
        entry = self.auth_pending.pop(req, None)
        if entry is None:
            return
        login, lreq, host, _auth = entry
        if error:
            self._reply(login, lreq, result="error")
            return
        if record is None:
            self.failures.failed(host, self.reactor.seconds(), self.limits.failed_login_decay)
            self._reply(login, lreq, result="fail", reason=reason)
            return
        if owner is not None:
            # Another node owns the user ([cluster] relay): the login
            # process relays the session there; nothing is handed off.
            self._reply(login, lreq, result="ok", record=record, owner=owner)
            return
        token = secrets.token_hex(16)
        # Only a session this master authenticated can be handed off, and
        # only by the login process that asked (a login process that went
        # wrong cannot make up a user).
        self.granted[token] = (login.id, record, self.reactor.seconds())
        self._expire_grants()
        self._reply(login, lreq, result="ok", record=record, token=token)

    def _expire_grants(self) -> None:
        old = self.reactor.seconds() - 600
        for token, (_cid, _record, when) in list(self.granted.items()):
            if when < old:
                del self.granted[token]

    def _on_handoff(self, child: Child, message, fds) -> None:
        req = message.get("req")
        grant = self.granted.pop(message.get("token"), None)
        if len(fds) != 1 or grant is None or grant[0] != child.id:
            for fd in fds:
                os.close(fd)
            log.error("{title} handed off a session it did not log in", title=child.title)
            self._reply(child, req, ok=False, reason="Login failed")
            return
        record = record_from_json(grant[1])
        state = dict(message["state"], record=grant[1])
        worker, refusal = self._worker_for(record, state)
        if worker is None:
            os.close(fds[0])
            self._reply(child, req, ok=False, reason=refusal)
            return
        wreq = next(self._reqs)
        self.handoffs[wreq] = (child, req, fds[0], worker, state.get("slot"))
        worker.send({"op": "session", "req": wreq, "state": state,
                     "family": message.get("family")}, [fds[0]])

    def _worker_for(self, record, state: dict):
        """The worker of C{record} (started if needed), or (None, why not)."""
        if in_pool(record, os.getuid()):
            return self.pool[pool_index(record.name, len(self.pool))], None
        if os.getuid() != 0:
            log.error("Login of {user} refused: uid {uid} is not the server's, and serving "
                      "other uids needs the master to start as root", user=record.name,
                      uid=record.uid)
            return None, "This server cannot serve this user"
        worker = self.users.get(record.name)
        if worker is None or worker.dead or worker.retiring:
            peer = (state.get("peer") or ["?"])[0]
            worker = Child("user", f"worker {record.name} {peer}", self.generation,
                           {"user": record_to_json(record)})
            worker.name_key = record.name
            self.users[record.name] = worker
            self.spawn(worker)
        return worker, None

    def _on_adopted(self, child: Child, message, fds) -> None:
        self._handoff_done(message.get("req"), bool(message.get("ok")),
                           "The mail worker cannot take the session")

    def _handoff_done(self, req, ok: bool, reason: str) -> None:
        entry = self.handoffs.pop(req, None)
        if entry is None:
            return
        login, lreq, fd, worker, slot = entry
        os.close(fd)
        if ok and slot in self.slots:
            self.slots[slot][1] = worker.id
        self._reply(login, lreq, ok=ok, reason=None if ok else reason)

    def control_request(self, request: dict):
        """
        C{imapd-admin who} or C{kick} (L{imapd.control}): the logged-in
        sessions live in the mail workers, so ask each and merge.
        """
        from imapd.control import Gather

        workers = {c.id: c.title for c in self.children.values()
                   if c.kind in ("pool", "user") and c.ready and not c.dead}
        req = next(self._reqs)
        gather = self.control_pending[req] = Gather(self.reactor, workers)

        def done(result):
            self.control_pending.pop(req, None)
            return result
        gather.deferred.addBoth(done)
        for child_id in workers:
            self.children[child_id].send({"op": "control", "req": req, "request": request})
        return gather.deferred

    def _on_control_result(self, child: Child, message, fds) -> None:
        gather = self.control_pending.get(message.get("req"))
        if gather is not None:
            gather.got(child.id, message.get("result"))

    def _on_deliver(self, child: Child, message, fds) -> None:
        """
        The services process asks for a delivery: it goes to the
        recipient's worker, as that user's logins do (started if needed),
        with the message's descriptor if it travels as one.
        """
        req = message.get("req")
        try:
            record = record_from_json(message.get("record") or {})
        except Exception:
            record = None
        if record is None or record.uid == 0 or len(fds) > 1:
            for fd in fds:
                os.close(fd)
            log.error("{title} asked for a delivery that is not allowed", title=child.title)
            self._reply(child, req, ok=False, code=451, status="4.3.0",
                        text="Temporary internal error")
            return
        worker, refusal = self._worker_for(record, {"peer": ["lmtp"]})
        if worker is None:
            for fd in fds:
                os.close(fd)
            # RFC 3463 X.3.5: the system is not configured to deliver this.
            self._reply(child, req, ok=False, code=451, status="4.3.5", text=refusal)
            return
        wreq = next(self._reqs)
        self.deliveries[wreq] = (child, req, list(fds), worker)
        worker.send(dict(message, req=wreq), fds)

    def _on_delivered(self, child: Child, message, fds) -> None:
        for fd in fds:
            os.close(fd)
        entry = self.deliveries.get(message.get("req"))
        if entry is not None and entry[3] is child:
            self._delivery_done(message["req"], {k: message.get(k) for k in (
                "ok", "mailbox", "uid", "code", "status", "text")})

    def _delivery_done(self, req, outcome: Optional[dict]) -> None:
        entry = self.deliveries.pop(req, None)
        if entry is None:
            return
        services, sreq, fds, _worker = entry
        for fd in fds:
            os.close(fd)
        if outcome is not None:
            self._reply(services, sreq, **outcome)

    def _on_idle(self, child: Child, message, fds) -> None:
        """A system user's worker had no session for the grace period."""
        if self.users.get(getattr(child, "name_key", None)) is child:
            del self.users[child.name_key]
        self.retire(child)


def _failure_ledger():
    from imapd.auth.throttle import FailureLedger

    return FailureLedger()


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
