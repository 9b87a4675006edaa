"""
Helpers for end-to-end tests that hold many sessions or users at once: a
raw IMAP session over a plain socket (send now, read the answer later),
extra passwd-file users, and Maildirs written the way an MDA writes them.
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from pathlib import Path

#: Generous: these tests assert on completion and order, never on speed,
#: and the machine may be busy.
TIMEOUT = 120.0


class RawSession:
    """One IMAP connection driven line by line."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buf = b""
        self.read_until(lambda data: b"\r\n" in data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def read_some(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk
        return chunk

    def read_until(self, done, timeout: float = TIMEOUT) -> bytes:
        """Read until C{done(buffer)}; return and clear the buffer."""
        deadline = time.monotonic() + timeout
        while not done(self.buf):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer in {timeout}s; have {self.buf[-500:]!r}")
            self.sock.settimeout(left)
            self.read_some()
        data, self.buf = self.buf, b""
        return data

    @staticmethod
    def tagged_done(tag: str):
        """A C{done} for L{read_until}: the last complete line is C{tag}'s answer."""
        prefix = tag.encode() + b" "
        return lambda data: data.endswith(b"\r\n") and _last_line(data).startswith(prefix)

    def command(self, tag: str, line: str, timeout: float = TIMEOUT) -> bytes:
        """Send C{tag line} and return everything up to the tagged answer."""
        self.send(f"{tag} {line}")
        return self.read_until(self.tagged_done(tag), timeout)

    def ok(self, tag: str, line: str) -> bytes:
        data = self.command(tag, line)
        assert _last_line(data).startswith(f"{tag} OK".encode()), data[-500:]
        return data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _last_line(data: bytes) -> bytes:
    return data.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]


def wait_all(sessions, done, timeout: float = TIMEOUT) -> None:
    """Read from every session until C{done(session.buf)} holds for all."""
    deadline = time.monotonic() + timeout
    pending = {s for s in sessions if not done(s.buf)}
    with selectors.DefaultSelector() as sel:
        for s in pending:
            sel.register(s.sock, selectors.EVENT_READ, s)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(pending)} of {len(sessions)} sessions still waiting")
            for key, _ in sel.select(min(left, 1.0)):
                s = key.data
                s.read_some()
                if done(s.buf):
                    pending.discard(s)
                    sel.unregister(s.sock)


def add_users(passwd: Path, names, template_user: str) -> None:
    """Append users to a passwd-file, with the password hash of C{template_user}."""
    lines = passwd.read_text().splitlines()
    entry = next(line for line in lines if line.startswith(template_user + ":"))
    password = entry.split(":")[1]
    with open(passwd, "a") as f:
        for name in names:
            f.write(f"{name}:{password}::::::\n")


def make_maildir(path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


_deliveries = iter(range(1, 1 << 30))


def deliver(maildir: Path, message: bytes) -> Path:
    """Deliver as an MDA does: write into tmp/, then rename into new/."""
    name = f"{int(time.time())}.M{next(_deliveries)}P{os.getpid()}.test,S={len(message)}"
    tmp = maildir / "tmp" / name
    tmp.write_bytes(message)
    target = maildir / "new" / name
    os.rename(tmp, target)
    return target
