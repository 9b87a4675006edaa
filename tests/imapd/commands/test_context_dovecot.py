"""
CONTEXT=SEARCH compared with Dovecot 2.3 (C{/usr/sbin/dovecot}, a private
instance on its own configuration, no listener: each session is Dovecot's
C{imap} process in PREAUTH mode on pipes).  The same two-session script
runs on both servers; the ESEARCH and NOUPDATE lines each step produces
must be the same (other lines differ in wording and are not compared).

Known differences, on purpose, and so not in the script: Dovecot keeps
YOUNGER/OLDER and C{$} results "updated" (it cannot notice a result that
changes with the clock) and has no limit on updating searches; we say
C{NO [NOUPDATE]} for those (L{imapd.search.updates}).  Dovecot does not
offer CONTEXT=SORT.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import tempfile
import time

import pytest

DOVECOT = "/usr/sbin/dovecot"
IMAP = "/usr/lib/dovecot/imap"
DOVEADM = "/usr/bin/doveadm"
MAIL_UID = 65534

CONF = """\
base_dir = {top}/run
log_path = {top}/log
mail_location = maildir:{top}/mail/%u/Maildir
passdb {{
  driver = static
  args = password=pass
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={top}/mail/%u
}}
mail_uid = {uid}
mail_gid = {uid}
first_valid_uid = 1
ssl = no
listen = 127.0.0.1
protocols =
default_internal_user = root
default_login_user = root
service anvil {{
  chroot =
}}
"""

#: (session, command): A keeps results updated, B changes the mailbox.
SCRIPT = [
    ("A", "x1 UID SEARCH RETURN (UPDATE ALL) UNSEEN"),
    ("A", "x2 SEARCH RETURN (UPDATE COUNT) UNSEEN"),
    ("A", "x3 SEARCH RETURN (PARTIAL 2:3 COUNT) ALL"),
    ("A", "x4 UID SEARCH RETURN (PARTIAL 9:5 MIN) ALL"),
    ("A", "x5 SEARCH RETURN (CONTEXT) UNSEEN"),
    ("A", "x6 UID SEARCH RETURN (UPDATE) SUBJECT quokka"),
    ("B", "b1 STORE 1 -FLAGS (\\Seen)"),
    ("B", "b2 STORE 2 +FLAGS (\\Seen)"),
    ("A", "n1 NOOP"),
    ("B", "APPEND quokka"),
    ("A", "n2 NOOP"),
    ("B", "b3 STORE 4 +FLAGS (\\Deleted)"),
    ("B", "b4 EXPUNGE"),
    ("A", "f1 FETCH 1 FLAGS"),
    ("A", "n3 NOOP"),
    ("A", 'c1 CANCELUPDATE "x1"'),
    ("A", 'c2 CANCELUPDATE "nosuch"'),
    ("B", "APPEND other"),
    ("A", "n4 NOOP"),
    ("A", "u1 UID STORE 1,3 +FLAGS (\\Seen)"),
    ("A", "n5 NOOP"),
]


def message(subject: str) -> bytes:
    return f"From: a@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


def interesting(lines: list[str]) -> list[str]:
    """
    The lines compared: updates and results, EXISTS and EXPUNGE (whose
    order against the updates matters), and the tagged status word.
    """
    out = [l for l in lines if l.startswith(("* ESEARCH", "* NO [NOUPDATE"))
           or re.fullmatch(r"\* \d+ (EXISTS|EXPUNGE)", l)]
    if lines and not lines[-1].startswith("*"):
        out.append(lines[-1].split(" ")[1])
    return out


class DovecotSession:
    """One Dovecot C{imap} process in PREAUTH mode, on pipes."""

    def __init__(self, conf: str) -> None:
        self.proc = subprocess.Popen([IMAP, "-c", conf, "-u", "u"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buf = b""
        self.until(lambda line: line.startswith("* PREAUTH"))

    def until(self, done) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + 20
        while True:
            while b"\r\n" in self.buf:
                raw, self.buf = self.buf.split(b"\r\n", 1)
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if done(line):
                    return lines
            assert time.monotonic() < deadline, lines
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            if ready:
                data = os.read(self.proc.stdout.fileno(), 65536)
                assert data, lines
                self.buf += data

    def command(self, line: str) -> list[str]:
        tag = line.split(" ", 1)[0]
        self.proc.stdin.write(line.encode() + b"\r\n")
        self.proc.stdin.flush()
        return self.until(lambda l: l.startswith(tag + " "))

    def append(self, tag: str, data: bytes, flags: str = "") -> list[str]:
        self.proc.stdin.write(f"{tag} APPEND INBOX {flags}{{{len(data)}+}}\r\n".encode()
                              + data + b"\r\n")
        self.proc.stdin.flush()
        return self.until(lambda l: l.startswith(tag + " "))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


@pytest.fixture
def dovecot_conf():
    assert os.path.exists(DOVECOT) and os.path.exists(IMAP), "Dovecot is not installed"
    assert os.geteuid() == 0, "Dovecot's mail processes run as another user: run as root"
    top = tempfile.mkdtemp(prefix="dvctx", dir="/tmp")
    os.chmod(top, 0o755)
    os.makedirs(os.path.join(top, "run"))
    os.makedirs(os.path.join(top, "mail", "u"))
    os.chown(os.path.join(top, "mail"), MAIL_UID, MAIL_UID)
    os.chown(os.path.join(top, "mail", "u"), MAIL_UID, MAIL_UID)
    conf = os.path.join(top, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(CONF.format(top=top, uid=MAIL_UID))
    with open(os.path.join(top, "start.log"), "w") as err:
        started = subprocess.run([DOVECOT, "-c", conf], stdin=subprocess.DEVNULL,
                                 stdout=err, stderr=err, timeout=30)
    assert started.returncode == 0, open(os.path.join(top, "start.log")).read()
    try:
        yield conf
    finally:
        subprocess.run([DOVEADM, "-c", conf, "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        shutil.rmtree(top, ignore_errors=True)


def test_same_updates_as_dovecot(dovecot_conf, new_conv):
    """Every step of SCRIPT yields the same ESEARCH/NOUPDATE lines and status on both."""
    theirs_a, theirs_b = DovecotSession(dovecot_conf), DovecotSession(dovecot_conf)
    ours_a, ours_b = new_conv(), new_conv()
    for conv in (ours_a, ours_b):
        conv.login()

    class Ours:
        def __init__(self, conv):
            self.conv = conv

        def command(self, line):
            return self.conv.transact(line)

        def append(self, tag, data, flags=""):
            self.conv.send(f"{tag} APPEND INBOX {flags}{{{len(data)}+}}\r\n".encode()
                           + data + b"\r\n")
            return self.conv.lines()

    results = {}
    try:
        for name, (a, b) in {"dovecot": (theirs_a, theirs_b),
                             "ours": (Ours(ours_a), Ours(ours_b))}.items():
            for n in range(1, 7):
                subject = "quokka" if n == 3 else f"message {n}"
                a.append(f"a{n}", message(subject), "(\\Seen) " if n % 2 else "")
            a.command("s1 SELECT INBOX")
            b.command("s1 SELECT INBOX")
            steps = []
            counter = iter(range(100))
            for who, line in SCRIPT:
                session = a if who == "A" else b
                if line.startswith("APPEND "):
                    lines = session.append(f"ap{next(counter)}", message(line.split(" ", 1)[1]))
                else:
                    lines = session.command(line)
                steps.append((who, line, interesting(lines)))
            results[name] = steps
    finally:
        theirs_a.close()
        theirs_b.close()
    assert results["ours"] == results["dovecot"]
