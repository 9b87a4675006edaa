"""
Built-in health checks: the probe's reading of a greeting and test login,
and the fall/rise counting that marks hosts down and up in the table.
"""

import pytest
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport

from imapd.cluster.health import HealthChecker, _Probe
from imapd.cluster.table import HostsFile

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def run_probe(lines, login=None, proxy_header=False):
    result = defer.Deferred()
    proto = _Probe(result, login, proxy_header)
    transport = StringTransport()
    proto.makeConnection(transport)
    for line in lines:
        proto.dataReceived(line + b"\r\n")
    if not result.called:
        proto.connectionLost(None)
    return result.result, transport


@pytest.mark.parametrize("lines,login,ok", [
    ([b"* OK [CAPABILITY IMAP4rev1] ready"], None, True),
    ([b"* BYE too many connections"], None, False),
    ([], None, False),
    ([b"* OK ready", b"h1 OK [CAPABILITY IMAP4rev1] Logged in"], ("probe", "pw"), True),
    ([b"* OK ready", b"h1 NO [AUTHENTICATIONFAILED] no"], ("probe", "pw"), False),
    ([b"* OK ready"], ("probe", "pw"), False),
])
def test_probe_reads_greeting_and_login(lines, login, ok):
    """A host is healthy on '* OK' (and a test login's OK when configured)."""
    (healthy, why), transport = run_probe(lines, login)
    assert healthy is ok, why
    if login is not None and lines:
        assert transport.value().startswith(b'h1 LOGIN "probe" "pw"\r\n')


def test_probe_opens_with_a_proxy_header():
    """
    With health_proxy_protocol the probe's first bytes are a PROXY v1
    UNKNOWN header (a haproxy: listener greets nobody before one); without
    it, nothing precedes the greeting.
    """
    (healthy, _), transport = run_probe([b"* OK ready"], ("probe", "pw"), proxy_header=True)
    assert not healthy  # no login answer
    assert transport.value().startswith(b'PROXY UNKNOWN\r\nh1 LOGIN "probe" "pw"\r\n')
    (healthy, _), transport = run_probe([b"* OK ready"])
    assert healthy and transport.value() == b""


class Checker:
    def __init__(self, tmp_path, fall=2, rise=2):
        self.hosts = HostsFile(str(tmp_path / "hosts.json"), fsync=False)
        for address in HOSTS:
            self.hosts.update(lambda t, a=address: t.add(a))
        self.clock = task.Clock()
        self.health = {a: True for a in HOSTS}
        self.checker = HealthChecker(self.hosts, 10, 5, fall, rise, reactor=self.clock,
                                     runner=defer.maybeDeferred)
        self.checker.probe = lambda reactor, address, port, timeout, login, header: \
            defer.succeed((self.health[address], "test"))
        self.checker.startService()

    def rounds(self, n):
        for _ in range(n):
            self.clock.advance(10)

    def up(self, address):
        return self.hosts.table().get(address).up


def test_fall_marks_down_and_rise_up(tmp_path):
    """Two failed rounds take .3 down; two good rounds bring it back."""
    c = Checker(tmp_path)
    c.health["127.0.0.3"] = False  # the first round ran at start, healthy
    c.rounds(1)
    assert c.up("127.0.0.3")
    c.rounds(1)
    host = c.hosts.table().get("127.0.0.3")
    assert (host.up, host.down_by) == (False, "health")
    c.health["127.0.0.3"] = True
    c.rounds(1)
    assert not c.up("127.0.0.3")
    c.rounds(1)
    assert c.up("127.0.0.3")
    assert c.up("127.0.0.2") and c.up("127.0.0.4")


def test_flapping_host_needs_consecutive_failures(tmp_path):
    """A failure between successes resets the count: no down."""
    c = Checker(tmp_path, fall=2)
    for ok in (False, True, False, True):
        c.health["127.0.0.2"] = ok
        c.rounds(1)
        assert c.up("127.0.0.2")


def test_admin_down_stays_down(tmp_path):
    """A host an admin took down is not put up by the checks."""
    c = Checker(tmp_path)
    c.hosts.update(lambda t: t.set_up("127.0.0.4", False))
    c.rounds(5)
    host = c.hosts.table().get("127.0.0.4")
    assert (host.up, host.down_by) == (False, "admin")


def test_admin_down_overrides_health_down(tmp_path):
    """An admin's down of a host the checks took down keeps it down for good."""
    c = Checker(tmp_path)
    c.health["127.0.0.2"] = False
    c.rounds(2)
    assert c.hosts.table().get("127.0.0.2").down_by == "health"
    c.hosts.update(lambda t: t.set_up("127.0.0.2", False))
    assert c.hosts.table().get("127.0.0.2").down_by == "admin"
    c.health["127.0.0.2"] = True
    c.rounds(5)
    assert not c.up("127.0.0.2")


def test_changes_call_on_change(tmp_path):
    """A round that changed the table calls on_change once (export files)."""
    c = Checker(tmp_path)
    calls = []
    c.checker.on_change = lambda: calls.append(c.hosts.table().epoch)
    c.rounds(2)
    assert calls == []  # all healthy: nothing changed
    c.health["127.0.0.2"] = False
    c.health["127.0.0.4"] = False
    c.rounds(2)
    assert calls == [5]  # both went down in one round: one call, after both
