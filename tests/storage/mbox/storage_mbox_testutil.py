# -*- test-case-name: tests.storage.mbox -*-
"""
Helpers shared by the mbox store tests: copies of the Dovecot fixture and
small mbox files on C{tmp_path}.
"""

from __future__ import annotations

import os
import shutil
import stat

from storage.mbox.mailbox import LockSettings
from storage.mbox.store import MboxStore

FIXTURE = "/work/shared/testdata/dovecot-2.3.19/mboxu"
CORPUS = "/work/shared/corpus"


def make_writable(top: str) -> None:
    """The fixture is read-only; make a copy of it ours."""
    for dirpath, dirnames, filenames in os.walk(top):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IRWXU)
        for name in filenames:
            p = os.path.join(dirpath, name)
            os.chmod(p, os.stat(p).st_mode | stat.S_IRUSR | stat.S_IWUSR)


def copy_fixture(tmp_path) -> str:
    """Copy Dovecot's mbox fixture to C{tmp_path}; return its top directory."""
    top = os.path.join(str(tmp_path), "mboxu")
    shutil.copytree(FIXTURE, top)
    make_writable(top)
    return top


def fixture_store(tmp_path, **kw) -> MboxStore:
    """A store on a copy of the fixture (C{mail/} root, C{inbox} INBOX)."""
    top = copy_fixture(tmp_path)
    return MboxStore(os.path.join(top, "mail"), "mboxu", inbox=os.path.join(top, "inbox"),
                     fsync=False, **kw)


def new_store(tmp_path, **kw) -> MboxStore:
    """An empty store under C{tmp_path}/mail."""
    root = os.path.join(str(tmp_path), "mail")
    os.makedirs(root, exist_ok=True)
    return MboxStore(root, "user", fsync=False, **kw)


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


__all__ = ["FIXTURE", "CORPUS", "copy_fixture", "fixture_store", "new_store", "write",
           "read", "LockSettings"]
