"""
A site for imapd-admin tests: a configuration file, a passwd-file and
users whose mail is in Maildir or mbox, and a call of imapd.admin.main.
"""

import io
import os
import subprocess
import sys
from datetime import datetime, timezone

from imapd.admin import main

#: The mail location of each store kind (the passwd-file's userdb_mail).
LOCATIONS = {
    "maildir": "maildir:~/Maildir",
    "mbox": "mbox:~/mail:INBOX=~/inbox",
}


def admin(config, *argv):
    """Run imapd-admin in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    status = main(["--config", str(config), *argv], out, err)
    return status, out.getvalue(), err.getvalue()


#: What the console script pip writes runs (setup.cfg: imapd-admin =
#: imapd.admin:console); tests/test_packaging.py runs the installed one.
CONSOLE = "import sys; from imapd.admin import console; sys.argv[0] = 'imapd-admin'; console()"


def console(config, *argv, **kwargs):
    """Run imapd-admin as its console script does, in a process of its own."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", CONSOLE, "--config", str(config), *argv],
                          capture_output=True, text=True, env=env, timeout=120, **kwargs)


def make_site(tmp_path, kind="maildir", users=("alice", "bob"), extra=""):
    """
    A configuration whose users keep their mail in C{kind}; returns the
    path of the configuration file.
    """
    lines = []
    for user in users:
        home = tmp_path / "home" / user
        home.mkdir(parents=True, exist_ok=True)
        lines.append(f"{user}:{{PLAIN}}pw-{user}::::{home}::userdb_mail={LOCATIONS[kind]}\n")
    (tmp_path / "passwd").write_text("".join(lines))
    config = tmp_path / "imapd.toml"
    config.write_text(f'[auth]\npasswd_file = "passwd"\n'
                      f'[mail]\nindex_dir = "{tmp_path}/index"\n{extra}')
    return config


def message(subject, sender="carol@example.org", body="Hello.\r\n"):
    return (f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Date: Mon, 5 Jan 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@x>\r\n\r\n"
            f"{body}").encode()


def deliver(tmp_path, kind, user, mailbox="INBOX", messages=(), create=False):
    """
    Put messages (bytes, flags, internaldate) into a user's mailbox through
    the store a login opens; return the assigned UIDs.
    """
    from storage.registry import open_store

    store = open_store(LOCATIONS[kind], user, str(tmp_path / "home" / user),
                       str(tmp_path / "index"))
    try:
        if create:
            store.create(mailbox)
        box = store.open(mailbox)
        try:
            tx = box.transaction()
            for data, flags, date in messages:
                tx.append(data, flags, date or datetime(2026, 1, 5, tzinfo=timezone.utc))
            return list(tx.commit().appended)
        finally:
            box.close()
    finally:
        store.close()
