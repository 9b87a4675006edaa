# -*- test-case-name: tests.security -*-
"""
Helpers of the content-hardening tests (issue 18 items 4-7): the real
daemon of the end-to-end tests (tests/e2e/e2e_helpers.py, imported, not
copied), a raw line client, and the daemon's memory as the kernel counts it.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import PASSWORD, USER, start_server  # noqa: E402

__all__ = ["start_server", "USER", "PASSWORD", "Client", "peak_rss", "rss"]


class Client:
    """A plain-text IMAP client on loopback that reads up to what it expects."""

    def __init__(self, server, timeout: float = 30) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.buf = b""
        self.expect(rb"\* OK [^\n]*\n")

    def expect(self, pattern: bytes) -> bytes:
        """Read until C{pattern} matches; return and consume everything up to its end."""
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(self.buf)
            self.buf += chunk

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, tag: str, text: bytes) -> bytes:
        """Send C{tag text} and return everything up to the tagged answer."""
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.expect(rb"(?m)^" + tag.encode() + rb" [^\n]*\n")

    def login(self, user: str = USER, password: str = PASSWORD) -> bytes:
        return self.command("l1", b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))

    def timed(self, tag: str, text: bytes) -> tuple[float, bytes]:
        start = time.monotonic()
        out = self.command(tag, text)
        return time.monotonic() - start, out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss(server) -> int:
    """The daemon's resident memory now, in octets."""
    return _status(server.daemon.process.pid, "VmRSS")


def peak_rss(server) -> int:
    """The daemon's peak resident memory so far (VmHWM), in octets."""
    return _status(server.daemon.process.pid, "VmHWM")
