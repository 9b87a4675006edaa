# -*- test-case-name: tests.imapd.cluster.test_placement -*-
"""
Placement memory: a placed user stays on its host while it is active and
for C{user_expire} seconds after (Dovecot's C{director_user_expire}); only
users not placed consult the ring, so adding a host or bringing one back
moves nobody at once.

Where it is kept (decided here; the issue left it open): one small record
file per writer in a directory beside the host table
(C{<hosts_file>.placements/<writer>}), each line

    <epoch> <host address> <unix time> <hash key>

A writer (a lookup service, or a node recording its users' sessions) only
ever rewrites its own file, by a temporary file and a rename, so writers
need no lock between them; a reader merges every writer's file and keeps
the latest line per key.  A line holds only while its host is in the
table, up, and has not changed since (the line's epoch >= the host's
C{changed}): a host that went down, came back or was flushed has lost its
placements, and its users are placed again by the ring.  Two writers that
placed one user differently within the same second disagree until one
sees the other's line: mail stays safe (the store allows it), only the
caches of one node are wasted.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Iterable, NamedTuple, Optional

from twisted.logger import Logger

__all__ = ["Placement", "Placements", "placements_dir"]

log = Logger(namespace="imapd.cluster")


def placements_dir(hosts_file: str) -> str:
    """The record directory that belongs to a host table file."""
    return hosts_file + ".placements"


class Placement(NamedTuple):
    epoch: int
    host: str
    when: float


def _parse(data: bytes) -> dict[str, Placement]:
    records: dict[str, Placement] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        fields = line.split(" ", 3)
        if len(fields) != 4:
            continue
        try:
            records[fields[3]] = Placement(int(fields[0]), fields[1], float(fields[2]))
        except ValueError:
            continue
    return records


def _serialize(records: Iterable[tuple[str, Placement]]) -> bytes:
    # Milliseconds: the latest line wins, and a move (imapd-admin cluster
    # move) made within the second after a node's own line must win.
    return "".join(f"{p.epoch} {p.host} {p.when:.3f} {key}\n"
                   for key, p in records).encode("utf-8")


class Placements:
    """
    The merged placement records of every writer, and this writer's own.

    @param directory: the record directory (L{placements_dir}).
    @param writer: this writer's file name (its node name or address).
    @param user_expire: seconds a placement holds after it was last made
        or refreshed.
    """

    def __init__(self, directory: str, writer: str, user_expire: float,
                 fsync: bool = False) -> None:
        if not writer or "/" in writer or writer.startswith("."):
            raise ValueError(f"{writer!r} cannot name a placement record file")
        self.directory = directory
        self.writer = writer
        self.user_expire = user_expire
        self.fsync = fsync
        self._mutex = threading.Lock()
        self._own: Optional[dict[str, Placement]] = None
        self._dirty = False
        # writer -> (stat identity, records) of the other writers' files
        self._others: dict[str, tuple[tuple, dict[str, Placement]]] = {}

    @property
    def own_path(self) -> str:
        return os.path.join(self.directory, self.writer)

    def _load_own(self) -> dict[str, Placement]:
        if self._own is None:
            try:
                with open(self.own_path, "rb") as f:
                    self._own = _parse(f.read())
            except FileNotFoundError:
                self._own = {}
        return self._own

    def _read_others(self) -> list[dict[str, Placement]]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        result = []
        seen = set()
        for name in names:
            if name == self.writer or name.startswith("."):
                continue
            path = os.path.join(self.directory, name)
            try:
                st = os.stat(path)
                ident = (st.st_ino, st.st_size, st.st_mtime_ns)
                cached = self._others.get(name)
                if cached is None or cached[0] != ident:
                    with open(path, "rb") as f:
                        cached = (ident, _parse(f.read()))
                    self._others[name] = cached
            except OSError:
                continue
            seen.add(name)
            result.append(cached[1])
        for name in set(self._others) - seen:
            del self._others[name]
        return result

    def lookup(self, key: str, now: float) -> Optional[Placement]:
        """The latest unexpired placement of C{key}, by any writer."""
        return self.lookup_many([key], now)[key]

    def lookup_many(self, keys: Iterable[str], now: float) -> dict[str, Optional[Placement]]:
        """L{lookup} of several keys, reading the other writers' files once."""
        with self._mutex:
            tables = [self._load_own()] + self._read_others()
        result: dict[str, Optional[Placement]] = {}
        for key in keys:
            best = None
            for records in tables:
                p = records.get(key)
                if p is not None and (best is None or p.when > best.when):
                    best = p
            result[key] = None if best is None or now - best.when >= self.user_expire else best
        return result

    def record(self, key: str, host: str, epoch: int, now: float) -> None:
        """Remember that C{key} is on C{host} now (written by L{flush})."""
        if "\n" in key or "\r" in key:
            return  # cannot be a line of the file; such a user follows the ring
        with self._mutex:
            self._load_own()[key] = Placement(epoch, host, now)
            self._dirty = True

    def forget(self, key: str) -> None:
        """Drop this writer's placement of C{key} (a move)."""
        with self._mutex:
            if self._load_own().pop(key, None) is not None:
                self._dirty = True

    def flush(self, now: Optional[float] = None) -> bool:
        """
        Write this writer's records, without the expired ones, when they
        changed.  Blocking.

        @return: whether a file was written.
        """
        from storage.maildir.files import atomic_write

        now = time.time() if now is None else now
        with self._mutex:
            if not self._dirty:
                return False
            own = self._load_own()
            for key in [k for k, p in own.items() if now - p.when >= self.user_expire]:
                del own[key]
            data = _serialize(sorted(own.items()))
            self._dirty = False
        os.makedirs(self.directory, exist_ok=True)
        atomic_write(self.own_path, data, fsync=self.fsync, mode=0o644)
        return True

    def users_on(self, host: str, now: float) -> list[str]:
        """Keys whose latest unexpired placement is on C{host}."""
        with self._mutex:
            merged: dict[str, Placement] = {}
            for records in [self._load_own()] + self._read_others():
                for key, p in records.items():
                    old = merged.get(key)
                    if old is None or p.when > old.when:
                        merged[key] = p
        return sorted(k for k, p in merged.items()
                      if p.host == host and now - p.when < self.user_expire)
