"""
A server started as root whose virtual users' mail belongs to one
account (C{[service] mail_user}, Dovecot's mail_uid; issue 16 item 7: the
container starts as root to bind 143 and read 0600 keys, and must not
write mail as root).
"""

from __future__ import annotations

import os
import pwd

from imapclient import IMAPClient

from e2e_helpers import Daemon, PASSWORD, USER, daemon_pids, free_ports, write_config
from tests.system_users import make_system_user, system_root  # noqa: F401 - fixtures


def test_pool_workers_run_as_mail_user(tmp_path, tls_files, make_system_user, system_root):
    """
    The pool workers become C{mail_user}: a virtual user's Maildir and
    the index directory the master made belong to it, not to root; the
    master and the auth process stay root (the passwd-file is root's
    0600 file).
    """
    vmail = make_system_user("vmail", system=True)
    mail_root = system_root / "mail"
    mail_root.mkdir()
    os.chown(mail_root, vmail.uid, vmail.gid)
    index = system_root / "index"
    port, tls_port = free_ports(2)
    config, _ = write_config(tmp_path, tls_files, {
        "listen": [f"tcp:{port}:interface=127.0.0.1"],
        "service": {"mail_user": vmail.name, "mail_workers": 1},
        "mail": {"location": f"maildir:{mail_root}/%u", "index_dir": str(index)},
    })
    (tmp_path / "passwd").chmod(0o600)
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        daemon.wait_for_greeting(port)
        with IMAPClient("127.0.0.1", port, ssl=False) as client:
            client.login(USER, PASSWORD)
            client.append("INBOX", b"Subject: hi\r\n\r\nbody\r\n")
            assert client.select_folder("INBOX")[b"EXISTS"] == 1
        owners = {}
        for pid in daemon_pids(daemon.process.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace")
                owners[title.strip()] = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                continue
    finally:
        daemon.stop()
    workers = [uid for title, uid in owners.items() if title.startswith("imapd: worker pool")]
    assert workers and set(workers) == {vmail.uid}, owners
    assert [uid for t, uid in owners.items() if t.startswith("imapd: auth")] == [0], owners
    maildir = mail_root / USER
    assert os.stat(maildir).st_uid == vmail.uid
    messages = [maildir / d / n for d in ("cur", "new") for n in os.listdir(maildir / d)]
    assert len(messages) == 1 and os.stat(messages[0]).st_uid == vmail.uid
    assert os.stat(index).st_uid == vmail.uid
    assert pwd.getpwuid(os.stat(index).st_uid).pw_name == vmail.name


def test_mail_user_must_exist(tmp_path, tls_files):
    """A mail_user that does not exist stops the start in one line."""
    from e2e_helpers import run_twistd

    config, _ = write_config(tmp_path, tls_files,
                             {"service": {"mail_user": "imapd-no-such-user"}})
    result = run_twistd(["--config", str(config)], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "option 'service.mail_user': no user 'imapd-no-such-user'"), result.stderr
