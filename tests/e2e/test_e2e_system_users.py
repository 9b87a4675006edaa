"""
End to end, as root: system users made by the test (useradd, chpasswd) log
in through PAM (a test service file) over TLS to the real daemon in
single-process mode; the system user database gives their home, so
C{maildir:~/Maildir} is their own Maildir.  Root and uids below
C{first_valid_uid} are refused, with a log line saying why.

(The checks that the mail worker runs as the user belong to the
multi-process server; here the single process runs as root.)
"""

from __future__ import annotations

import imaplib

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from e2e_helpers import run_twistd
from tests.system_users import (  # noqa: F401 - fixtures, registered by name
    make_system_user, pam_service, system_root)


def pam_settings(service: str, **userdb) -> dict:
    return {
        "auth": {"passwd_file": "", "pam": service},
        "mail": {"location": "maildir:~/Maildir"},
        "userdb": userdb,
        "service": {"single_process": True},
    }


def tls_login(server, user: str, password: str) -> IMAPClient:
    client = IMAPClient(server.host, port=server.tls_port, ssl=True,
                        ssl_context=server.ssl_context(), timeout=30)
    client.login(user, password)
    return client


def refused(server, user: str, password: str) -> None:
    client = IMAPClient(server.host, port=server.tls_port, ssl=True,
                        ssl_context=server.ssl_context(), timeout=30)
    try:
        with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
            client.login(user, password)
    finally:
        client.shutdown()


def test_pam_login_over_tls_into_the_home_maildir(start_imapd, make_system_user, pam_service):
    alice = make_system_user("alice")
    server = start_imapd(pam_settings(pam_service))
    client = tls_login(server, alice.name, alice.password)
    try:
        client.append("INBOX", b"From: a@example.org\r\nSubject: pam\r\n\r\nhello\r\n")
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
    finally:
        client.logout()
    maildir = alice.home / "Maildir"
    files = list((maildir / "new").iterdir()) + list((maildir / "cur").iterdir())
    assert len(files) == 1 and b"Subject: pam" in files[0].read_bytes()
    log = server.daemon.log()
    assert f"PAM service {pam_service!r}" in log  # the start-up line names it
    assert alice.password not in log


def test_wrong_password_refused(start_imapd, make_system_user, pam_service):
    alice = make_system_user("alice")
    bob = make_system_user("bob")
    server = start_imapd(pam_settings(pam_service))
    refused(server, alice.name, "wrong " + alice.password)
    refused(server, alice.name, bob.password)
    refused(server, "imapdt_nobody_here", alice.password)
    log = server.daemon.log()
    assert f"Authentication refused for {alice.name!r}: PAM service" in log
    assert alice.password not in log and bob.password not in log


def test_uid_below_first_valid_uid_refused_with_a_log_line(start_imapd, make_system_user,
                                                          pam_service):
    service_account = make_system_user("sys", system=True)
    assert service_account.uid < 1000
    alice = make_system_user("alice")
    server = start_imapd(pam_settings(pam_service, system=True))
    # The password is right (PAM says so); the uid is not acceptable.
    refused(server, service_account.name, service_account.password)
    assert (f"Authentication refused for {service_account.name!r}: uid "
            f"{service_account.uid} is below userdb.first_valid_uid 1000"
            in server.daemon.log())
    tls_login(server, alice.name, alice.password).logout()


def test_root_refused_with_a_log_line(start_imapd, tmp_path):
    """
    Root's password is not the test's to set: a passwd-file vouches for
    it, and the system user database says it is uid 0.
    """
    (tmp_path / "root-passwd").write_text("root:{PLAIN}rootpw::::/root::\n")
    server = start_imapd({
        "auth": {"passwd_file": str(tmp_path / "root-passwd")},
        "userdb": {"system": True, "first_valid_uid": 0},
        "service": {"single_process": True},
    })
    refused(server, "root", "rootpw")
    assert "Authentication refused for 'root': uid 0 (root) is never served" in server.daemon.log()


def test_missing_pam_service_stops_the_start(tmp_path, tls_files):
    from e2e_helpers import write_config

    config, _ = write_config(tmp_path, tls_files, pam_settings("imapdt-no-such-service"))
    result = run_twistd(["--config", str(config)], tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert (f"{config}: option 'auth.pam': no PAM service file "
            "/etc/pam.d/imapdt-no-such-service") in output, output


def test_plain_login_command_too(start_imapd, make_system_user, pam_service):
    """LOGIN after STARTTLS, with imaplib: PAM is not tied to one client."""
    alice = make_system_user("alice")
    server = start_imapd(pam_settings(pam_service))
    imap = imaplib.IMAP4(server.host, server.port, timeout=30)
    try:
        imap.starttls(server.ssl_context())
        assert imap.login(alice.name, alice.password)[0] == "OK"
        assert imap.select("INBOX")[0] == "OK"
    finally:
        imap.logout()
    assert (alice.home / "Maildir" / "cur").is_dir()
