# -*- test-case-name: tests.security -*-
"""
Helpers of the content-hardening tests (issue 18 items 4-7): the real
daemon of the end-to-end tests (tests/e2e/e2e_helpers.py, imported, not
copied), a raw line client, and the daemon's memory as the kernel counts it.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import PASSWORD, USER, start_server  # noqa: E402
from test_e2e_catenate import Client as _TLSClient  # noqa: E402

__all__ = ["start_server", "USER", "PASSWORD", "Client", "peak_rss", "rss", "reset_peak",
           "fetch_body", "start_store_server"]


class Client(_TLSClient):
    """
    The end-to-end tests' raw client over implicit TLS
    (tests/e2e/test_e2e_catenate.py), with command helpers.
    """

    def __init__(self, server, timeout: float = 30) -> None:
        super().__init__(server)
        self.sock.settimeout(timeout)

    def command(self, tag: str, text: bytes) -> bytes:
        """
        Send C{tag text}; return everything up to its tagged answer, or up
        to a C{* BYE} (after which the server closes the connection).
        """
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.expect(rb"(?m)^(?:" + tag.encode() + rb" |\* BYE )[^\n]*\n")

    def login(self, user: str = USER, password: str = PASSWORD) -> bytes:
        return self.command("l1", b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))

    def timed(self, tag: str, text: bytes) -> tuple[float, bytes]:
        start = time.monotonic()
        out = self.command(tag, text)
        return time.monotonic() - start, out

    def close(self) -> None:
        try:
            super().close()
        except OSError:
            pass


def _status(pid: int, field: str) -> int:
    """C{field} of /proc/PID/status summed over the daemon's processes, in octets."""
    from e2e_helpers import daemon_pids

    total = 0
    for process in daemon_pids(pid):
        try:
            with open(f"/proc/{process}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def rss(server) -> int:
    """The daemon's resident memory now, in octets."""
    return _status(server.daemon.process.pid, "VmRSS")


def peak_rss(server) -> int:
    """The daemon's peak resident memory so far (VmHWM), in octets."""
    return _status(server.daemon.process.pid, "VmHWM")


def reset_peak(server) -> int:
    """
    Reset the peak (VmHWM) of every process of the daemon to its resident
    memory now (Linux 4.0+: C{5} to C{/proc/PID/clear_refs}; with several
    processes, issue 14, the mail worker's is the one that moves); return
    that memory, from which a later peak is measured.
    """
    from e2e_helpers import daemon_pids

    for process in daemon_pids(server.daemon.process.pid):
        try:
            with open(f"/proc/{process}/clear_refs", "w") as f:
                f.write("5")
        except OSError:  # a process that just ended
            continue
    return rss(server)


def fetch_body(c: Client, tag: str, uid: int) -> bytes:
    """BODY.PEEK[] of C{uid}, its literal read by length (it may be large)."""
    c.send(b"%s UID FETCH %d (BODY.PEEK[])\r\n" % (tag.encode(), uid))
    size = int(re.search(rb"\{(\d+)\}\r\n$", c.expect(rb"\{\d+\}\r\n"))[1])
    data = bytearray(c.buf[:size])
    c.buf = c.buf[size:]
    while len(data) < size:
        chunk = c.sock.recv(min(1 << 20, size - len(data)))
        assert chunk
        data += chunk
    assert b"%s OK" % tag.encode() in c.expect(rb"(?m)^" + tag.encode() + rb" [^\n]*\n")
    return bytes(data)


def start_store_server(tmp_path, tls_files, store: str, max_literal: int):
    """
    The daemon with APPENDLIMIT C{max_literal}, its mail in Maildir (the
    default) or, for C{store="mbox"}, in mbox files with an INBOX spool.
    """
    settings: dict = {"limits": {"max_literal": max_literal}}
    if store == "mbox":
        settings["mail"] = {"location": f"mbox:{tmp_path}/mail/%u:INBOX={tmp_path}/spool/%u"}
    return start_server(tmp_path, tls_files, settings)
