# -*- test-case-name: tests.process.test_processes -*-
"""
What a forked child of the spawner does first: take its identity (title,
uid), tie its life to the spawner's, install a reactor, send its log to
the master, and run its role (L{imapd.process.authproc},
L{imapd.process.login}, L{imapd.process.worker}, L{imapd.process.services}).

The spawn request says: C{kind} (auth, login, pool, user, services), C{title},
C{config} and C{effective} (pickled L{conf.Config} and
L{imapd.defaults.Effective}, base64: the master and the spawner trust each
other), C{args} for the role; descriptor 0 is the child's control socket,
the others the listeners (login and services processes).
"""

from __future__ import annotations

import json
import os
import pickle
import sys

from imapd.process.wire import unb64

__all__ = ["run", "child_log_observer"]


def child_log_observer(level: str, stream=None):
    """
    A log observer that writes each event as one JSON line
    (C{{"l": level, "ns": namespace, "t": text}}) on stdout, which the
    spawner shares with the master: the master logs it again through its
    own observers (L{imapd.process.master}).  Client text is escaped
    (L{imapd.logtext.escaping_observer}); events below C{level} are dropped.
    """
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
    )

    from imapd.logtext import escaping_observer, event_text, quiet_predicate

    fd = (stream or sys.stdout).fileno()

    def observe(event: dict) -> None:
        text = event_text(event)
        level_ = event.get("log_level")
        line = json.dumps({"l": level_.name if level_ is not None else "info",
                           "ns": event.get("log_namespace", ""), "t": text}) + "\n"
        data = line.encode("utf-8", "backslashreplace")
        while data:
            try:
                data = data[os.write(fd, data):]
            except InterruptedError:
                continue
            except OSError:
                return

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return FilteringLogObserver(escaping_observer(observe), [predicate, quiet_predicate()])


def run(request: dict, fds: list[int], spawner: int) -> int:
    from imapd.process.sysutil import die_with_parent, set_title

    kind = request["kind"]
    config = pickle.loads(unb64(request["config"]))
    effective = pickle.loads(unb64(request["effective"]))
    args = request.get("args", {})
    # The shared-storage decisions (NFS flushing, mbox lock methods) hold
    # in every process that touches mail, as in the single process.
    from storage import nfs

    mail = config.mail
    nfs.configure(mail.nfs_storage, mail.nfs_index, mail.mbox_read_locks, mail.mbox_write_locks)
    set_title(request.get("title") or f"imapd: {kind}")

    # Before the reactor: what needs privileges (listener TLS contexts,
    # then the change of uid), then the parent-death signal, which a
    # change of uid clears.
    if kind == "login":
        from imapd.process import login

        role = login.LoginRole(config, effective, args, fds[1:])
    elif kind in ("pool", "user"):
        from imapd.process import worker

        role = worker.WorkerRole(config, effective, args)
    elif kind == "services":
        from imapd.process import services

        role = services.ServicesRole(config, effective, args, fds[1:])
    elif kind == "auth":
        from imapd.process import authproc

        role = authproc.AuthRole(config, effective, args)
    else:
        raise SystemExit(f"imapd: unknown child kind {kind!r}")
    role.prepare()
    die_with_parent(spawner)

    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([child_log_observer(config.log.level)],
                                     redirectStandardIO=False)
    from imapd.process.channel import Channel, adopt_channel

    control = Channel(role.on_message, lambda _c: role.control_lost(), name=kind)
    adopt_channel(reactor, fds[0], control)
    role.start(reactor, control)
    if config.metrics.listen:
        # What this process counts goes to the master's endpoint.
        from imapd import metrics

        metrics.watch_locks()
        metrics.start_reporting(reactor, control.send)
    reactor.run()
    return 0
