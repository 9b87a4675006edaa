# -*- test-case-name: tests.imapd.test_logsink -*-
"""
Where the log goes when option C{log.target} is not C{"stdout"} (issue
16 "Running under an init system"): every event keeps its level, so that
C{journalctl -p warning} or a syslog rule on C{mail.err} picks the lines
a sysadmin must read.

    syslog    one datagram per line to the local syslog socket
              (C{log.syslog_socket}, C{/dev/log}), C{<PRI>imapd[PID]: ...}
              as RFC 3164 section 4.1 frames it, with C{log.syslog_facility}
    journal   standard output, each line prefixed with C{<N>}, the
              priority prefix systemd reads from a service's output
              (sd-daemon(3), C{SyslogLevelPrefix=}); the journal adds the
              time, the unit and the pid

Levels map to syslog severities (RFC 5424 section 6.2.1): debug 7, info
6, warn 4, error 3, critical 2.  twistd's own C{--syslog} logs every
line at one priority, which is why this exists.
"""

from __future__ import annotations

import os
import socket

from twisted.logger import LogLevel

from imapd.logtext import event_text

__all__ = ["SEVERITY", "FACILITIES", "SyslogObserver", "JournalObserver", "sink_for"]

#: Twisted's levels as syslog severities (RFC 5424 section 6.2.1).
SEVERITY = {
    LogLevel.debug: 7,
    LogLevel.info: 6,
    LogLevel.warn: 4,
    LogLevel.error: 3,
    LogLevel.critical: 2,
}

#: The facilities a mail server may log under (RFC 5424 section 6.2.1).
FACILITIES = {"mail": 2, "daemon": 3, "user": 1, **{f"local{i}": 16 + i for i in range(8)}}


def _lines(event: dict) -> list[str]:
    """The event as text lines: its message, then a failure's traceback."""
    namespace = event.get("log_namespace")
    text = event_text(event)
    prefix = f"[{namespace}] " if namespace else ""
    return [prefix + line for line in text.splitlines() if line.strip()]


def _severity(event: dict) -> int:
    return SEVERITY.get(event.get("log_level"), 6)


class SyslogObserver:
    """
    Send each event to a local syslog socket (a datagram per line).

    A syslog daemon that is not running (the socket is missing or
    refuses) loses the line rather than stopping the server; the socket
    is opened again at the next line, so a restarted journald or rsyslog
    is found again.
    """

    def __init__(self, path: str = "/dev/log", facility: str = "mail",
                 ident: str = "imapd") -> None:
        self.path = path
        self.facility = FACILITIES[facility]
        self.ident = ident
        self._sock: socket.socket | None = None

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.sendto(data, self.path)
        except OSError:
            self._sock.close()
            self._sock = None

    def __call__(self, event: dict) -> None:
        pri = self.facility * 8 + _severity(event)
        head = f"<{pri}>{self.ident}[{os.getpid()}]: "
        for line in _lines(event):
            self._send((head + line).encode("utf-8", "backslashreplace"))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class JournalObserver:
    """
    Write each line as C{<N>text} for systemd's journal (sd-daemon(3)).

    @param stream: a text stream; None: descriptor 1 itself (twistd
        replaces C{sys.stdout} with a file that logs what is written to
        it, which would come back here).
    """

    def __init__(self, stream=None) -> None:
        self.stream = stream

    def __call__(self, event: dict) -> None:
        severity = _severity(event)
        text = "".join(f"<{severity}>{line}\n" for line in _lines(event))
        try:
            if self.stream is not None:
                self.stream.write(text)
                self.stream.flush()
                return
            data = text.encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(1, data):]
        except (OSError, ValueError):
            pass


def sink_for(section):
    """
    The observer for C{section} (a L{conf.schema.LogSection}), or None
    for C{target = "stdout"} (twistd's observers stay).
    """
    if section.target == "syslog":
        return SyslogObserver(section.syslog_socket, section.syslog_facility)
    if section.target == "journal":
        return JournalObserver()
    return None
