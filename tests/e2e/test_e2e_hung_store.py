"""
A mailbox on a hung file system stalls only the sessions that use it
(issue 6; DESIGN.md "a hung NFS server must not stop logins to other
mailboxes").  The stand-in for a hung read is a FIFO in a Maildir's cur/:
opening it blocks until a writer appears, just as a read from a dead NFS
server blocks in the kernel.

Six sessions of one user FETCH that message, more than the storage pool
has threads (4).  While they hang, other users log in, SELECT and FETCH;
the server's threads blocked in the FIFO are counted from /proc (their
wait channel), never timed: at most one share of the pool is stuck.  Then
the FIFO gets writers and every hung FETCH completes with the message.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

import pytest

from e2e_helpers import USER, PASSWORD, Daemon, daemon_pids, write_config
from e2e_sessions import TIMEOUT, RawSession, add_users, make_maildir

THREADS = 4
HUNG_SESSIONS = 6
OTHER_USERS = ["bob", "carol", "dave"]
BODY = b"From: x@example.org\r\nSubject: from the fifo\r\n\r\nit came through\r\n"


def _blocked_threads(pid: int) -> int:
    """
    Threads of the daemon C{pid} (its processes: the mail workers, issue
    14) waiting in the kernel for a FIFO's other end.
    """
    count = 0
    for process in daemon_pids(pid):
        try:
            tids = os.listdir(f"/proc/{process}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{process}/task/{tid}/wchan") as f:
                    wchan = f.read().strip()
            except OSError:
                continue
            if wchan in ("wait_for_partner", "fifo_open", "pipe_read", "pipe_wait"):
                count += 1
    return count


def _wait_for(predicate, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _feed(fifo: Path) -> bool:
    """Give the message to one reader waiting on the FIFO, if there is one."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ENXIO:  # nobody is reading
            return False
        raise
    try:
        os.set_blocking(fd, True)
        os.write(fd, BODY)
    finally:
        os.close(fd)
    return True


def test_hung_mailbox_stalls_only_its_sessions(tmp_path, tls_files):
    mail = tmp_path / "mail"
    inbox = make_maildir(mail / USER)
    (inbox / "cur" / "1000.M1P1.test,S=20:2,S").write_bytes(b"Subject: ok\r\n\r\nfine\r\n")
    # W= (the size with CRLF, as Dovecot writes it) spares SELECT from
    # opening the file to count it.
    fifo = inbox / "cur" / f"1001.M2P1.test,S={len(BODY)},W={len(BODY)}:2,"
    os.mkfifo(fifo)
    for name in OTHER_USERS:
        box = make_maildir(mail / name)
        (box / "cur" / "1000.M1P1.test,S=25:2,S").write_bytes(b"Subject: mine\r\n\r\nhealthy\r\n")
    config, (port, _tls) = write_config(tmp_path, tls_files, {"storage": {"threads": THREADS}})
    add_users(tmp_path / "passwd", OTHER_USERS, USER)
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    sessions = []
    try:
        daemon.wait_for_greeting(port)
        pid = daemon.process.pid
        hung = []
        for i in range(HUNG_SESSIONS):
            s = RawSession(port)
            sessions.append(s)
            s.ok("l", f'LOGIN {USER} "{PASSWORD}"')
            s.ok("s", "SELECT INBOX")
            s.send("f UID FETCH 1:* (BODY.PEEK[])")
            hung.append(s)
        _wait_for(lambda: _blocked_threads(pid) >= 1, "a server thread blocked on the FIFO")

        # Other users are served while the FIFO holds its readers.
        for name in OTHER_USERS:
            s = RawSession(port)
            sessions.append(s)
            s.ok("l", f'LOGIN {name} "{PASSWORD}"')
            s.ok("s", "SELECT INBOX")
            data = s.ok("f", "FETCH 1 (BODY.PEEK[])")
            assert b"healthy" in data
            s.ok("o", "LOGOUT")
        # ... and so is a new session of the hung user that does not touch
        # the message.
        s = RawSession(port)
        sessions.append(s)
        s.ok("l", f'LOGIN {USER} "{PASSWORD}"')
        assert b"* LIST" in s.ok("x", 'LIST "" "*"')
        # The hung sessions are still waiting, and they hold one share of
        # the pool (a quarter of its threads), not all of it.
        for h in hung:
            h.sock.settimeout(0.01)
            try:
                h.read_some()
            except OSError:
                pass
        assert not any(RawSession.tagged_done("f")(h.buf) for h in hung)
        assert 1 <= _blocked_threads(pid) <= THREADS // 4

        # Unblock: each waiting reader gets the message in turn (the
        # queued sessions open the FIFO only once the one before is done).
        done = RawSession.tagged_done("f")
        deadline = time.monotonic() + TIMEOUT
        while not all(done(h.buf) for h in hung):
            if time.monotonic() > deadline:
                pytest.fail("hung sessions did not complete after the FIFO was fed")
            if not _feed(fifo):
                time.sleep(0.05)
            for h in hung:
                h.sock.settimeout(0.01)
                try:
                    while not done(h.buf):
                        h.read_some()
                except OSError:  # socket.timeout included
                    pass
        for h in hung:
            assert b"it came through" in h.buf and b"\r\nf OK" in h.buf, h.buf[-300:]
    finally:
        for s in sessions:
            s.close()
        daemon.stop()


def test_shutdown_with_a_hung_read(tmp_path, tls_files):
    """SIGTERM stops the daemon cleanly (not killed) while a worker hangs in a read."""
    inbox = make_maildir(tmp_path / "mail" / USER)
    fifo = inbox / "cur" / f"1001.M2P1.test,S={len(BODY)},W={len(BODY)}:2,"
    os.mkfifo(fifo)
    config, (port, _tls) = write_config(tmp_path, tls_files)
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    s = None
    try:
        daemon.wait_for_greeting(port)
        s = RawSession(port)
        s.ok("l", f'LOGIN {USER} "{PASSWORD}"')
        s.ok("s", "SELECT INBOX")
        s.send("f FETCH 1 (BODY.PEEK[])")
        _wait_for(lambda: _blocked_threads(daemon.process.pid) >= 1,
                  "a server thread blocked on the FIFO")
    finally:
        # Daemon.stop sends SIGTERM and falls back to SIGKILL after 15 s;
        # twistd ends a SIGTERM shutdown by re-raising the signal, so a
        # clean stop is status -SIGTERM and a killed one -SIGKILL.
        status = daemon.stop()
        if s is not None:
            s.close()
    assert status == -signal.SIGTERM, (status, daemon.log()[-300:])
    assert "not waiting" in daemon.log()
