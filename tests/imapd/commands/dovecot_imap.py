"""
A private Dovecot 2.3 (C{/usr/sbin/dovecot}) for protocol comparisons: its
own configuration and base directory, no listener; each session is
Dovecot's C{imap} process in PREAUTH mode on pipes (L{DovecotSession}).
Used by C{test_context_dovecot} and C{test_notify_dovecot}.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time

import pytest

from tests.storage.mbox.test_mbox_dovecot import DOVEADM, chown_mail, start_dovecot

IMAP = "/usr/lib/dovecot/imap"


class DovecotSession:
    """One Dovecot C{imap} process in PREAUTH mode, on pipes."""

    def __init__(self, conf: str) -> None:
        self.proc = subprocess.Popen([IMAP, "-c", conf, "-u", "u"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buf = b""
        self.until(lambda line: line.startswith("* PREAUTH"))

    def until(self, done) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + 20
        while True:
            while b"\r\n" in self.buf:
                raw, self.buf = self.buf.split(b"\r\n", 1)
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if done(line):
                    return lines
            assert time.monotonic() < deadline, lines
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            if ready:
                data = os.read(self.proc.stdout.fileno(), 65536)
                assert data, lines
                self.buf += data

    def drain(self, seconds: float) -> list[str]:
        """The complete lines Dovecot writes within C{seconds} (unsolicited ones)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                data = os.read(self.proc.stdout.fileno(), 65536)
                assert data, "Dovecot closed the connection"
                self.buf += data
        *lines, self.buf = self.buf.split(b"\r\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def command(self, line: str) -> list[str]:
        tag = line.split(" ", 1)[0]
        self.proc.stdin.write(line.encode() + b"\r\n")
        self.proc.stdin.flush()
        return self.until(lambda l: l.startswith(tag + " "))

    def append(self, tag: str, data: bytes, flags: str = "") -> list[str]:
        self.proc.stdin.write(f"{tag} APPEND INBOX {flags}{{{len(data)}+}}\r\n".encode()
                              + data + b"\r\n")
        self.proc.stdin.flush()
        return self.until(lambda l: l.startswith(tag + " "))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


@pytest.fixture
def dovecot_conf():
    """A private Dovecot on Maildir (the mbox test's instance, another location)."""
    assert os.path.exists(IMAP), "Dovecot is not installed"
    top, conf = start_dovecot("maildir:{top}/mail/%u/Maildir")
    chown_mail(top)
    try:
        yield conf
    finally:
        subprocess.run([DOVEADM, "-c", conf, "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        shutil.rmtree(top, ignore_errors=True)
