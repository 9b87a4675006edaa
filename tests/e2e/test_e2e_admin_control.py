"""
imapd-admin who and kick against the real daemon (issue 16), through its
control socket, in single-process mode and with a master whose mail
workers hold the sessions.
"""

from __future__ import annotations

import errno
import imaplib
import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from e2e_helpers import PASSWORD, USER, daemon_env

CONSOLE = "import sys; from imapd.admin import console; sys.argv[0] = 'imapd-admin'; console()"


def admin(server, *argv, **kwargs):
    """The imapd-admin console script, in a process of its own."""
    return subprocess.run([sys.executable, "-c", CONSOLE, "--config", str(server.config), *argv],
                          capture_output=True, text=True, env=daemon_env(), timeout=120,
                          **kwargs)


def login(server, user, password):
    client = imaplib.IMAP4(server.host, server.port, timeout=30)
    client.starttls(server.ssl_context())
    client.login(user, password)
    return client


@pytest.fixture(params=[True, False], ids=["single", "master"])
def server(request, start_imapd):
    return start_imapd({"service": {"single_process": request.param, "login_processes": 1,
                                    "mail_workers": 2},
                        "auth": {"passwd_file": "passwd"}})


def add_user(server, name, password):
    from imapd.auth.schemes import hash_password

    with open(server.root / "passwd", "a") as f:
        f.write(f"{name}:{hash_password(password, 'PLAIN')}::::{server.root / 'home' / name}::\n")


def test_who_and_kick(server):
    """
    who lists every logged-in session (user, session id, selected
    mailbox); kick ends one user's sessions with a BYE and leaves the
    others; exit 1 when the user has none.
    """
    add_user(server, "bob", "bob-secret")
    path = server.root / "data" / "run" / "control"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    alice1, alice2 = login(server, USER, PASSWORD), login(server, USER, PASSWORD)
    bob = login(server, "bob", "bob-secret")
    try:
        alice2.select("INBOX")
        run = admin(server, "who", "--json")
        assert run.returncode == 0, run.stderr
        rows = json.loads(run.stdout)
        assert sorted(r["user"] for r in rows) == ["alice", "alice", "bob"]
        assert sorted(r["mailbox"] for r in rows if r["user"] == "alice") == ["", "INBOX"]
        assert all(r["tls"] and r["peer"].startswith("127.0.0.1:") for r in rows)
        assert len({r["session"] for r in rows}) == 3
        run = admin(server, "who", "-u", "bob")
        assert run.returncode == 0 and run.stdout.startswith("bob\t")
        run = admin(server, "kick", USER)
        assert run.returncode == 0, run.stderr
        assert [line.split("\t")[1] for line in run.stdout.splitlines()] == ["alice", "alice"]
        for client in (alice1, alice2):
            with pytest.raises((imaplib.IMAP4.abort, OSError)):
                client.noop()
                client.noop()
        assert bob.noop()[0] == "OK"
        run = admin(server, "who", "-u", USER)
        assert (run.returncode, run.stdout) == (1, "")
        assert run.stderr == "imapd-admin: 'alice' has no session\n"
        run = admin(server, "kick", USER)
        assert run.returncode == 1
        assert [r["user"] for r in json.loads(admin(server, "who", "--json").stdout)] == ["bob"]
        run = admin(server, "kick", "-A", "--json")
        assert run.returncode == 0 and [r["user"] for r in json.loads(run.stdout)] == ["bob"]
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            bob.noop()
            bob.noop()
        assert json.loads(admin(server, "who", "--json").stdout) == []
    finally:
        for client in (alice1, alice2, bob):
            try:
                client.logout()
            except Exception:
                pass


def test_control_socket_is_the_owners(server):
    """Another uid cannot reach the socket; a stopped daemon is exit 2 in one line."""
    path = server.root / "data" / "run" / "control"
    assert admin(server, "who").returncode == 0
    pid = os.fork()
    if pid == 0:  # a child as nobody tries to connect: exit status = errno
        code = 100
        try:
            os.setgid(65534)
            os.setuid(65534)
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.connect(str(path))
                code = 0
            except OSError as e:
                code = e.errno
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == errno.EACCES
    server.daemon.stop()
    assert not path.exists()
    run = admin(server, "who")
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "cannot reach the daemon at" in run.stderr and "Traceback" not in run.stderr
