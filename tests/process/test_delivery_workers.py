"""
LMTP delivery in the recipient's own mail worker (issue 15 with issue 14):
the C{imapd: services} process speaks LMTP, the store work runs in the
worker that serves the user's logins (the pool worker of the name's hash;
a system user's own worker, as that user), which wakes the user's IDLE
sessions in the same process; a worker killed during a delivery gives
451 and nothing half-written.
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_helpers import REPO, daemon_env, free_ports, start_imapd  # noqa: F401 - a fixture
from proctree import titled, tree, wait_for

from imapd.process.wire import pool_index
from tests.delivery.delivery_helpers import idling
from tests.system_users import (  # noqa: F401 - fixtures, registered by name
    mail_spool, make_system_user, pam_service, system_root)

MESSAGE = (b"From: Sender <sender@example.net>\r\nTo: alice@example.org\r\n"
           b"Subject: in her worker\r\n\r\nHello.\r\n")


def _location(kind: str, root) -> str:
    if kind == "mbox":
        return f"mbox:{root}/mail/%u:INBOX={root}/mail/%u.inbox"
    return f"maildir:{root}/mail/%u"


def _lmtp(settings: dict) -> tuple[int, dict]:
    (port,) = free_ports(1)
    return port, dict(settings, lmtp_listen=[f"tcp:{port}:interface=127.0.0.1"])


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_delivery_wakes_idle_in_the_users_worker_directly(start_imapd, tmp_path, kind):
    """
    With inotify off (mail.nfs_storage = true, as on NFS) and IDLE's poll
    30 s away, only a notice inside the worker that holds the IDLE session
    can wake it within seconds: the delivery ran there.
    """
    port, settings = _lmtp({
        "service": {"login_processes": 1, "mail_workers": 2},
        "mail": {"location": _location(kind, tmp_path / "server0"), "nfs_storage": True},
        "limits": {"idle_poll_interval": 30.0, "failed_login_delay": 0.1},
    })
    server = start_imapd(settings)
    client = idling(server)
    try:
        started = time.monotonic()
        with smtplib.LMTP(server.host, port) as lmtp:
            lmtp.ehlo("mta.test")
            assert lmtp.mail("sender@example.net")[0] == 250
            assert lmtp.rcpt("alice@example.org")[0] == 250
            assert lmtp.rcpt("nobody-here@example.org")[0] == 550
            assert lmtp.data(MESSAGE) == (250, b"2.0.0 <alice@example.org> Saved")
        lines = client.unsolicited(1, seconds=10)
        assert lines and lines[0] == "* 1 EXISTS", lines
        assert time.monotonic() - started < 5.0
    finally:
        client.close()
    assert "Delivered to alice (INBOX UID 1)" in server.daemon.log()


def test_per_recipient_replies_across_workers(tmp_path, tls_files):
    """Recipients served by different pool workers each get their own reply, in RCPT order."""
    users = ("u1", "u2", "u3", "u4", "u5", "u6")
    first = next(u for u in users if pool_index(u, 2) == 0)
    second = next(u for u in users if pool_index(u, 2) == 1)
    root = tmp_path / "server0"
    root.mkdir()
    from e2e_helpers import start_server

    port, settings = _lmtp({"service": {"login_processes": 1, "mail_workers": 2}})
    server = start_server(root, tls_files, settings, users={first: "pw", second: "pw"})
    try:
        with smtplib.LMTP(server.host, port) as lmtp:
            lmtp.ehlo("mta.test")
            assert lmtp.mail("sender@example.net")[0] == 250
            for user in (first, "ghost", second, "alice"):
                lmtp.rcpt(f"{user}@example.org")
            code, text = lmtp.data(MESSAGE)
            replies = [(code, text)] + [lmtp.getreply() for _ in range(2)]
        assert replies == [(250, f"2.0.0 <{user}@example.org> Saved".encode())
                           for user in (first, second, "alice")]
        for user in (first, second, "alice"):
            assert len(list((root / "mail" / user / "new").iterdir())
                       + list((root / "mail" / user / "cur").iterdir())) == 1
    finally:
        server.daemon.stop()


def test_worker_killed_during_a_delivery_answers_451_and_writes_nothing(start_imapd, tmp_path):
    """
    The worker holding a delivery dies (SIGKILL while the Maildir's uidlist
    lock is held elsewhere): the MTA hears 451 4.3.0 at once (not after
    delivery_timeout), no message appears, and the restarted worker
    delivers the retry exactly once.
    """
    root = tmp_path / "server0"
    port, settings = _lmtp({"service": {"login_processes": 1, "mail_workers": 1},
                            "lmtp": {"delivery_timeout": 120.0}})
    server = start_imapd(settings)
    maildir = root / "mail" / "alice"
    with smtplib.LMTP(server.host, port) as lmtp:
        assert lmtp.sendmail("sender@example.net", ["alice@example.org"], MESSAGE) == {}

    def visible():
        return sorted(p.name for sub in ("new", "cur") for p in (maildir / sub).iterdir())
    before = visible()
    assert len(before) == 1
    # Another writer holds the uidlist lock: the delivery waits for it.
    lock = maildir / "dovecot-uidlist.lock"
    lock.write_text(f"{os.getpid()}\n")
    try:
        with smtplib.LMTP(server.host, port) as lmtp:
            lmtp.ehlo("mta.test")
            assert lmtp.mail("sender@example.net")[0] == 250
            assert lmtp.rcpt("alice@example.org")[0] == 250
            lmtp.putcmd("data")
            assert lmtp.getreply()[0] == 354
            lmtp.send(MESSAGE.replace(b"Subject: in", b"Subject: killed in") + b".\r\n")
            (worker,) = wait_for(lambda: titled(server.daemon.process.pid,
                                                "imapd: worker pool-1"), "the worker")
            # Let the delivery reach the lock, then kill the worker under it.
            wait_for(lambda: list((maildir / "tmp").iterdir()), "the delivery's tmp file")
            started = time.monotonic()
            os.kill(worker.pid, signal.SIGKILL)
            code, text = lmtp.getreply()
            assert (code, text[:5]) == (451, b"4.3.0"), text
            assert time.monotonic() - started < 10
    finally:
        lock.unlink()
    assert visible() == before
    assert "ended during a delivery; answered 451" in server.daemon.log()
    with smtplib.LMTP(server.host, port) as lmtp:
        assert lmtp.sendmail("sender@example.net", ["alice@example.org"], MESSAGE) == {}
    after = visible()
    assert len(after) == 2
    assert sum(b"killed" in (p.read_bytes()) for sub in ("new", "cur")
               for p in (maildir / sub).iterdir()) == 0


# -- system users (root) --------------------------------------------------------------


def _system_settings(service: str, location: str) -> dict:
    return {
        "auth": {"passwd_file": "", "pam": service},
        "mail": {"location": location},
        "service": {"login_processes": 1, "mail_workers": 1, "user_worker_grace": 30.0,
                    "mail_privileged_group": "mail"},
    }


def _uids(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return next(line for line in text.splitlines() if line.startswith("Uid:")).split()[1:]


def test_lmtp_to_system_users_runs_in_their_own_worker_and_uid(start_imapd, make_system_user,
                                                               pam_service):
    """
    LMTP to a system user: the user's own worker (started for it, as a
    login starts it) stores the message as the user, in ~/Maildir and in
    a 2775 root:mail spool; root and uids below first_valid_uid get 550
    5.1.1 and a log line.
    """
    alice = make_system_user("alice")
    bob = make_system_user("bob")
    low = make_system_user("sys", system=True)
    port, settings = _lmtp(_system_settings(pam_service, "maildir:~/Maildir"))
    server = start_imapd(settings)
    with smtplib.LMTP(server.host, port) as lmtp:
        lmtp.ehlo("mta.test")
        assert lmtp.mail("sender@example.net")[0] == 250
        assert lmtp.rcpt(f"{alice.name}@example.org")[0] == 250
        assert lmtp.rcpt(f"{bob.name}@example.org")[0] == 250
        assert lmtp.rcpt(f"{low.name}@example.org")[:2] == (
            550, f"5.1.1 <{low.name}>: no such user here".encode())
        assert lmtp.rcpt("root@example.org")[0] == 550
        code, text = lmtp.data(MESSAGE)
        assert (code, lmtp.getreply()[0]) == (250, 250), text
    root_pid = server.daemon.process.pid
    for user in (alice, bob):
        procs = wait_for(lambda: [p for p in tree(root_pid)
                                  if p.title == f"imapd: worker {user.name} lmtp"],
                         f"{user.name}'s worker")
        assert _uids(procs[0].pid) == [str(user.uid)] * 4
        made = [p for p in [*(user.home / "Maildir").rglob("*")]]
        assert any(p.parent.name == "new" for p in made), made
        assert all(p.lstat().st_uid == user.uid for p in made), [
            (p, p.lstat().st_uid) for p in made]
    log = server.daemon.log()
    assert (f"Delivery to '{low.name}' refused: uid {low.uid} is below "
            "userdb.first_valid_uid 1000") in log
    assert "Delivery to 'root' refused: uid 0 (root) is never served" in log


def test_lmtp_to_a_system_users_spool_mbox(start_imapd, make_system_user, pam_service,
                                           mail_spool):
    """An mbox INBOX in a 2775 root:mail spool, written by the user's worker (dotlock through mail)."""
    alice = make_system_user("alice")
    port, settings = _lmtp(_system_settings(pam_service,
                                            f"mbox:~/mail:INBOX={mail_spool}/%u"))
    server = start_imapd(settings)
    with smtplib.LMTP(server.host, port) as lmtp:
        for _ in range(2):
            assert lmtp.sendmail("sender@example.net", [f"{alice.name}@example.org"],
                                 MESSAGE) == {}
    inbox = mail_spool / alice.name
    assert inbox.read_bytes().count(b"Subject: in her worker") == 2
    assert inbox.stat().st_uid == alice.uid
    assert sorted(p.name for p in mail_spool.iterdir()) == [alice.name]


def test_lda_as_root_drops_to_the_system_user(tmp_path, make_system_user, pam_service,
                                              mail_spool):
    """imapd-deliver run as root for a system user writes as that user; a low uid exits 67."""
    from e2e_helpers import toml_text

    alice = make_system_user("alice")
    low = make_system_user("sys", system=True)
    config = tmp_path / "imapd.toml"
    config.write_text(toml_text({
        "data_dir": str(tmp_path / "data"),
        "auth": {"passwd_file": "", "pam": pam_service},
        "mail": {"location": f"mbox:~/mail:INBOX={mail_spool}/%u",
                 "index_dir": str(tmp_path / "index")},
        "service": {"mail_privileged_group": "mail"},
    }))
    os.chmod(tmp_path, 0o755)

    def lda(user):
        return subprocess.run([sys.executable, "-m", "imapd.delivery.lda", "-c", str(config),
                               "-d", user], input=MESSAGE, env=daemon_env(), cwd=REPO,
                              capture_output=True, timeout=60)
    result = lda(alice.name)
    assert result.returncode == 0, result.stderr
    inbox = mail_spool / alice.name
    assert inbox.stat().st_uid == alice.uid
    assert inbox.read_bytes().count(b"Subject: in her worker") == 1
    made = list((alice.home / "mail").rglob("*"))
    assert all(p.lstat().st_uid == alice.uid for p in made), made
    result = lda(low.name)
    assert result.returncode == 67, result.stderr
    assert not (mail_spool / low.name).exists()
