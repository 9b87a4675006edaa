"""
The C{imapd: services} child of the multi-process server (LMTP and the
cluster's listeners, bound by the master): it exists only when
configured, runs under the master's uid, is started again when it dies,
and drains its LMTP connections when a reload replaces it.
"""

from __future__ import annotations

import os
import signal
import smtplib
import time

import pytest
from e2e_helpers import free_ports, start_server
from proctree import alive, titled, tree, wait_for
from test_processes import SHAPE, USERS, _children_up, _login


@pytest.fixture
def start_imapd(tmp_path, tls_files):
    """Start a daemon shaped as in test_processes, in a directory of its own."""
    started = []

    def start(settings=None):
        merged = {k: dict(v) for k, v in SHAPE.items()}
        merged.update(settings or {})
        root = tmp_path / f"server{len(started)}"
        root.mkdir()
        started.append(start_server(root, tls_files, merged, users=USERS))
        return started[-1]
    yield start
    import e2e_helpers

    for daemon in {id(d): d for d in [s.daemon for s in started] + e2e_helpers.STARTED}.values():
        daemon.stop()

MESSAGE = b"From: a@example.net\r\nSubject: %s\r\n\r\nbody\r\n"


def _lmtp_settings(tmp_path):
    (port,) = free_ports(1)
    return port, {"lmtp_listen": [f"tcp:{port}:interface=127.0.0.1",
                                  f"unix:{tmp_path}/lmtp.sock"]}


def _services(server):
    return titled(server.daemon.process.pid, "imapd: services")


def _inbox_count(server, user: str = "u1") -> int:
    s = _login(server.port, user)
    data = s.command("s", "SELECT INBOX")
    s.close()
    for line in data.split(b"\r\n"):
        if line.endswith(b" EXISTS"):
            return int(line.split()[1])
    raise AssertionError(data)


def _deliver(port: int, subject: bytes, timeout: float = 5.0) -> float:
    """Deliver to u1, retrying while the listener has no process: the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            with smtplib.LMTP("127.0.0.1", port, timeout=10) as lmtp:
                assert lmtp.sendmail("a@example.net", ["u1@example.org"],
                                     MESSAGE % subject) == {}
            return time.monotonic() - started
        except (OSError, smtplib.SMTPException):
            if time.monotonic() - started > timeout:
                raise
            time.sleep(0.05)


def test_services_process_only_when_configured(start_imapd, tmp_path):
    """No LMTP or cluster option: no services process; with lmtp_listen, one, as the master's uid."""
    server = start_imapd()
    _children_up(server)
    assert not _services(server)
    server.daemon.stop()

    port, settings = _lmtp_settings(tmp_path)
    server = start_imapd(settings)
    _children_up(server)
    (services,) = wait_for(lambda: _services(server), "the services process")
    (spawner,) = titled(server.daemon.process.pid, "imapd: spawner")
    assert services.ppid == spawner.pid
    # The master's uid (root here), never service.login_user.
    assert services.uid == os.getuid()
    _deliver(port, b"one")
    assert _inbox_count(server) == 1


def test_sigkill_the_services_process(start_imapd, tmp_path):
    """The master starts it again; LMTP works again within seconds, IMAP never stopped."""
    port, settings = _lmtp_settings(tmp_path)
    server = start_imapd(settings)
    _children_up(server)
    (services,) = wait_for(lambda: _services(server), "the services process")
    _deliver(port, b"before")
    session = _login(server.port, "u2")
    os.kill(services.pid, signal.SIGKILL)
    wait_for(lambda: not alive(services.pid), "the services process to die", timeout=5)
    assert _deliver(port, b"after") < 3.0
    (again,) = wait_for(lambda: _services(server), "a new services process")
    assert again.pid != services.pid
    assert _inbox_count(server) == 2
    session.ok("n", "NOOP")
    session.close()
    assert "imapd: services (pid %d) ended: killed by SIGKILL" % services.pid \
        in server.daemon.log()


def test_sighup_drains_the_old_services_process(start_imapd, tmp_path):
    """
    An LMTP transaction open across SIGHUP completes in the old process,
    which then exits; the new one serves both listeners.
    """
    port, settings = _lmtp_settings(tmp_path)
    server = start_imapd(settings)
    _children_up(server)
    (old,) = wait_for(lambda: _services(server), "the services process")
    lmtp = smtplib.LMTP("127.0.0.1", port, timeout=10)
    lmtp.ehlo("mta.test")
    assert lmtp.mail("a@example.net")[0] == 250
    os.kill(server.daemon.process.pid, signal.SIGHUP)
    wait_for(lambda: "generation 2" in server.daemon.log(), "the reload")
    wait_for(lambda: len(_services(server)) == 2, "a second services process")
    assert lmtp.rcpt("u1@example.org")[0] == 250
    assert lmtp.data(MESSAGE % b"across")[0] == 250
    lmtp.quit()
    wait_for(lambda: old.pid not in {p.pid for p in tree(server.daemon.process.pid)},
             "the old services process to exit", timeout=10)
    assert len(_services(server)) == 1
    _deliver(port, b"new")
    # The old process left the UNIX socket's path to the new one.
    with smtplib.LMTP(f"{tmp_path}/lmtp.sock", timeout=10) as lmtp:
        assert lmtp.sendmail("a@example.net", ["u1@example.org"], MESSAGE % b"unix") == {}
    assert _inbox_count(server) == 3
