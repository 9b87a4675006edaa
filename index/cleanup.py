# -*- test-case-name: tests.index.test_index_cleanup -*-
"""
Keeping the index directory small: removing one mailbox's files, and a
periodic sweep by age and total size.

The index is a cache (DESIGN.md rule 2), so removing any file is always
safe: a process that has the database open notices the file is gone at its
next call (L{index.mailbox.MailboxIndex} compares device and inode) and
starts a fresh one; at worst it loses writes to the unlinked file.

A database's age is the time since its file was last modified, and
L{index.mailbox.MailboxIndex} touches the file whenever it opens it and at
most every L{index.mailbox.TOUCH_INTERVAL} seconds while in use, so a
mailbox read every day but never written keeps its cache.

The sweep walks one directory (the node's index directory), never the mail
store, and runs on a timer in a worker thread, not at start-up: start-up
and login stay independent of the number of mailboxes (issue 6).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional

from twisted.logger import Logger

from index.mailbox import index_path

__all__ = ["remove_index", "sweep", "SweepResult"]

_log = Logger()

#: The files beside a database that belong to it.
_COMPANIONS = ("-wal", "-shm")


def _unlink(path: str) -> int:
    """Remove C{path}; the bytes freed (0 when it was not there)."""
    try:
        size = os.stat(path).st_size
        os.unlink(path)
    except FileNotFoundError:
        return 0
    except OSError as e:
        _log.warn("index: cannot remove {path}: {error}", path=path, error=e)
        return 0
    return size


def remove_index(index_dir: str, identity: str) -> int:
    """
    Remove the database of the mailbox C{identity} and its WAL and
    shared-memory files (its mailbox was deleted or renamed away).

    @return: the bytes freed.
    """
    path = index_path(index_dir, identity)
    return sum(_unlink(p) for p in (path, *(path + s for s in _COMPANIONS)))


@dataclass(frozen=True)
class SweepResult:
    """What one L{sweep} removed and what is left."""

    removed: int
    freed: int
    kept_bytes: int


def _group(name: str) -> Optional[str]:
    # The database a file belongs to: "<hex>.db", "<hex>.db-wal",
    # "<hex>.db.corrupt-<time>[-wal]".  Anything else is not ours and is
    # left alone.
    head, dot, _rest = name.partition(".")
    if not dot or len(head) != 64 or not _rest.startswith("db"):
        return None
    try:
        int(head, 16)
    except ValueError:
        return None
    if ".corrupt-" in name:
        return name.split("-wal")[0].split("-shm")[0]
    return head + ".db"


def sweep(index_dir: str, max_age: float = 0, max_bytes: int = 0,
          now: Optional[float] = None) -> SweepResult:
    """
    Remove the databases of C{index_dir} not used for C{max_age} seconds
    (0: no age limit), then the least recently used ones until the
    directory holds at most C{max_bytes} (0: no size limit).  Files moved
    aside as corrupt count as databases of their own.  Never raises for a
    file that vanishes meanwhile or cannot be removed.
    """
    now = time.time() if now is None else now
    groups: dict[str, list[tuple[str, int, float]]] = {}
    try:
        entries = list(os.scandir(index_dir))
    except OSError as e:
        _log.warn("index: cannot list {dir}: {error}", dir=index_dir, error=e)
        return SweepResult(0, 0, 0)
    for entry in entries:
        group = _group(entry.name)
        if group is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        groups.setdefault(group, []).append((entry.path, st.st_size, st.st_mtime))
    # A group's last use: its newest file (the database itself is
    # touched on use; its WAL changes on every write).
    ordered = sorted(groups.values(), key=lambda files: max(m for _p, _s, m in files))
    total = sum(s for files in ordered for _p, s, _m in files)
    removed = freed = 0
    for files in ordered:
        last_use = max(m for _p, _s, m in files)
        size = sum(s for _p, s, _m in files)
        too_old = max_age > 0 and now - last_use > max_age
        too_big = max_bytes > 0 and total > max_bytes
        if not (too_old or too_big):
            break
        for path, _size, _mtime in files:
            freed += _unlink(path)
        removed += 1
        total -= size
    if removed:
        _log.info("index: removed {removed} cached mailboxes ({freed} bytes) from {dir}",
                  removed=removed, freed=freed, dir=index_dir)
    return SweepResult(removed, freed, total)
