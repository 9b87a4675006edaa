"""
Client text in log lines (issue 18 item 9): L{log_safe} escapes every
control character, the daemon's observer wrapper applies it to every
event, and the session's login lines use it.
"""

from pathlib import Path

import pytest
from twisted.logger import formatEvent, globalLogPublisher

from imapd.logtext import escaping_observer, log_safe


@pytest.mark.parametrize("value, expected", [
    ("plain user", "plain user"),
    ("a\r\nb", "a\\x0d\\x0ab"),
    ("\x1b[31mred\x07", "\\x1b[31mred\\x07"),
    ("del\x7f c1\x9b ls\u2028", "del\\x7f c1\\x9b ls\\u2028"),
    (b"bytes\r\xff", "bytes\\x0d\\xff"),
    ("Ünïcode", "Ünïcode"),
    (None, None),
    (42, 42),
])
def test_log_safe(value, expected):
    """Control characters become \\xNN; other text, None and numbers stay."""
    assert log_safe(value) == expected
    assert log_safe(log_safe(value)) == expected


def test_escaping_observer():
    """Every text, path and exception value of an event is escaped; log_* keys are not."""
    seen = []
    observe = escaping_observer(seen.append)
    observe({"log_format": "{a} {p} {e} {n}", "a": "x\ry", "p": Path("/m/\x1b"),
             "e": ValueError("bad\n"), "n": 3})
    assert formatEvent(seen[0]) == "x\\x0dy /m/\\x1b bad\\x0a 3"
    clean = {"log_format": "{a}", "a": "fine"}
    observe(clean)
    assert seen[1] is clean


def test_login_lines_escape_the_user(conv):
    """A failed login with CR and ESC in the user name logs them escaped."""
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        conv.send(b"a1 LOGIN {10}\r\n")
        conv.output()
        conv.send(b"x\r\x1b[2Jroot pw\r\n")
        conv.clock.advance(conv.context.limits.failed_login_delay)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert conv.lines()[-1].startswith("a1 NO")
    texts = [formatEvent(e) for e in events if e.get("event") == "login failed"]
    assert len(texts) == 1 and "user=x\\x0d\\x1b[2Jroot " in texts[0], texts


def test_logged_failure_traceback_is_escaped():
    """
    Issue 18: the traceback of a logged failure reaches the log file with
    the exception's text escaped whole (its CR-LF cannot start a forged
    line, its ESC cannot drive a terminal), its own lines still lines, and
    the failure still a Failure of the same exception.
    """
    from twisted.logger import formatEventAsClassicLogText
    from twisted.python.failure import Failure

    try:
        raise ValueError("no mailbox 'x\r\n2026-01-01 [forged] root logged in\x1b[2J'")
    except ValueError:
        failure = Failure()
    seen = []
    observe = escaping_observer(seen.append)
    observe({"log_format": "Unhandled error", "log_failure": failure, "log_time": 0.0})
    text = formatEventAsClassicLogText(seen[0])
    assert "\r" not in text and "\x1b" not in text
    assert "x\\x0d\\x0a2026-01-01 [forged] root logged in\\x1b[2J" in text
    # The traceback's own structure is kept: its lines, the raising line.
    lines = text.splitlines()
    assert lines[1].strip() == "Traceback (most recent call last):"
    assert any('raise ValueError("no mailbox' in line for line in lines)
    assert not any(line.startswith("2026-01-01") for line in lines)
    got = seen[0]["log_failure"]
    assert isinstance(got, Failure) and got.value is failure.value
    # The original is left as it was, for other observers.
    assert "\r\n2026-01-01" in failure.getTraceback()
