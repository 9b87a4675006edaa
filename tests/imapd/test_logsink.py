"""
Logging to syslog and to the journal with levels (L{imapd.logsink}),
received on a local syslog socket.
"""

from __future__ import annotations

import io
import os
import socket

import pytest
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from imapd.logsink import JournalObserver, SyslogObserver


def _event(level, text, **extra):
    return dict({"log_level": level, "log_format": "{t}", "t": text,
                 "log_namespace": "imapd.test"}, **extra)


@pytest.fixture
def syslog_socket(tmp_path):
    path = str(tmp_path / "log")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


@pytest.mark.parametrize("level, severity", [
    (LogLevel.debug, 7), (LogLevel.info, 6), (LogLevel.warn, 4),
    (LogLevel.error, 3), (LogLevel.critical, 2),
])
def test_syslog_severity_per_level(syslog_socket, level, severity):
    """Each level has its syslog severity under the mail facility (2)."""
    path, sock = syslog_socket
    SyslogObserver(path, "mail")(_event(level, "hello"))
    assert sock.recv(4096) == (f"<{2 * 8 + severity}>imapd[{os.getpid()}]: "
                               "[imapd.test] hello").encode()


def test_syslog_facility_and_traceback(syslog_socket):
    """Another facility; a failure's traceback follows, a datagram per line."""
    path, sock = syslog_socket
    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    SyslogObserver(path, "local3")(_event(LogLevel.critical, "it broke", log_failure=failure))
    first = sock.recv(4096).decode()
    assert first.startswith(f"<{19 * 8 + 2}>imapd[") and first.endswith("it broke")
    rest = []
    sock.settimeout(0.5)
    try:
        while True:
            rest.append(sock.recv(4096).decode())
    except socket.timeout:
        pass
    assert any("ValueError: boom" in line for line in rest)
    assert all(line.startswith(f"<{19 * 8 + 2}>") for line in rest)


def test_syslog_down_is_not_fatal(tmp_path, syslog_socket):
    """No syslog daemon: lines are lost, the server goes on; found again later."""
    path, sock = syslog_socket
    observer = SyslogObserver(str(tmp_path / "missing"), "mail")
    observer(_event(LogLevel.info, "lost"))
    observer.path = path
    observer(_event(LogLevel.warn, "found"))
    assert sock.recv(4096).endswith(b"found")


def test_journal_prefixes():
    """The journal target prefixes every line with <severity>."""
    out = io.StringIO()
    JournalObserver(out)(_event(LogLevel.warn, "two\nlines"))
    assert out.getvalue() == "<4>[imapd.test] two\n<4>[imapd.test] lines\n"
