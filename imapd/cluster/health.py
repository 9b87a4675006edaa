# -*- test-case-name: tests.imapd.cluster.test_health -*-
"""
Built-in health checks of the hosts in the table (Dovecot has none; its
sites run poolmon).

Every C{health_interval} seconds each host is probed: a TCP connection to
its IMAP port must greet with C{* OK} within C{health_timeout} seconds
(a refused connection fails at once, a hung one when the timeout ends),
and with C{health_login} configured a test LOGIN must succeed too.  With
C{health_proxy_protocol} each probe opens with the PROXY v1 header
C{PROXY UNKNOWN} (the header's "a proxy's own connection"), because a
host's table port may be a C{haproxy:} listener (nginx's
C{proxy_protocol on} in front), which greets nobody before its header.  An up
host that fails C{health_fall} probes in a row is marked down (its users
are placed again by the ring); a host the checks took down comes back up
after C{health_rise} good probes in a row, and then takes new users only.
A host an admin took down is probed but left down.  Several nodes may
run the checks: marking a host down twice changes nothing.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet import defer, error, protocol, threads
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from imapd.cluster.periodic import Periodic

__all__ = ["probe", "HealthChecker"]

log = Logger(namespace="imapd.cluster.health")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Probe(LineOnlyReceiver):
    """Reads the greeting, optionally logs in, and reports once."""

    delimiter = b"\r\n"
    MAX_LENGTH = 8192

    def __init__(self, result: defer.Deferred, login: Optional[tuple[str, str]],
                 proxy_header: bool = False) -> None:
        self.result = result
        self.login = login
        self.proxy_header = proxy_header
        self.greeted = False

    def connectionMade(self) -> None:
        if self.proxy_header:
            # HAProxy's PROXY protocol v1: UNKNOWN says the connection is
            # the sender's own; the host serves it as from our address.
            self.transport.write(b"PROXY UNKNOWN\r\n")

    def lineReceived(self, line: bytes) -> None:
        if not self.greeted:
            self.greeted = True
            if not line.startswith(b"* OK"):
                return self._done(False, f"greeting {line[:80]!r}")
            if self.login is None:
                return self._done(True, "greeted")
            user, password = self.login
            self.sendLine(f"h1 LOGIN {_quote(user)} {_quote(password)}".encode("utf-8"))
            return None
        if line.startswith(b"h1 "):
            ok = line.startswith(b"h1 OK")
            self._done(ok, "logged in" if ok else f"login answered {line[:80]!r}")

    def _done(self, ok: bool, why: str) -> None:
        if not self.result.called:
            self.result.callback((ok, why))
        if ok and self.login is not None:
            self.sendLine(b"h2 LOGOUT")
        self.transport.loseConnection()

    def connectionLost(self, reason) -> None:
        if not self.result.called:
            self.result.callback((False, "connection closed before an answer"))


def probe(reactor, address: str, port: int, timeout: float,
          login: Optional[tuple[str, str]] = None,
          proxy_header: bool = False) -> defer.Deferred:
    """
    Probe one host.

    @param proxy_header: start with a PROXY v1 C{UNKNOWN} header.

    @return: a Deferred firing with (healthy, why); it never fails.
    """
    from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint

    result: defer.Deferred = defer.Deferred()
    kind = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
    endpoint = kind(reactor, address, port, timeout=timeout)
    connecting = endpoint.connect(protocol.Factory.forProtocol(lambda: _Probe(result, login, proxy_header)))

    def not_connected(failure):
        if not result.called:
            reason = failure.value
            why = ("connection refused" if failure.check(error.ConnectionRefusedError)
                   else f"cannot connect: {reason}")
            result.callback((False, why))
    connecting.addErrback(not_connected)

    def hung():
        if not result.called:
            result.callback((False, f"no answer in {timeout:g}s"))
            connecting.addCallback(
                lambda proto: proto is not None and proto.transport.abortConnection())
            connecting.cancel()
    timer = reactor.callLater(timeout, hung)
    result.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])
    return result


class HealthChecker(Periodic):
    """
    Probes every host of the table each C{interval} and marks hosts down
    and up (see the module docstring).
    """

    failure_message = "health check round failed"

    def __init__(self, hosts, interval: float, timeout: float, fall: int, rise: int,
                 login: Optional[tuple[str, str]] = None, reactor=None, runner=None,
                 on_change=None, proxy_header: bool = False) -> None:
        """
        @param on_change: called (in the runner) after the checks changed
            the table, e.g. to rewrite the export files.
        @param proxy_header: open each probe with a PROXY header.
        """
        if reactor is None:
            from twisted.internet import reactor
        super().__init__(interval, reactor, now=True)
        self.hosts = hosts
        self.timeout = timeout
        self.fall = fall
        self.rise = rise
        self.login = login
        self.reactor = reactor
        self.runner = threads.deferToThread if runner is None else runner
        self.probe = probe
        self.on_change = on_change
        self.proxy_header = proxy_header
        #: address -> (consecutive good, consecutive bad)
        self.streaks: dict[str, tuple[int, int]] = {}

    def work(self):
        return defer.ensureDeferred(self._round())

    async def _round(self) -> None:
        table = await self.runner(self.hosts.table)
        hosts = list(table.hosts)
        results = await defer.gatherResults(
            [self.probe(self.reactor, h.address, h.port, self.timeout, self.login,
                        self.proxy_header)
             for h in hosts])
        for address in set(self.streaks) - {h.address for h in hosts}:
            del self.streaks[address]
        changed = False
        for host, (ok, why) in zip(hosts, results):
            good, bad = self.streaks.get(host.address, (0, 0))
            good, bad = (good + 1, 0) if ok else (0, bad + 1)
            self.streaks[host.address] = (good, bad)
            if host.up and bad >= self.fall:
                log.warn("Host {host} failed {n} health checks ({why}): marking it down",
                         host=host.address, n=bad, why=why)
                await self.runner(self.hosts.update,
                                  lambda t, a=host.address: t.set_up(a, False, by="health"))
                changed = True
            elif not host.up and host.down_by == "health" and good >= self.rise:
                log.warn("Host {host} passed {n} health checks: marking it up",
                         host=host.address, n=good)
                await self.runner(self.hosts.update, lambda t, a=host.address: _health_up(t, a))
                changed = True
        if changed and self.on_change is not None:
            await self.runner(self.on_change)


def _health_up(table, address: str):
    """Up again, unless an admin took it down meanwhile."""
    host = table.get(address)
    if host is None or host.up or host.down_by != "health":
        return table
    return table.set_up(address, True)
