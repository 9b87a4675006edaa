"""
A private Dovecot 2.3 IMAP server for tests and tools that compare our
answers with Dovecot's (the SORT/THREAD comparison, the differential
harness, the stress test run against both servers).

C{start_dovecot} writes a configuration of its own under a scratch
directory (never the system's), listens on a free loopback port, checks
logins against a passwd-file of PLAIN passwords, and keeps mail where the
given C{mail_location} says.  Run as root, the mail processes run as the
unprivileged C{benchu} user (created if missing), and everything under the
scratch directory is handed to that user; otherwise they run as the
invoking user.  Import it as C{tests.dovecot_helpers} (the checkout is on
C{sys.path}).
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CONF_BASE", "DOVECOT", "DOVEADM", "DOVECOT_USER", "Dovecot", "dovecot_user", "free_port",
           "start_dovecot"]

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"

#: The unprivileged user Dovecot runs as when started by root.
DOVECOT_USER = "benchu"

#: How long Dovecot may take to accept connections (a busy CI machine).
START_TIMEOUT = 30.0

#: What every private Dovecot's configuration starts with: its own
#: directories under C{d}, IMAP in clear text on loopback.
CONF_BASE = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
"""

CONF = CONF_BASE + """\
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
{passdb}
userdb {{
  driver = static
  args = uid={user} gid={group} home={d}/mail/%u
}}
mail_location = {mail_location}
first_valid_uid = 1
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"""


def dovecot_user() -> pwd.struct_passwd:
    """The C{DOVECOT_USER} account, created (system user, no login) if missing."""
    try:
        return pwd.getpwnam(DOVECOT_USER)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", DOVECOT_USER],
                       check=True)
        return pwd.getpwnam(DOVECOT_USER)


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@dataclass
class Dovecot:
    """A running private Dovecot: where it listens and how to stop it."""

    root: Path
    port: int
    conf: Path
    start: list[str]
    host: str = "127.0.0.1"

    def log(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        subprocess.run(self.start + [f"{DOVEADM} -c {self.conf} stop"], check=False,
                       capture_output=True, timeout=30)


#: The password database of L{CONF}: the PLAIN passwd-file C{users}.
PASSWD_FILE_PASSDB = """\
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/users
}}"""


def start_dovecot(root, users: dict[str, str], mail_location: str = "maildir:{d}/mail/%u",
                  extra: str = "", passdb: str = PASSWD_FILE_PASSDB) -> Dovecot:
    """
    Start Dovecot on C{root} (an existing directory, possibly holding mail
    already under C{root/mail/<user>}).

    @param users: user name -> PLAIN password.
    @param mail_location: Dovecot's C{mail_location}; C{{d}} is C{root}.
    @param extra: more configuration lines, appended as they are.
    @param passdb: the C{passdb} block(s) (C{{d}} is C{root}), e.g. one
        with C{driver = ldap} (the LDAP comparison).
    @return: a L{Dovecot} that accepts connections.
    """
    root = Path(root)
    os.chmod(root, 0o755)
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir(exist_ok=True)
    port = free_port()
    conf = root / "dovecot.conf"
    if os.geteuid() == 0:
        pw = dovecot_user()
        user = group = DOVECOT_USER
        start = ["su", DOVECOT_USER, "-s", "/bin/sh", "-c"]
    else:
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        start = ["/bin/sh", "-c"]
    conf.write_text(CONF.format(d=root, user=user, group=group, port=port,
                                mail_location=mail_location.format(d=root), extra=extra,
                                passdb=passdb.format(d=root)))
    (root / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in users.items()))
    if os.geteuid() == 0:
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for base, dirs, files in os.walk(root):
            for entry in dirs + files:
                os.lchown(os.path.join(base, entry), pw.pw_uid, pw.pw_gid)
    subprocess.run(start + [f"{DOVECOT} -c {conf}"], check=True, timeout=60)
    server = Dovecot(root=root, port=port, conf=conf, start=start)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                if s.recv(100).startswith(b"* OK"):
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"dovecot did not accept connections on {port}:\n{server.log()}")
        time.sleep(0.1)
