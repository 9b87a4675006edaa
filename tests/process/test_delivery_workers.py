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
from tests.delivery.delivery_helpers import idling, location_for
from tests.system_users import (  # noqa: F401 - fixtures, registered by name
    mail_spool, make_system_user, pam_service, system_root, wait_for_spool)

MESSAGE = (b"From: Sender <sender@example.net>\r\nTo: alice@example.org\r\n"
           b"Subject: in her worker\r\n\r\nHello.\r\n")


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
        "mail": {"location": location_for(kind, tmp_path / "server0"), "nfs_storage": True},
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
    wait_for(lambda: "Delivered to alice (INBOX UID 1)" in server.daemon.log(),
             "the delivery's log line", timeout=10)


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


def _send(lmtp, recipient: str, message: bytes) -> float:
    """
    One transaction up to the end of its DATA (the final dot sent); the
    caller reads the reply.  The monotonic time the data ended.
    """
    lmtp.ehlo("mta.test")
    assert lmtp.mail("sender@example.net")[0] == 250
    assert lmtp.rcpt(recipient)[0] == 250
    lmtp.putcmd("data")
    assert lmtp.getreply()[0] == 354
    lmtp.send(message + b".\r\n")
    return time.monotonic()


def _waiting_for_a_lock(pid: int) -> bool:
    """Whether a thread of C{pid} sleeps (the dotlock's backoff between attempts)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            if "nanosleep" in Path(f"/proc/{pid}/task/{tid}/wchan").read_text():
                return True
        except OSError:
            continue
    return False


def _take_as_another_writer(lock: Path) -> None:
    """
    Take a dotlock the way any other writer does: create it exclusively.
    The mbox store keeps its own lock a clock tick after its reply (to
    settle the file's mtime), so wait for that one to go first; writing
    over it in place would leave the store to remove ours.
    """
    def created() -> bool:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.uname().nodename} {os.getpid()}\n")
        return True
    wait_for(created, "the store's own lock to go")


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_worker_killed_during_a_delivery_answers_451_and_writes_nothing(start_imapd, tmp_path,
                                                                        kind):
    """
    The worker holding a delivery dies (SIGKILL while it waits for the
    Maildir's uidlist lock or the mbox's dotlock, held elsewhere): the MTA
    hears 451 4.3.0 at once (not after delivery_timeout), the mailbox is
    as it was, and the restarted worker delivers the retry exactly once.
    """
    root = tmp_path / "server0"
    port, settings = _lmtp({"service": {"login_processes": 1, "mail_workers": 1},
                            "mail": {"location": location_for(kind, root)},
                            "lmtp": {"delivery_timeout": 120.0}})
    server = start_imapd(settings)
    maildir = root / "mail" / "alice"
    inbox = root / "mail" / "alice.inbox"
    with smtplib.LMTP(server.host, port) as lmtp:
        assert lmtp.sendmail("sender@example.net", ["alice@example.org"], MESSAGE) == {}

    def stored() -> list[bytes]:
        if kind == "mbox":
            return [inbox.read_bytes()]
        return sorted(p.read_bytes() for sub in ("new", "cur") for p in (maildir / sub).iterdir())
    before = stored()
    assert sum(m.count(b"Subject: in her worker") for m in before) == 1
    # Another writer holds the lock: the delivery waits for it.
    lock = maildir / "dovecot-uidlist.lock" if kind == "maildir" else Path(f"{inbox}.lock")
    _take_as_another_writer(lock)
    try:
        with smtplib.LMTP(server.host, port) as lmtp:
            _send(lmtp, "alice@example.org",
                  MESSAGE.replace(b"Subject: in", b"Subject: killed in"))
            (worker,) = wait_for(lambda: titled(server.daemon.process.pid,
                                                "imapd: worker pool-1"), "the worker")
            # Let the delivery reach the lock, then kill the worker under it.
            wait_for(lambda: _waiting_for_a_lock(worker.pid), "the delivery at the lock")
            started = time.monotonic()
            os.kill(worker.pid, signal.SIGKILL)
            code, text = lmtp.getreply()
            assert (code, text[:5]) == (451, b"4.3.0"), text
            assert time.monotonic() - started < 10
    finally:
        lock.unlink()
    assert stored() == before
    # Logged by the process that answered (the services process, on a
    # link); its lines reach the daemon's log through the master, a moment
    # after the MTA's reply.
    wait_for(lambda: "ended during a delivery; answered 451" in server.daemon.log(),
             "the log line of the 451", timeout=10)
    # The MTA tries again: the new worker delivers it once.
    with smtplib.LMTP(server.host, port) as lmtp:
        assert lmtp.sendmail("sender@example.net", ["alice@example.org"],
                             MESSAGE.replace(b"Subject: in", b"Subject: retried in")) == {}
    after = b"".join(stored())
    assert after.count(b"Subject: in her worker") == 1
    assert after.count(b"Subject: retried in her worker") == 1
    assert b"killed" not in after


def test_a_pool_workers_deliveries_do_not_pass_through_the_master(start_imapd, tmp_path):
    """
    The services process has a link of its own to each pool worker: with
    the master stopped (SIGSTOP), deliveries to virtual users, a small
    message (in the request) and one past 1 MB (its descriptor passed on
    the link), are still stored and answered, each in the user's worker.
    """
    root = tmp_path / "server0"
    port, settings = _lmtp({"service": {"login_processes": 1, "mail_workers": 2},
                            "mail": {"location": location_for("maildir", root)}})
    server = start_imapd(settings)
    with smtplib.LMTP(server.host, port) as lmtp:
        assert lmtp.sendmail("sender@example.net", ["alice@example.org"], MESSAGE) == {}
    # The links are made as the processes come up; give the last ones time.
    time.sleep(1.0)
    big = MESSAGE.replace(b"Subject: in", b"Subject: big in") \
        + b"".join(b"%076d\r\n" % n for n in range(16_000))
    master = server.daemon.process.pid
    os.kill(master, signal.SIGSTOP)
    try:
        with smtplib.LMTP(server.host, port, timeout=20) as lmtp:
            assert lmtp.sendmail("sender@example.net", ["alice@example.org"],
                                 MESSAGE.replace(b"Subject: in", b"Subject: direct in")) == {}
            assert lmtp.sendmail("sender@example.net", ["alice@example.org"], big) == {}
    finally:
        os.kill(master, signal.SIGCONT)
    stored = [p.read_bytes() for sub in ("new", "cur")
              for p in (root / "mail" / "alice" / sub).iterdir()]
    assert len(stored) == 3
    assert sum(b"Subject: direct in her worker" in m for m in stored) == 1
    (large,) = [m for m in stored if b"Subject: big in" in m]
    assert len(big) > 1 << 20
    assert large.endswith(b"%076d\n" % 15_999) and large.count(b"\n") > 16_000


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
    # The dotlock went away, and nothing else of hers was left in the spool.
    wait_for_spool(mail_spool, [alice.name])


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


def _worker_of(root_pid: int, user: str) -> list:
    return [p for p in tree(root_pid) if p.title.startswith(f"imapd: worker {user} ")]


def test_system_user_lmtp_and_lda_end_to_end(start_imapd, make_system_user, pam_service,
                                             tmp_path):
    """
    Issue 15 with issue 14, as root in multi-process mode: a system user
    made here logs in (PAM, TLS) and IDLEs; an LMTP delivery runs in the
    worker of her session (the only worker of hers, running as her uid)
    and wakes her IDLE there within a second, inotify being off
    (nfs_storage) and the poll 30 s away; imapd-deliver run as root
    delivers as her too; every file made under her home is hers.
    """
    from e2e_helpers import toml_text
    from imapclient import IMAPClient

    alice = make_system_user("alice")
    port, settings = _lmtp(_system_settings(pam_service, "maildir:~/Maildir"))
    settings["mail"]["nfs_storage"] = True
    settings["limits"] = {"idle_poll_interval": 30.0, "failed_login_delay": 0.1}
    server = start_imapd(settings)
    root_pid = server.daemon.process.pid
    client = IMAPClient(server.host, port=server.tls_port, ssl=True,
                        ssl_context=server.ssl_context(), timeout=30)
    client.login(alice.name, alice.password)
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        (worker,) = wait_for(lambda: _worker_of(root_pid, alice.name), "her worker")
        assert _uids(worker.pid) == [str(alice.uid)] * 4
        client.idle()
        with smtplib.LMTP(server.host, port) as lmtp:
            ended = _send(lmtp, f"{alice.name}@example.org", MESSAGE)
            assert lmtp.getreply() == (250, f"2.0.0 <{alice.name}@example.org> Saved".encode())
            responses = client.idle_check(timeout=1.0)
            waited = time.monotonic() - ended
        assert (1, b"EXISTS") in responses, responses
        assert waited < 1.0, waited
        client.idle_done()
        # The delivery started no worker of its own: it ran in hers.
        assert [p.pid for p in _worker_of(root_pid, alice.name)] == [worker.pid]
        assert not [p for p in tree(root_pid) if p.title == f"imapd: worker {alice.name} lmtp"]
        # The LDA, as an MTA's local mailer runs it: as root, on the same configuration.
        config = tmp_path / "lda.toml"
        config.write_text(toml_text({
            "data_dir": str(tmp_path / "lda-data"),
            "auth": {"passwd_file": "", "pam": pam_service},
            "mail": {"location": "maildir:~/Maildir", "index_dir": str(tmp_path / "lda-index")},
        }))
        os.chmod(tmp_path, 0o755)
        result = subprocess.run([sys.executable, "-m", "imapd.delivery.lda", "-c", str(config),
                                 "-d", alice.name],
                                input=MESSAGE.replace(b"in her worker", b"by the LDA"),
                                env=daemon_env(), cwd=REPO, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert client.select_folder("INBOX")[b"EXISTS"] == 2
        bodies = [data[b"RFC822"] for data in client.fetch([1, 2], ["RFC822"]).values()]
        assert [b"Subject: in her worker" in b for b in bodies] == [True, False]
        assert [b"Subject: by the LDA" in b for b in bodies] == [False, True]
    finally:
        client.logout()
    made = [alice.home / "Maildir", *(alice.home / "Maildir").rglob("*")]
    assert sum(p.parent.name in ("new", "cur") for p in made) == 2
    assert all(p.lstat().st_uid == alice.uid for p in made), [
        (p, p.lstat().st_uid) for p in made if p.lstat().st_uid != alice.uid]


def _written(pid: int) -> int:
    """Octets process C{pid} has written (its /proc io C{wchar})."""
    text = Path(f"/proc/{pid}/io").read_text()
    return int(next(line for line in text.splitlines() if line.startswith("wchar:")).split()[1])


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_virtual_users_delivery_runs_in_the_pool_worker_of_her_sessions(start_imapd, tmp_path,
                                                                         kind):
    """
    Two pool workers: the one holding alice's IDLE session writes the
    message (its written octets grow by about the message's size, stored
    with LF line ends, the other's by a few control messages) and wakes
    her within a second, inotify being off.
    """
    port, settings = _lmtp({
        "service": {"login_processes": 1, "mail_workers": 2},
        "mail": {"location": location_for(kind, tmp_path / "server0"), "nfs_storage": True},
        "limits": {"idle_poll_interval": 30.0, "failed_login_delay": 0.1},
    })
    server = start_imapd(settings)
    root_pid = server.daemon.process.pid
    client = idling(server)
    big = MESSAGE + b"".join(b"line %d of a long body\r\n" % n for n in range(4000))
    try:
        workers = {int(p.title.rsplit("-", 1)[1]) - 1: p.pid for p in tree(root_pid)
                   if p.title.startswith("imapd: worker pool-")}
        assert sorted(workers) == [0, 1]
        hers = workers[pool_index(server.user, 2)]
        other = workers[1 - pool_index(server.user, 2)]
        before = {pid: _written(pid) for pid in (hers, other)}
        with smtplib.LMTP(server.host, port) as lmtp:
            ended = _send(lmtp, f"{server.user}@example.org", big)
            assert lmtp.getreply()[0] == 250
            lines = client.unsolicited(1, seconds=1.0)
            waited = time.monotonic() - ended
        assert lines == ["* 1 EXISTS"] and waited < 1.0, (lines, waited)
        assert _written(hers) - before[hers] > 0.9 * len(big)
        assert _written(other) - before[other] < 0.1 * len(big)
    finally:
        client.close()
