# -*- test-case-name: tests.storage.migrate -*-
"""
Helpers of the migration tests: copies of Dovecot's fixture, what a store
shows of a mailbox, and a fingerprint of a directory tree (to prove that a
source was not written and that a second run writes nothing).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from storage.maildir.store import MaildirStore
from storage.mbox.store import MboxStore
from storage.migrate.engine import migrate, open_source, open_target

SHARED = next(p / "shared" for p in Path(__file__).resolve().parents
              if (p / "shared" / "corpus").is_dir())
FIXTURE = SHARED / "testdata" / "dovecot-2.3.19"


def writable_copy(src: Path, dst: Path) -> Path:
    """Copy a read-only fixture tree and make the copy ours (with cur/new/tmp)."""
    shutil.copytree(src, dst)
    for dirpath, dirnames, filenames in os.walk(dst):
        os.chmod(dirpath, 0o700)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o600)
        if "cur" in dirnames or "dovecot-uidlist" in filenames:
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(dirpath, sub), exist_ok=True)
    return dst


def mbox_home(tmp_path: Path) -> Path:
    """A home with Dovecot's mbox fixture as C{~/mail} (INBOX C{~/mail/inbox})."""
    home = tmp_path / "home"
    home.mkdir()
    writable_copy(FIXTURE / "mboxu" / "mail", home / "mail")
    shutil.copy(FIXTURE / "mboxu" / "inbox", home / "mail" / "inbox")
    os.chmod(home / "mail" / "inbox", 0o600)
    return home


def maildir_home(tmp_path: Path) -> Path:
    """A home with Dovecot's Maildir fixture as C{~/Maildir}."""
    home = tmp_path / "home"
    home.mkdir()
    writable_copy(FIXTURE / "mdir" / "Maildir", home / "Maildir")
    return home


MBOX = "mbox:~/mail:INBOX=~/mail/inbox"
MAILDIR = "maildir:~/Maildir"


def run(home: Path, source: str, target: str, **kwargs):
    """One migration of user C{u} with C{home}."""
    return migrate(open_source(source, "u", str(home)), open_target(target, "u", str(home)),
                   **kwargs)


def view(store) -> dict[str, tuple[int, int, dict[int, frozenset[str]], dict[int, int]]]:
    """
    Every selectable mailbox as the store shows it: UIDVALIDITY, UIDNEXT,
    UID -> flags, UID -> RFC822.SIZE (read-only opens).
    """
    out = {}
    for info in store.list_mailboxes():
        if "\\Noselect" in info.attributes:
            continue
        box = store.open(info.name, readonly=True)
        snap = box.sync()
        out[info.name] = (snap.uidvalidity, snap.uidnext,
                          {m.uid: frozenset(m.flags) for m in snap.messages},
                          {m.uid: m.size for m in snap.messages})
        box.close()
    return out


def maildir_view(root: Path):
    return view(MaildirStore(str(root), "u", fsync=False))


def mbox_view(root: Path, inbox: Path):
    return view(MboxStore(str(root), "u", inbox=str(inbox), fsync=False))


def fingerprint(top: Path) -> dict[str, tuple]:
    """Every file and directory under C{top}: kind, size, mtime, inode and bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    data = f.read()
            out[os.path.relpath(path, top)] = (stat.S_IFMT(st.st_mode), st.st_size,
                                               st.st_mtime_ns, st.st_ino, data)
    return out
