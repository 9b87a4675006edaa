# -*- test-case-name: tests.storage.mbox.test_mbox_dovecot -*-
"""
Interoperation with a real Dovecot 2.3 (C{/usr/sbin/dovecot}, run as a
private instance with its own base directory): Dovecot reads the UIDs,
flags and keywords we wrote, and we read what Dovecot then changes and
saves.  Skipped where Dovecot is missing or cannot be started (it needs
root to switch to an unprivileged mail user).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from storage.mbox.store import MboxStore

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
MAIL_UID = 65534

CONF = """\
base_dir = {top}/run
log_path = {top}/log
mail_location = mbox:{top}/mail/%u:INBOX={top}/mail/%u/inbox:INDEX=MEMORY
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


def start_dovecot(location: str | None = None) -> tuple[str, str]:
    """
    Start a private Dovecot instance on L{CONF}, with C{location} (where
    C{{top}} is its directory) as mail_location if given; return its
    directory and configuration file.
    """
    # .ci/run installs Dovecot and runs as root; anywhere else a missing
    # Dovecot is a failure to look at, not a silent skip.
    assert os.path.exists(DOVECOT) and os.path.exists(DOVEADM), "Dovecot is not installed"
    assert os.geteuid() == 0, "this test runs Dovecot's mail processes as another user: run as root"
    top = tempfile.mkdtemp(prefix="dv", dir="/tmp")
    os.chmod(top, 0o755)
    os.makedirs(os.path.join(top, "run"))
    os.makedirs(os.path.join(top, "mail", "u"))
    conf = os.path.join(top, "dovecot.conf")
    text = CONF.format(top=top, uid=MAIL_UID)
    if location is not None:
        text = "\n".join(f"mail_location = {location.format(top=top)}"
                         if line.startswith("mail_location =") else line
                         for line in text.split("\n"))
    with open(conf, "w") as f:
        f.write(text)
    # The daemon keeps inherited descriptors: give it none of our pipes.
    with open(os.path.join(top, "start.log"), "w") as err:
        started = subprocess.run([DOVECOT, "-c", conf], stdin=subprocess.DEVNULL,
                                 stdout=err, stderr=err, timeout=30)
    if started.returncode != 0:
        with open(os.path.join(top, "start.log")) as err:
            why = err.read().strip()
        shutil.rmtree(top, ignore_errors=True)
        pytest.fail(f"dovecot did not start: {why}")
    return top, conf


def chown_mail(top: str) -> None:
    """Give Dovecot's mail user what we wrote under C{top}/mail."""
    for dirpath, dirnames, filenames in os.walk(os.path.join(top, "mail")):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), MAIL_UID, MAIL_UID)
    os.chown(os.path.join(top, "mail"), MAIL_UID, MAIL_UID)


@pytest.fixture
def dovecot():
    """A private Dovecot instance; yields (top directory, doveadm runner)."""
    top, conf = start_dovecot()

    def doveadm(*args, stdin=None):
        chown_mail(top)
        r = subprocess.run([DOVEADM, "-c", conf, *args], input=stdin, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    try:
        yield top, doveadm
    finally:
        subprocess.run([DOVEADM, "-c", conf, "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        shutil.rmtree(top, ignore_errors=True)


def _fetch(doveadm) -> dict[int, set[str]]:
    out = doveadm("fetch", "-u", "u", "uid flags", "mailbox", "INBOX", "all")
    result, uid = {}, None
    for line in out.splitlines():
        if line.startswith("uid: "):
            uid = int(line[5:])
        elif line.startswith("flags:"):
            result[uid] = set(line[6:].split()) - {"\\Recent"}
    return result


def test_dovecot_reads_our_writes_and_we_read_its(dovecot):
    """UIDs, flags and keywords agree in both directions."""
    top, doveadm = dovecot
    store = MboxStore(os.path.join(top, "mail", "u"), "u", fsync=False)
    box = store.open("INBOX")
    t = box.transaction()
    t.append(b"Subject: one\r\n\r\nbody\r\n", ["\\Seen", "$Work"])
    t.append(b"Subject: two\r\n\r\nb2\r\n", ["\\Flagged"])
    t.append(b"Subject: three\r\n\r\nb3\r\n")
    t.commit()
    box.sync()
    t = box.transaction()
    t.set_flags(2, frozenset({"\\Answered", "proj"}))
    t.expunge(3)
    t.commit()
    ours = {m.uid: set(m.flags) for m in box.sync().messages}
    assert _fetch(doveadm) == ours == {1: {"\\Seen", "$Work"}, 2: {"\\Answered", "proj"}}
    doveadm("flags", "add", "-u", "u", "\\Deleted kwnew", "mailbox", "INBOX", "uid", "1")
    doveadm("save", "-u", "u", "-m", "INBOX", stdin="Subject: dove\n\nsaved by dovecot\n")
    dove = _fetch(doveadm)
    snap = box.sync()
    assert {m.uid: set(m.flags) for m in snap.messages} == dove
    assert dove[1] == {"\\Seen", "\\Deleted", "$Work", "kwnew"}
    new_uid = max(dove)
    assert new_uid == 4
    assert box.read(new_uid) == b"Subject: dove\r\n\r\nsaved by dovecot\r\n"
    # And our next write keeps Dovecot's UIDs.
    t = box.transaction()
    t.expunge(1)
    t.append(b"Subject: five\r\n\r\nb5\r\n")
    assert t.commit().appended == (5,)
    assert sorted(_fetch(doveadm)) == [2, 4, 5]


def test_dovecot_reads_keywords_we_added_in_place(dovecot):
    """X-IMAPbase with padding, and a keyword added into it in place, read by Dovecot."""
    top, doveadm = dovecot
    store = MboxStore(os.path.join(top, "mail", "u"), "u", fsync=False)
    box = store.open("INBOX")
    t = box.transaction()
    t.append(b"Subject: one\r\n\r\nbody\r\n", ["$Work"])
    t.append(b"Subject: two\r\n\r\nb2\r\n")
    t.commit()
    box.sync()
    inode = os.stat(store.layout.inbox).st_ino
    size = os.path.getsize(store.layout.inbox)
    t = box.transaction()
    t.set_flags(2, frozenset({"$Later", "\\Seen"}))
    t.commit()
    assert (os.stat(store.layout.inbox).st_ino, os.path.getsize(store.layout.inbox)) == (
        inode, size)
    assert _fetch(doveadm) == {1: {"$Work"}, 2: {"$Later", "\\Seen"}}
    doveadm("flags", "add", "-u", "u", "$Later", "mailbox", "INBOX", "uid", "1")
    assert {m.uid: set(m.flags) for m in box.sync().messages} == {
        1: {"$Work", "$Later"}, 2: {"$Later", "\\Seen"}}
