# -*- test-case-name: tests.storage.migrate.test_migrate_kill -*-
"""
C{imapd-admin migrate} killed with SIGKILL (a real process, killed from
outside at several moments of its run) and run again until it completes:
the target is, file for file and byte for byte, what one uninterrupted run
makes of the same source, in both directions; a further run writes
nothing.  (L{test_migrate} kills in-process at chosen points; here the
kernel picks them.)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.mbox.store import MboxStore

from storage_migrate_testutil import (MAILDIR, MBOX, SHARED, maildir_view, mbox_home,
                                      mbox_view, run)

ROOT = Path(__file__).resolve().parents[3]
CORPUS = SHARED / "corpus" / "spamassassin" / "easy_ham" / "cur"
#: Messages added to the fixture: enough for a run of a few seconds.
COUNT = 1500
KEYWORDS = ["work", "home", "$Label1", "later"]


def source_home(tmp_path: Path) -> Path:
    """Dovecot's mbox fixture plus C{COUNT} corpus messages with flags and keywords."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    home = mbox_home(tmp_path)
    store = MboxStore(str(home / "mail"), "u", inbox=str(home / "mail" / "inbox"), fsync=False)
    box = store.open("INBOX")
    box.sync()
    tx = box.transaction()
    for i, path in enumerate(sorted(CORPUS.iterdir())[:COUNT]):
        data = path.read_bytes()
        if data.startswith(b"From "):
            data = data.split(b"\n", 1)[1]
        flags = [f for n, f in ((2, "\\Seen"), (5, "\\Flagged"), (7, "\\Answered")) if i % n == 0]
        flags += [KEYWORDS[i % 4]] if i % 3 == 0 else []
        tx.append(data, flags)
    tx.commit()
    box.close()
    return home


#: INBOX's modseq log in a Maildir and in an mbox tree: the source's,
#: carried as it is (its MODSEQs are the ones clients were given).
INBOX_LOGS = {"imapd-modseq", ".imapd/INBOX.modseq"}


def _tree(top: Path) -> dict[str, bytes]:
    """
    Every regular file under C{top} with its bytes, less what differs
    between any two runs, killed or not, and that no client sees: locks,
    the store's UIDVALIDITY generator (C{dovecot-uidvalidity*}), the
    uidlist's random mailbox GUID, the date of an mbox's pseudo message,
    and the time-based MODSEQs a modseq log
    starts with where the source had none (the log's shape stays: which
    UIDs, which flags).
    """
    out = {}
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            if ".lock" in name or name.startswith("dovecot-uidvalidity"):
                continue
            path = Path(dirpath) / name
            data = path.read_bytes()
            if name == "dovecot-uidlist":
                data = re.sub(rb"^(3 V\d+ N\d+) G[0-9a-f]+", rb"\1", data)
            elif data.startswith(b"From MAILER-DAEMON "):
                # The pseudo message is dated when it was written.
                head, sep, rest = data.partition(b"\n\n")
                head = re.sub(rb"(?m)^(From MAILER-DAEMON |Date: |Message-ID: ).*$", rb"\1",
                              head)
                data = head + sep + rest
            rel = str(path.relative_to(top))
            if "modseq" in name and rel not in INBOX_LOGS:
                data = re.sub(rb"(?<![0-9])1[0-9]{15}(?![0-9])", b"M", data)
            out[rel] = data
    return out


def _progress(home: Path, target: str) -> int:
    """How far a run got: files in the Maildir's cur/, or bytes of the mbox INBOX."""
    try:
        if target == MAILDIR:
            return len(os.listdir(home / "Maildir" / "cur"))
        return os.path.getsize(home / "mail" / "inbox")
    except FileNotFoundError:
        return 0


def _admin(home: Path, source: str, target: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", "from imapd.admin import console; console()", "migrate",
         "-u", "u", "--home", str(home), "--from", source, "--to", target],
        cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_at(home: Path, source: str, target: str, mark: int) -> bool:
    """Start a run and SIGKILL it once the target got past C{mark}; whether it was killed."""
    proc = _admin(home, source, target)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and _progress(home, target) <= mark:
            assert time.monotonic() < deadline, "the migration made no progress"
            time.sleep(0.002)
        if proc.poll() is not None:
            out, err = proc.communicate()
            assert proc.returncode == 0, err
            return False
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return True


def _complete(home: Path, source: str, target: str) -> bytes:
    """One run to its end (killed if it hangs); its standard output."""
    proc = _admin(home, source, target)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out


@pytest.mark.parametrize("direction", ["mbox-to-maildir", "maildir-to-mbox"])
def test_sigkilled_runs_then_a_complete_one_equal_one_uninterrupted_run(tmp_path, direction):
    """SIGKILL three times at growing marks, run again: the same files as an uninterrupted run."""
    reference = source_home(tmp_path / "reference")
    killed = reference.parent.parent / "killed" / "home"
    shutil.copytree(reference, killed)
    source, target = MBOX, MAILDIR
    if direction == "maildir-to-mbox":
        # The Maildir is this server's migration of the mbox; its mbox
        # becomes the target (moved away, kept for the comparison).
        for home in (reference, killed):
            assert run(home, MBOX, MAILDIR).copied == COUNT + 15
            (home / "mail").rename(home / "mail-original")
        source, target = MAILDIR, MBOX
    top = "Maildir" if target == MAILDIR else "mail"

    report = run(reference, source, target)
    assert report.copied == COUNT + 15
    whole = _tree(reference / top)
    assert set(whole) & INBOX_LOGS

    full = _progress(reference, target)
    kills = [_kill_at(killed, source, target, int(full * f)) for f in (0.1, 0.45, 0.8)]
    assert kills[0], "the first run ended before it could be killed: make COUNT larger"
    _complete(killed, source, target)

    assert _tree(killed / top) == whole
    if target == MAILDIR:
        assert maildir_view(killed / "Maildir") == maildir_view(reference / "Maildir")
        assert not os.listdir(killed / "Maildir" / "tmp")
    else:
        assert mbox_view(killed / "mail", killed / "mail" / "inbox") == mbox_view(
            reference / "mail", reference / "mail" / "inbox")
    out = _complete(killed, source, target)
    assert b"nothing to do" in out, out
    assert _tree(killed / top) == whole
