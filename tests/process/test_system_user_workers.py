"""
Issue 14's proof for system users, with the multi-process server as root:
two users made by the test (useradd, chpasswd) log in through PAM (a test
service file) over TLS; alice's mail goes to C{~/Maildir} and to an mbox
INBOX in a 2775 root:mail spool (dotlocked through
C{mail_privileged_group}); every file made is hers; her worker runs as
her; with its credentials bob's files cannot be opened, and with the
login process's credentials neither user's can.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e_helpers import start_imapd  # noqa: F401 - a fixture, registered by name
from imapclient import IMAPClient
from proctree import titled, tree, wait_for

from tests.system_users import (  # noqa: F401 - fixtures, registered by name
    mail_spool, make_system_user, pam_service, system_root, wait_for_spool)

MESSAGE = b"From: a@example.org\r\nSubject: own uid\r\n\r\nhello\r\n"


def _settings(service: str, location: str, **extra) -> dict:
    settings = {
        "auth": {"passwd_file": "", "pam": service},
        "mail": {"location": location},
        "service": {"login_processes": 1, "mail_workers": 1, "user_worker_grace": 30.0,
                    "mail_privileged_group": "mail"},
    }
    settings.update(extra)
    return settings


def _tls_login(server, user) -> IMAPClient:
    client = IMAPClient(server.host, port=server.tls_port, ssl=True,
                        ssl_context=server.ssl_context(), timeout=30)
    client.login(user.name, user.password)
    return client


def _status(pid: int) -> dict:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _credentials(pid: int) -> tuple[int, int, list[int]]:
    """The effective uid and gid and the supplementary groups of C{pid}."""
    fields = _status(pid)
    uid = int(fields["Uid"].split()[1])
    gid = int(fields["Gid"].split()[1])
    groups = [int(g) for g in fields["Groups"].split()]
    return uid, gid, groups


def _can_open_as(creds: tuple[int, int, list[int]], path: Path) -> bool:
    """Whether a process with C{creds} can open C{path} for reading (a forked child tries)."""
    uid, gid, groups = creds
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            with open(path, "rb"):
                pass
            os._exit(0)
        except PermissionError:
            os._exit(13)
        except BaseException:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 13), f"the probe failed with {code}"
    return code == 0


def _owned_files(top: Path) -> list[tuple[Path, int]]:
    return [(p, p.lstat().st_uid) for p in [top, *top.rglob("*")]]


def _worker_pid(server, user) -> int:
    root = server.daemon.process.pid
    procs = wait_for(lambda: [p for p in tree(root)
                              if p.title.startswith(f"imapd: worker {user.name} ")],
                     f"{user.name}'s worker")
    assert len(procs) == 1, procs
    return procs[0].pid


def test_system_users_get_workers_of_their_own_uid(start_imapd, make_system_user, pam_service):
    alice = make_system_user("alice")
    bob = make_system_user("bob")
    server = start_imapd(_settings(pam_service, "maildir:~/Maildir"))
    a = _tls_login(server, alice)
    b = _tls_login(server, bob)
    try:
        a.append("INBOX", MESSAGE)
        b.append("INBOX", MESSAGE)
        assert a.select_folder("INBOX")[b"EXISTS"] == 1
        assert b.select_folder("INBOX")[b"EXISTS"] == 1
        alice_worker = _worker_pid(server, alice)
        bob_worker = _worker_pid(server, bob)
        assert alice_worker != bob_worker
        # Her worker runs as her, real, effective, saved and filesystem ids.
        fields = _status(alice_worker)
        assert fields["Uid"].split() == [str(alice.uid)] * 4
        assert fields["Gid"].split()[:2] == [str(alice.gid)] * 2
        assert "0" not in fields["Groups"].split()
        # Every file made under her home is hers.
        maildir = alice.home / "Maildir"
        made = _owned_files(maildir)
        assert any(p.parent.name in ("new", "cur") for p, _ in made)
        assert all(uid == alice.uid for _, uid in made), made
        # With her worker's credentials bob's mail cannot be opened; with
        # its own, bob's worker can (the probe itself works).
        (bob_file,) = [p for p in (bob.home / "Maildir").rglob("*")
                       if p.parent.name in ("new", "cur")]
        (alice_file,) = [p for p, _ in made if p.parent.name in ("new", "cur")]
        assert not _can_open_as(_credentials(alice_worker), bob_file)
        assert _can_open_as(_credentials(bob_worker), bob_file)
        # A login process opens neither user's mail.
        (login,) = titled(server.daemon.process.pid, "imapd: login")
        login_creds = _credentials(login.pid)
        assert login_creds[0] not in (0, alice.uid, bob.uid)
        assert not _can_open_as(login_creds, alice_file)
        assert not _can_open_as(login_creds, bob_file)
    finally:
        a.logout()
        b.logout()


def test_mbox_in_a_2775_spool_through_the_privileged_group(start_imapd, make_system_user,
                                                           pam_service, mail_spool):
    alice = make_system_user("alice")
    server = start_imapd(_settings(pam_service, f"mbox:~/mail:INBOX={mail_spool}/%u"))
    a = _tls_login(server, alice)
    try:
        a.append("INBOX", MESSAGE)
        a.append("INBOX", MESSAGE)
        assert a.select_folder("INBOX")[b"EXISTS"] == 2
        worker = _worker_pid(server, alice)
        fields = _status(worker)
        assert fields["Uid"].split() == [str(alice.uid)] * 4
        # mail is her saved gid only: not effective, not a supplementary group.
        import grp

        mail_gid = grp.getgrnam("mail").gr_gid
        gids = fields["Gid"].split()
        assert gids[0] == gids[1] == str(alice.gid) and gids[2] == str(mail_gid)
        assert str(mail_gid) not in fields["Groups"].split()
    finally:
        a.logout()
    inbox = mail_spool / alice.name
    assert inbox.read_bytes().count(b"Subject: own uid") == 2
    assert inbox.stat().st_uid == alice.uid
    # The dotlock went away, and nothing else of hers was left in the spool.
    wait_for_spool(mail_spool, [alice.name])
    assert all(uid == alice.uid for _, uid in _owned_files(alice.home / "mail"))


def test_root_and_low_uids_refused_with_a_log_line(start_imapd, make_system_user,
                                                   pam_service):
    low = make_system_user("sys", system=True)
    alice = make_system_user("alice")
    server = start_imapd(_settings(pam_service, "maildir:~/Maildir"))
    client = IMAPClient(server.host, port=server.tls_port, ssl=True,
                        ssl_context=server.ssl_context(), timeout=30)
    try:
        from imapclient.exceptions import LoginError

        with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
            client.login(low.name, low.password)
    finally:
        client.shutdown()
    assert wait_for(lambda: (f"Authentication refused for {low.name!r}: uid {low.uid} "
                             "is below userdb.first_valid_uid 1000") in server.daemon.log(),
                    "the refusal's log line", timeout=10)
    # No worker was made for the refused user; alice still gets hers.
    root = server.daemon.process.pid
    assert not [p for p in tree(root) if p.title.startswith(f"imapd: worker {low.name} ")]
    _tls_login(server, alice).logout()
