# -*- test-case-name: tests.process.test_services -*-
"""
C{imapd: services}: LMTP delivery and the cluster's listeners and work.

The master binds the C{lmtp_listen}, C{[cluster] socketmap_listen} and
C{auth_http_listen} listeners (ports below 1024 as root) and hands them
to this process, which adopts them with the factories the single process
uses (L{imapd.delivery.lmtp.build_lmtp_factory},
L{imapd.cluster.service.cluster_listener_factories}) and runs the
cluster's periodic work (placements, health checks:
L{imapd.cluster.service.add_cluster_work}).  It runs under the master's
uid.  It speaks LMTP and looks recipients up; each recipient's store work
runs in the mail worker that serves the user's logins, as the user's uid
for a system user (L{imapd.process.delivery}: on a link of its own to
each pool worker, else through the master), which also wakes that user's
IDLE sessions there.

When a new generation takes over (SIGHUP) it stops accepting, lets the
LMTP connections it has finish, and exits.
"""

from __future__ import annotations

import os

from twisted.application import service
from twisted.logger import Logger

from imapd.process.channel import Requests

__all__ = ["ServicesRole", "services_wanted", "service_listeners"]

log = Logger(namespace="imapd.services")


def service_listeners(config) -> list[tuple[str, str]]:
    """The (option, description) of every listener this process serves."""
    cluster = config.cluster
    return ([("lmtp_listen", d) for d in config.server.lmtp_listen]
            + [("socketmap_listen", d) for d in cluster.socketmap_listen]
            + [("auth_http_listen", d) for d in cluster.auth_http_listen])


def services_wanted(config) -> bool:
    """Whether the configuration needs the services process at all."""
    from imapd.cluster.service import cluster_wanted

    return bool(service_listeners(config)) or cluster_wanted(config.cluster)


class ServicesRole:
    def __init__(self, config, effective, args: dict, listener_fds: list[int]) -> None:
        self.config = config
        self.effective = effective
        self.args = args
        self.listener_fds = listener_fds
        self.ports: list = []
        self.lmtp = None
        self.retiring = False
        self.work = service.MultiService()
        #: deliveries waiting for the master's reply
        self.requests = Requests()
        #: the direct links to this generation's pool workers
        self.links = None

    def prepare(self) -> None:
        """Nothing needs privileges: the listeners are bound already."""

    def start(self, reactor, control) -> None:
        from imapd.cluster.service import (
            add_cluster_work,
            cluster_listener_factories,
            log_cluster_listener,
        )
        from imapd.delivery.lmtp import build_lmtp_factory
        from imapd.process.delivery import DeliveryLinks
        from imapd.process.sysutil import adopt_listener
        from imapd.server import StoragePool

        config, effective = self.config, self.effective
        self.reactor = reactor
        self.control = control
        self.links = DeliveryLinks(reactor)
        storage = config.storage
        pool = StoragePool(storage.threads, per_key=storage.threads_per_mailbox or None,
                           stuck_after=storage.stuck_after)
        pool.start()
        reactor.addSystemEventTrigger("before", "shutdown", pool.stop)
        factories = {}
        if config.server.lmtp_listen:
            self.lmtp = build_lmtp_factory(config, effective, reactor, pool,
                                           deliver=self.deliver)
            for description in config.server.lmtp_listen:
                factories[("lmtp_listen", description)] = self.lmtp
        directory = add_cluster_work(config, self.work)
        if directory is not None:
            for option, description, factory in cluster_listener_factories(
                    config, effective.passwd_file, directory):
                factories[(option, description)] = factory
        self.work.startService()
        reactor.addSystemEventTrigger("before", "shutdown", self._stop_work)
        for spec, fd in zip(self.args["listeners"], self.listener_fds):
            option, description = spec["option"], spec["description"]
            factory = factories.get((option, description))
            try:
                if factory is None:
                    # Reloaded without it: bound until the next start.
                    log.warn("{option} {description} is no longer configured; it accepts "
                             "nothing until the next start", option=option,
                             description=description)
                    continue
                self.ports.append(adopt_listener(reactor, fd, spec["family"], factory))
            finally:
                os.close(fd)
            if option == "lmtp_listen":
                log.info("LMTP listener {description}", description=description)
            else:
                log_cluster_listener(option, description)
        control.send({"op": "ready"})

    def deliver(self, recipient, message, sender: str):
        """
        Deliver in the recipient's mail worker (on its link, else through
        the master): a Deferred of (mailbox, UID), failing with a
        DeliveryError.
        """
        from imapd.process.delivery import delivery_outcome, delivery_request

        request, fds = delivery_request(recipient, message, sender)
        # The message (and so its file) stays open until this Deferred has
        # fired: the master and the worker have the descriptor by then.
        d = self.links.send(recipient, request, fds) if self.links is not None else None
        if d is None:
            d = self.requests.send(self.control, request, fds)
        return d.addCallback(delivery_outcome)

    def on_message(self, channel, message: dict, fds) -> None:
        op = message.get("op")
        if op == "link":
            self._link(message, fds)
            return
        for fd in fds:
            os.close(fd)
        if op == "reply":
            self.requests.answer(message)
        elif op == "retire":
            self.retire()

    def _link(self, message: dict, fds) -> None:
        """A delivery link to a pool worker (L{imapd.process.delivery.DeliveryLinks})."""
        from imapd.process.wire import ProtocolError

        if len(fds) == 1 and self.links is not None and not self.retiring:
            try:
                self.links.add(message, fds[0])  # which closes the descriptor
            except (ProtocolError, OSError) as e:
                log.error("A delivery link could not be set up: {error}", error=e)
        else:
            for fd in fds:
                os.close(fd)
        # The master closes its copy of our end now.
        self.control.send({"op": "linked", "link": message.get("link")})

    def control_lost(self) -> None:
        from imapd.delivery.core import TemporaryFailure

        self.requests.fail_all(TemporaryFailure("The master is gone, try again later"))
        if self.reactor.running:
            self.reactor.stop()

    def retire(self) -> None:
        """A new generation took over: accept nothing more, go when idle."""
        if self.retiring:
            return
        self.retiring = True
        if self.links is not None:
            # What is still to deliver goes through the master, to the
            # new generation's workers.
            self.links.close()
        for port in self.ports:
            port.stopListening()
        self.ports = []
        # The new generation's services process does the periodic work.
        self._stop_work()
        self._maybe_exit()

    def _stop_work(self):
        if self.work.running:
            return self.work.stopService()
        return None

    def _maybe_exit(self) -> None:
        if not self.reactor.running:
            return
        if self.lmtp is not None and self.lmtp.connections:
            # LMTP connections finish their transactions first.
            self.reactor.callLater(0.1, self._maybe_exit)
            return
        self.reactor.stop()
