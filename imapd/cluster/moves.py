# -*- test-case-name: tests.imapd.cluster.test_moves -*-
"""
Moving users without two nodes serving one user at once (Dovecot's
director: a move blocks the user's new logins, kicks the old sessions,
waits until they are gone plus C{director_user_kick_delay}, then lets
logins through on the new host).

C{imapd-admin cluster move USER HOST} and C{cluster flush HOST}
(L{imapd.cluster.admin}) do it with two kinds of small files on the
shared store, beside the host table:

  - C{<hosts_file>.moves}, the blocks: one line C{<until> <key>} per user
    being moved, written only by the admin command, under the NFS-safe
    dotlock with an atomic rename (L{MoveBlocks}).  A node opening a
    session for a blocked user waits until the line is gone or its
    C{until} has passed (L{wait_unblocked}, in
    L{imapd.cluster.sessions.TrackingRealm}): the client's LOGIN is
    answered late, not refused.  C{until} bounds the wait even if the
    admin command dies.
  - C{<hosts_file>.sessions/<writer>}, the session reports: the hash keys
    of the users each session writer (a node, or one worker of a node)
    has sessions of, rewritten when that set changes
    (L{SessionReports}).  The admin command reads the old host's reports
    to see its sessions gone.

The old host's sessions are ended by the old host itself, at its next
check (L{imapd.cluster.sessions.NodeSessionsService}) after the new
placement is written.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Iterable, Optional

from twisted.internet import task

__all__ = ["MoveBlocks", "SessionReports", "moves_path", "reports_dir", "wait_unblocked",
           "wait_sessions_gone", "POLL"]

#: Seconds between looks at the blocks while a login waits, and at the
#: session reports while a move waits.
POLL = 0.1


def moves_path(hosts_file: str) -> str:
    return hosts_file + ".moves"


def reports_dir(hosts_file: str) -> str:
    return hosts_file + ".sessions"


class MoveBlocks:
    """
    The C{.moves} file: which users' logins wait, and until when.

    Reads are cheap (an C{os.stat} per call; the file is parsed again
    only when it changed).  Every call blocks: call from a thread.
    """

    def __init__(self, path: str, lock_timeout: Optional[float] = None,
                 fsync: bool = True) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self.fsync = fsync
        self._mutex = threading.Lock()
        self._ident = None
        self._blocks: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        blocks: dict[str, float] = {}
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return blocks
        for line in data.decode("utf-8", "replace").split("\n"):
            until, _, key = line.partition(" ")
            try:
                blocks[key] = float(until)
            except ValueError:
                continue
        return blocks

    def blocks(self) -> dict[str, float]:
        """key -> until, as the file says now."""
        try:
            st = os.stat(self.path)
            ident = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            ident = None
        with self._mutex:
            if ident != self._ident:
                self._blocks = self._read() if ident is not None else {}
                self._ident = ident
            return self._blocks

    def blocked_until(self, key: str, now: float) -> Optional[float]:
        """When C{key}'s block ends, or None if it is not blocked now."""
        until = self.blocks().get(key)
        return until if until is not None and until > now else None

    def _change(self, change: Callable[[dict[str, float]], None]) -> None:
        from storage.maildir.files import atomic_write, locked

        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with locked(self.path, self.lock_timeout):
            blocks = self._read()
            change(blocks)
            now = time.time()
            data = "".join(f"{until:.3f} {key}\n" for key, until in sorted(blocks.items())
                           if until > now)
            atomic_write(self.path, data.encode("utf-8"), fsync=self.fsync, mode=0o644)

    def block(self, keys: Iterable[str], until: float) -> None:
        """Make C{keys}' new logins wait, at most until C{until}."""
        def add(blocks):
            for key in keys:
                if "\n" not in key and "\r" not in key:
                    blocks[key] = max(until, blocks.get(key, 0.0))
        self._change(add)

    def release(self, keys: Iterable[str]) -> None:
        def drop(blocks):
            for key in keys:
                blocks.pop(key, None)
        self._change(drop)


class SessionReports:
    """
    The C{.sessions} directory: one file per session writer, the hash keys
    of the users it has sessions of, one a line.

    @param writer: this writer's file name (None: a reader only).
    """

    def __init__(self, directory: str, writer: Optional[str] = None) -> None:
        self.directory = directory
        self.writer = writer
        self._written: Optional[frozenset] = None

    def report(self, keys: Iterable[str]) -> bool:
        """Write this writer's keys when they changed.  Blocking."""
        from storage.maildir.files import atomic_write

        keys = frozenset(k for k in keys if "\n" not in k and "\r" not in k)
        if keys == self._written:
            return False
        os.makedirs(self.directory, exist_ok=True)
        data = "".join(f"{k}\n" for k in sorted(keys)).encode("utf-8")
        # No fsync: after a crash the report is at worst stale, which a
        # move survives (it waits at most move_timeout).
        atomic_write(os.path.join(self.directory, self.writer), data, fsync=False,
                     mode=0o644)
        self._written = keys
        return True

    def sessions_of(self, host: str, keys: Iterable[str]) -> set[str]:
        """
        Which of C{keys} have sessions on C{host}: in the reports of the
        writers C{host} and C{host~...} (its workers).
        """
        wanted = set(keys)
        found: set[str] = set()
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return found
        for name in names:
            if name != host and not name.startswith(host + "~"):
                continue
            try:
                with open(os.path.join(self.directory, name), "rb") as f:
                    lines = f.read().decode("utf-8", "replace").split("\n")
            except OSError:
                continue
            found.update(wanted.intersection(lines))
        return found


async def wait_unblocked(blocked_until: Callable[[float], Optional[float]], clock,
                         runner) -> float:
    """
    Wait while C{blocked_until(now)} (blocking, run by C{runner}) says the
    user is being moved.

    @return: the seconds waited, 0 if the user was not being moved.
    """
    started = clock.seconds()
    waited = False
    while True:
        now = time.time()
        until = await runner(blocked_until, now)
        if until is None:
            return clock.seconds() - started if waited else 0
        waited = True
        await task.deferLater(clock, max(0.0, min(POLL, until - now)), lambda: None)


def wait_sessions_gone(reports: SessionReports, host: str, keys: Iterable[str],
                       deadline: float, sleep=time.sleep, now=time.time) -> set[str]:
    """
    Blocking: wait until no report of C{host} lists one of C{keys}, or
    C{deadline}.

    @return: the keys still listed (empty when all are gone).
    """
    keys = set(keys)
    while True:
        left = reports.sessions_of(host, keys)
        if not left or now() >= deadline:
            return left
        sleep(POLL)

