# -*- test-case-name: tests.imapd.cluster.test_owner -*-
"""
Which host serves a user: the placement if it still holds, else the ring.

    directory = Directory(HostsFile(path), placements)
    host = directory.owner("alice@example.org")     # a HostEntry or None

Every call blocks (the host table and the placements are files on the
shared store): services call it from a thread.
"""

from __future__ import annotations

import time
from typing import NamedTuple, Optional

from imapd.cluster.hashing import DEFAULT_FORMAT, expand_key, hash32
from imapd.cluster.placement import Placements
from imapd.cluster.table import HostEntry, HostsFile, HostTable

__all__ = ["Directory", "Status"]


class Status(NamedTuple):
    """
    A user's placement.

    @ivar key: the hash key (C{director_username_hash} expanded).
    @ivar hash: the director hash.
    @ivar current: the host serving the user now (placed or hashed), or None.
    @ivar hashed: the host the ring gives the user, or None.
    @ivar placed: whether C{current} comes from a placement that holds.
    @ivar epoch: the host table's epoch.
    """

    key: str
    hash: int
    current: Optional[HostEntry]
    hashed: Optional[HostEntry]
    placed: bool
    epoch: int


class Directory:
    """
    @param hosts: the host table file.
    @param placements: the placement records, or None to follow the ring
        only (a site without placement memory).
    @param fmt: C{director_username_hash}, default C{%Lu}.
    """

    def __init__(self, hosts: HostsFile, placements: Optional[Placements] = None,
                 fmt: str = DEFAULT_FORMAT, clock=time.time, moves=None,
                 reports=None) -> None:
        self.hosts = hosts
        self.placements = placements
        self.fmt = fmt
        self.clock = clock
        #: The users being moved (L{imapd.cluster.moves.MoveBlocks}), or None.
        self.moves = moves
        #: The session reports (L{imapd.cluster.moves.SessionReports}), or None.
        self.reports = reports

    def blocked_until(self, user: str, now: float) -> Optional[float]:
        """When the move of C{user} ends, or None if it is not being moved."""
        if self.moves is None:
            return None
        return self.moves.blocked_until(expand_key(user, self.fmt), now)

    @staticmethod
    def _placed(table: HostTable, p) -> Optional[HostEntry]:
        if p is None:
            return None
        host = table.get(p.host)
        # A placement made before the host last went down, came back or was
        # flushed no longer holds (imapd.cluster.table).
        if host is None or not host.up or p.epoch < host.changed:
            return None
        return host

    def status(self, user: str, now: Optional[float] = None) -> Status:
        """Where C{user} is and where the ring would put it; records nothing."""
        return self.statuses([user], now)[0]

    def statuses(self, users, now: Optional[float] = None) -> list[Status]:
        """L{status} of several users, reading the table and placements once."""
        now = self.clock() if now is None else now
        table = self.hosts.table()
        keys = [expand_key(user, self.fmt) for user in users]
        placed = (self.placements.lookup_many(keys, now) if self.placements is not None
                  else dict.fromkeys(keys))
        result = []
        for key in keys:
            h = hash32(key.encode("utf-8"))
            hashed = table.hashed_owner(h)
            host = self._placed(table, placed[key])
            current = host if host is not None else hashed
            result.append(Status(key, h, current, hashed, host is not None, table.epoch))
        return result

    def owner(self, user: str, now: Optional[float] = None,
              record: bool = True) -> Optional[HostEntry]:
        """
        The host serving C{user}, or None when no host is up.  With
        C{record}, the answer is remembered (a new placement, or the
        refresh of the one that holds) for C{user_expire}.
        """
        now = self.clock() if now is None else now
        status = self.status(user, now)
        if record and status.current is not None and self.placements is not None:
            self.placements.record(status.key, status.current.address, status.epoch, now)
        return status.current


def directory_from_config(section, writer: Optional[str] = None) -> Directory:
    """
    The L{Directory} of a C{[cluster]} configuration section.

    @param writer: the placement record file name; default the section's
        C{node}, else this machine's host name.
    @raises ValueError: C{hosts_file} is not set.
    """
    import socket

    from imapd.cluster.moves import MoveBlocks, SessionReports, moves_path, reports_dir
    from imapd.cluster.placement import Placements, placements_dir

    if not section.hosts_file:
        raise ValueError("option 'cluster.hosts_file' is not set: there is no host table")
    if writer is None:
        writer = section.node or socket.gethostname()
    hosts = HostsFile(section.hosts_file)
    places = Placements(placements_dir(section.hosts_file), writer, section.user_expire)
    return Directory(hosts, places, section.username_hash,
                     moves=MoveBlocks(moves_path(section.hosts_file)),
                     reports=SessionReports(reports_dir(section.hosts_file), writer))
