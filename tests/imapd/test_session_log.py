"""
The log line every session ends with (issue 16 item 8): connections that
never log in, sessions after failed logins, a dropped connection told
apart from LOGOUT, one line per failed login with the address.
"""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure


def _close(conv) -> None:
    """The client goes away (as the reactor reports it)."""
    conv.proto.connectionLost(Failure(ConnectionDone()))


def _lines(events) -> list[str]:
    """The info-or-higher lines of the session events."""
    return [formatEvent(e) for e in events
            if e["log_level"] >= LogLevel.info and e.get("event")]


def test_connection_without_login_leaves_a_line(conv):
    """A client that connects and goes without a login is logged."""
    with capturedLogs() as events:
        conv.ok("a1 CAPABILITY")
        _close(conv)
    lines = _lines(events)
    assert len(lines) == 1, lines
    assert lines[0].startswith("disconnected before login user= ")
    assert "remote=127.0.0.1" in lines[0]
    assert lines[0].endswith("reason=connection closed by the client")


def test_session_after_failed_logins_leaves_a_line(conv):
    """
    A failed login is one info line with the address and a reason; the
    session's end says how many logins failed.
    """
    with capturedLogs() as events:
        conv.send(b"a1 LOGIN demo wrong\r\n")
        conv.clock.advance(conv.context.limits.failed_login_delay)
        assert conv.lines()[-1].startswith("a1 NO [AUTHENTICATIONFAILED]")
        _close(conv)
    lines = _lines(events)
    assert len(lines) == 2, lines
    assert lines[0].startswith("login failed user=demo ")
    assert "remote=127.0.0.1" in lines[0] and " reason=" in lines[0]
    assert lines[1].startswith("disconnected before login ")
    assert "failed_logins=1" in lines[1]
    every = [formatEvent(e) for e in events if e["log_level"] >= LogLevel.info]
    assert len(every) == 2, every


def test_dropped_connection_is_not_a_logout(authed):
    """A logged-in client that drops the connection is "disconnected"."""
    with capturedLogs() as events:
        _close(authed)
    lines = _lines(events)
    assert len(lines) == 1 and lines[0].startswith("disconnected user=demo "), lines
    assert "reason=connection closed by the client" in lines[0]


def test_logout_is_a_logout(authed):
    """LOGOUT ends with "logout" and no reason."""
    with capturedLogs() as events:
        authed.ok("a9 LOGOUT")
        _close(authed)
    lines = _lines(events)
    assert len(lines) == 1 and lines[0].startswith("logout user=demo "), lines
    assert "reason=" not in lines[0]


def test_server_bye_is_the_reason(conv):
    """When the server closes (too many failed logins), its BYE is the reason."""
    with capturedLogs() as events:
        for i in range(conv.context.limits.max_failed_logins):
            conv.send(b"a%d LOGIN demo wrong\r\n" % i)
            conv.clock.advance(conv.context.limits.failed_login_delay)
        assert conv.lines()[-1] == "* BYE Too many failed logins"
        _close(conv)
    last = _lines(events)[-1]
    assert last.startswith("disconnected before login ")
    assert last.endswith("reason=Too many failed logins")


@pytest.mark.parametrize("text", [
    "IMAPFactory starting on 1143",
    "(TCP Port 1143 Closed)",
    "LoginFactory (TLS) starting on 57041",
    "IMAPFactory starting on '/run/imapd/imap.sock'",
    "Starting factory <imapd.server.IMAPFactory object at 0x7f00>",
    "Stopping factory <imapd.server.IMAPFactory object at 0x7f00>",
])
def test_twisted_listener_noise_dropped(text):
    """Twisted's listener and factory lines are not logged at info."""
    from twisted.logger import PredicateResult

    from imapd.logtext import quiet_predicate

    predicate = quiet_predicate()
    event = {"log_level": LogLevel.info, "log_format": "{t}", "t": text}
    assert predicate(event) == PredicateResult.no
    event["log_level"] = LogLevel.error
    assert predicate(event) == PredicateResult.maybe
    other = {"log_level": LogLevel.info, "log_format": "Listener tcp:143"}
    assert predicate(other) == PredicateResult.maybe


def test_own_events_pass_the_noise_filter_unformatted():
    """
    The noise filter formats no event of ours (the observer formats it
    once, later), but a factory line under our factory's namespace
    (Twisted names it after the factory's class) is still dropped.
    """
    from twisted.logger import PredicateResult

    from imapd.logtext import quiet_predicate

    formatted = []

    class Counted:
        def __format__(self, spec):
            formatted.append(spec)
            return "alice"

    class OurFactory:
        def __repr__(self):
            return "<imapd.delivery.lmtp.LMTPFactory object at 0x7f00>"

    predicate = quiet_predicate()
    ours = {"log_level": LogLevel.info, "log_namespace": "imapd.lmtp",
            "log_format": "Delivered to {user}", "user": Counted()}
    assert predicate(ours) == PredicateResult.maybe
    assert formatted == []
    factory_line = {"log_level": LogLevel.info,
                    "log_namespace": "imapd.delivery.lmtp.LMTPFactory",
                    "log_format": "Starting factory {factory!r}", "factory": OurFactory()}
    assert predicate(factory_line) == PredicateResult.no


def test_factory_is_quiet():
    """The IMAP factory itself does not log its start and stop."""
    from imapd.server import IMAPFactory

    assert IMAPFactory.noisy is False
