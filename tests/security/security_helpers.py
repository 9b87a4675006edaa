"""
Helpers of the security tests (issue 18): an attacking client that can
compress, a second client that measures what everybody else sees during
an attack (the NOOP latency of an innocent session), and the daemon's
memory.  Every wait is bounded, so a test of a server that freezes fails
in seconds instead of hanging.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_sessions import RawSession  # noqa: E402

__all__ = ["Attacker", "Prober", "rss_kib", "login"]


def login(session: RawSession, server, tag: str = "l1") -> None:
    session.ok(tag, f'LOGIN {server.user} "{server.password}"')


class Attacker(RawSession):
    """A raw session that can switch to COMPRESS=DEFLATE (RFC 4978)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.deflate = None
        self.inflate = None
        super().__init__(port)
        self.sock.settimeout(timeout)

    def compress(self) -> None:
        self.ok("z1", "COMPRESS DEFLATE")
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def send_raw(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def send(self, line: str) -> None:
        self.send_raw(line.encode() + b"\r\n")

    def read_some(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        if self.inflate is not None:
            chunk = self.inflate.decompress(chunk)
        self.buf += chunk
        return chunk

    def read_lines(self, count: int, timeout: float) -> list[bytes]:
        """Read until C{count} complete lines arrived; return them."""
        data = self.read_until(lambda b: b.count(b"\r\n") >= count, timeout)
        lines = data.split(b"\r\n")
        self.buf = b"\r\n".join(lines[count:])
        return lines[:count]


class Prober(threading.Thread):
    """
    An innocent logged-in client that sends NOOP after NOOP while an
    attack runs, and records the slowest answer (C{worst}, seconds).  A
    NOOP that gets no answer within C{limit} ends the probe with
    C{worst = limit} (the server was frozen at least that long).
    """

    def __init__(self, server, limit: float = 20.0, pause: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.session = RawSession(server.port)
        login(self.session, server)
        self.limit = limit
        self.pause = pause
        self.worst = 0.0
        self.count = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            n += 1
            started = time.monotonic()
            try:
                self.session.command(f"p{n}", "NOOP", timeout=self.limit)
            except (OSError, TimeoutError):
                self.worst = max(self.worst, time.monotonic() - started)
                return
            self.worst = max(self.worst, time.monotonic() - started)
            self.count += 1
            self.stop_event.wait(self.pause)

    def __enter__(self) -> "Prober":
        self.start()
        # One answered NOOP before the attack starts.
        deadline = time.monotonic() + 10
        while self.count == 0 and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.join(self.limit + 5)
        self.session.close()


def rss_kib(pid: int) -> int:
    """
    The resident set size of the daemon C{pid}, in KiB: summed over its
    processes (the master's children serve the mail, issue 14).
    """
    from e2e_helpers import daemon_pids

    total = 0
    for process in daemon_pids(pid):
        try:
            lines = Path(f"/proc/{process}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    if not total:
        raise RuntimeError(f"no VmRSS for {pid}")
    return total


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)
