# -*- test-case-name: tests.process.test_processes -*-
"""
C{imapd: auth}: checks passwords for the login processes.

It runs L{imapd.auth.authenticator.Authenticator} under the master's uid
(root when the master started as root, so that a 0600 passwd-file or the
shadow file are readable), and answers the C{auth} requests the master
relays from login processes with the user's record, or none.  Login
processes never read the passwd-file themselves.

With C{[cluster] relay} it also says, for a good password, which other
node owns the user (L{imapd.cluster.relay.relay_target}; blocking reads of
the host table and placements, in a thread): the login process then relays
the session there instead of handing it to a worker.  It reads the table
here because login processes may run unprivileged, even chrooted.
"""

from __future__ import annotations

from twisted.cred.error import LoginFailed, UnauthorizedLogin
from twisted.logger import Logger

from imapd.auth.errors import AuthUnavailable
from imapd.process.wire import record_to_json, unb64

__all__ = ["AuthRole", "build_authenticator"]

log = Logger(namespace="imapd.auth")


def build_authenticator(config, effective):
    """
    The L{Authenticator} of the configuration
    (L{imapd.auth.build_authenticator}: passwd-file or PAM passwords,
    passwd-file or system users), as the single-process portal builds it.
    """
    from imapd.auth import build_authenticator as configured

    return configured(config, effective)


class AuthRole:
    def __init__(self, config, effective, args) -> None:
        self.config = config
        self.effective = effective
        self.pending = 0
        self.retiring = False

    def prepare(self) -> None:
        self.authenticator = build_authenticator(self.config, self.effective)
        self.directory = None
        section = self.config.cluster
        if section.relay and section.hosts_file and section.node:
            from imapd.cluster.owner import directory_from_config

            # It records no placements: the owner's worker does.
            self.directory = directory_from_config(section, writer=f"{section.node}~auth")

    def start(self, reactor, control) -> None:
        self.reactor = reactor
        self.control = control
        control.send({"op": "ready"})

    def control_lost(self) -> None:
        if self.reactor.running:
            self.reactor.stop()

    def on_message(self, channel, message: dict, fds) -> None:
        op = message.get("op")
        if op == "auth":
            self._authenticate(message)
        elif op == "retire":
            self.retiring = True
            self._maybe_exit()

    def _authenticate(self, message: dict) -> None:
        req = message["req"]
        self.pending += 1
        d = self.authenticator.authenticate(unb64(message["user"]), unb64(message["password"]))

        def ok(record):
            relay = message.get("relay")
            if self.directory is None or relay is None:
                return answer(record, None)
            from twisted.internet import threads

            from imapd.cluster.relay import relay_target

            looked = threads.deferToThread(relay_target, self.directory,
                                           self.config.cluster.node, record.name,
                                           relay.get("ttl"), relay.get("peer"), record=False)

            def cannot(failure):
                log.warn("Cannot tell the owner of {user!r}, serving it here: {e}",
                         user=record.name, e=failure.value)
            return looked.addErrback(cannot).addCallback(lambda host: answer(record, host))

        def answer(record, host):
            owner = None if host is None else {"address": host.address, "port": host.port}
            self.control.send({"op": "auth-result", "req": req, "record": record_to_json(record),
                               "owner": owner})

        def failed(failure):
            if failure.check(AuthUnavailable):
                # The directory is down: not a wrong password.  The login
                # process answers NO [UNAVAILABLE]; the address is not
                # counted as failing.
                log.error("Authentication of {user!r} unavailable: {reason}",
                          user=unb64(message["user"]).decode("utf-8", "replace"),
                          reason=str(failure.value))
                self.control.send({"op": "auth-result", "req": req, "record": None,
                                   "unavailable": True})
                return
            if not failure.check(UnauthorizedLogin, LoginFailed):
                log.failure("authentication error", failure)
            # Why, for the login process's one log line (never the client).
            self.control.send({"op": "auth-result", "req": req, "record": None,
                               "reason": getattr(failure.value, "reason", None)})

        def done(_):
            self.pending -= 1
            self._maybe_exit()
        d.addCallbacks(ok, failed).addBoth(done)

    def _maybe_exit(self) -> None:
        if self.retiring and not self.pending and self.reactor.running:
            self.reactor.stop()
