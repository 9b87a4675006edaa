# -*- test-case-name: tests.storage.maildir -*-
"""
Helpers shared by the Maildir store tests: copies of the Dovecot fixture
and small Maildirs on C{tmp_path}.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

SHARED = next(p / "shared" for p in Path(__file__).resolve().parents if (p / "shared" / "corpus").is_dir())
FIXTURE = str(SHARED / "testdata" / "dovecot-2.3.19")
FIXTURE_MAILDIR = os.path.join(FIXTURE, "mdir", "Maildir")
CORPUS = str(SHARED / "corpus")


def make_writable(top: str) -> None:
    """The fixture is read-only; make a copy of it ours."""
    for dirpath, dirnames, filenames in os.walk(top):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IRWXU)
        for name in filenames:
            p = os.path.join(dirpath, name)
            os.chmod(p, os.stat(p).st_mode | stat.S_IRUSR | stat.S_IWUSR)


def copy_fixture(tmp_path) -> str:
    """
    Copy the Dovecot 2.3.19 Maildir to C{tmp_path} and add the C{cur/ new/
    tmp/} directories git cannot keep.

    @return: the root Maildir (INBOX).
    """
    root = os.path.join(str(tmp_path), "Maildir")
    shutil.copytree(FIXTURE_MAILDIR, root)
    make_writable(root)
    for entry in ["", *os.listdir(root)]:
        path = os.path.join(root, entry)
        if entry == "" or (entry.startswith(".") and os.path.isdir(path)):
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(path, sub), exist_ok=True)
    return root


def make_store(tmp_path, fsync: bool = False):
    """An empty Maildir store under C{tmp_path}."""
    from storage.maildir.store import MaildirStore, make_maildir

    root = os.path.join(str(tmp_path), "Maildir")
    make_maildir(root)
    return MaildirStore(root, "user", fsync=fsync)


def files(directory: str) -> dict[str, list[str]]:
    """The sorted file names of C{new/} and C{cur/}."""
    return {
        sub: sorted(os.listdir(os.path.join(directory, sub))) for sub in ("new", "cur")
    }
