# -*- test-case-name: tests.imapd.cluster.test_table -*-
"""
The host table: one small JSON file on the shared store.

    {"epoch": 7,
     "hosts": [{"address": "127.0.0.2", "port": 143, "lmtp_port": 24,
                "weight": 100, "up": true, "changed": 3}, ...]}

Every node, MTA lookup and proxy reads it and computes the same owner for
a user (L{imapd.cluster.owner}), so there is no protocol between nodes
(the part of Dovecot's director that 2.4 dropped as too costly).  Readers
only open and C{fstat()} it per lookup and re-read it when it changed.  Writers
change it only under the NFS-safe dotlock (C{hosts_file.lock}, DESIGN.md
rule 3) by writing a temporary file, C{fsync}ing it and renaming it over
the old one (rule 4): a reader sees the old table or the new one, never
a torn one.

The epoch counts changes.  A host's C{changed} is the epoch at which it
last came up, went down, was added or flushed: placements made before
that (L{imapd.cluster.placement}) no longer hold, so a flushed or
returning host takes new users only and nobody moves back to it at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from imapd.cluster.ring import (DEFAULT_VHOST_COUNT, MAX_VHOST_COUNT, Ring, address_sort_key,
                                canonical_address)

__all__ = ["HostEntry", "HostTable", "HostsFile", "TableError", "DEFAULT_IMAP_PORT",
           "DEFAULT_LMTP_PORT"]

DEFAULT_IMAP_PORT = 143
DEFAULT_LMTP_PORT = 24

#: Who may have taken a host down ("" while it is up).
DOWN_BY = ("", "admin", "health")

# A file modified this recently may still change within the same mtime
# tick (coarse timestamps on NFS): its stat() is not trusted as a cache key.
_UNSTABLE_NS = 2_000_000_000


class TableError(Exception):
    """The host table cannot be read, parsed or changed; the text says why."""


def _port(value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise TableError(f"{what} must be a port number (1-65535), not {value!r}")
    return value


def check_weight(value) -> int:
    """A weight is a vhost count, 0 (no new users) to Dovecot's maximum."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_VHOST_COUNT:
        raise TableError(f"weight must be an integer from 0 to {MAX_VHOST_COUNT}, not {value!r}")
    return value


@dataclass(frozen=True)
class HostEntry:
    """
    One backend.

    @ivar address: its IP address (what the ring hashes and what nginx's
        C{Auth-Server} needs: an address, not a name).
    @ivar port: its IMAP port, for nginx's C{Auth-Port} and proxies.
    @ivar lmtp_port: its LMTP port, for the Postfix answers.
    @ivar weight: its vhost count (ring points).
    @ivar up: whether it takes users.
    @ivar changed: the epoch of its last add, up, down or flush.
    @ivar down_by: who took it down: "admin" (stays down until an admin
        puts it up) or "health" (the health checks put it up again when
        it answers); "" while up.
    """

    address: str
    port: int = DEFAULT_IMAP_PORT
    lmtp_port: int = DEFAULT_LMTP_PORT
    weight: int = DEFAULT_VHOST_COUNT
    up: bool = True
    changed: int = 0
    down_by: str = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data) -> "HostEntry":
        if not isinstance(data, dict) or "address" not in data:
            raise TableError(f"a host must be an object with an address, not {data!r}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TableError(f"host {data['address']!r}: unknown fields {sorted(unknown)}")
        address = _address(str(data["address"]))
        up = data.get("up", True)
        changed = data.get("changed", 0)
        if not isinstance(up, bool):
            raise TableError(f"host {address}: up must be true or false, not {up!r}")
        if not isinstance(changed, int) or isinstance(changed, bool) or changed < 0:
            raise TableError(f"host {address}: changed must be an epoch, not {changed!r}")
        down_by = data.get("down_by", "")
        if down_by not in DOWN_BY:
            raise TableError(f"host {address}: down_by must be one of {DOWN_BY}, not {down_by!r}")
        return cls(address,
                   _port(data.get("port", DEFAULT_IMAP_PORT), f"host {address}: port"),
                   _port(data.get("lmtp_port", DEFAULT_LMTP_PORT), f"host {address}: lmtp_port"),
                   check_weight(data.get("weight", DEFAULT_VHOST_COUNT)), up, changed,
                   "" if up else down_by)


@dataclass(frozen=True)
class HostTable:
    """
    The hosts and the epoch; immutable.  The changing methods return a
    new table one epoch later.
    """

    epoch: int = 0
    hosts: tuple[HostEntry, ...] = ()
    _ring: list = field(default_factory=list, init=False, compare=False, repr=False)

    def get(self, address: str) -> Optional[HostEntry]:
        for host in self.hosts:
            if host.address == address:
                return host
        return None

    def ring(self) -> Ring:
        """The ring of the hosts that are up (built once per table)."""
        if not self._ring:
            self._ring.append(Ring((h.address, h.weight) for h in self.hosts if h.up))
        return self._ring[0]

    def hashed_owner(self, hash_: int) -> Optional[HostEntry]:
        """The host the ring gives C{hash_}, or None when no host is up."""
        address = self.ring().lookup(hash_)
        return None if address is None else self.get(address)

    # -- changes ---------------------------------------------------------

    def _with(self, hosts) -> "HostTable":
        ordered = tuple(sorted(hosts, key=lambda h: address_sort_key(h.address)))
        return HostTable(self.epoch + 1, ordered)

    def _need(self, address: str) -> HostEntry:
        host = self.get(_address(address))
        if host is None:
            raise TableError(f"no host {address} in the table")
        return host

    def _replace(self, address: str, **changes) -> "HostTable":
        old = self._need(address)
        new = dataclasses.replace(old, **changes)
        return self._with([new if h is old else h for h in self.hosts])

    def add(self, address: str, port: int = DEFAULT_IMAP_PORT,
            lmtp_port: int = DEFAULT_LMTP_PORT,
            weight: int = DEFAULT_VHOST_COUNT) -> "HostTable":
        address = _address(address)
        if self.get(address) is not None:
            raise TableError(f"host {address} is already in the table")
        host = HostEntry(address, _port(port, "port"), _port(lmtp_port, "lmtp_port"),
                         check_weight(weight), True, self.epoch + 1)
        return self._with(list(self.hosts) + [host])

    def remove(self, address: str) -> "HostTable":
        old = self._need(address)
        return self._with([h for h in self.hosts if h is not old])

    def set_up(self, address: str, up: bool, by: str = "admin") -> "HostTable":
        """
        Mark a host up or down; a host already so is left alone, except
        that an admin's down overrides a health check's (so that the
        checks no longer bring it back).
        """
        host = self._need(address)
        if host.up == up and (up or host.down_by == by or by == "health"):
            return self
        if host.up == up:
            return self._replace(address, down_by=by)
        return self._replace(address, up=up, changed=self.epoch + 1,
                             down_by="" if up else by)

    def set_weight(self, address: str, weight: int) -> "HostTable":
        if self._need(address).weight == weight:
            return self
        return self._replace(address, weight=check_weight(weight))

    def flush(self, address: str) -> "HostTable":
        """Forget every placement on the host: its users are placed again."""
        return self._replace(address, changed=self.epoch + 1)

    # -- file format -------------------------------------------------------

    def to_bytes(self) -> bytes:
        data = {"epoch": self.epoch, "hosts": [h.to_json() for h in self.hosts]}
        return (json.dumps(data, indent=1) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "host table") -> "HostTable":
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise TableError(f"{where}: not a JSON host table: {e}") from None
        try:
            if not isinstance(parsed, dict) or not isinstance(parsed.get("hosts", []), list):
                raise TableError("must be an object with a list of hosts")
            epoch = parsed.get("epoch", 0)
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
                raise TableError(f"epoch must be a non-negative integer, not {epoch!r}")
            hosts = [HostEntry.from_json(h) for h in parsed.get("hosts", [])]
            if len({h.address for h in hosts}) != len(hosts):
                raise TableError("a host is listed twice")
        except TableError as e:
            raise TableError(f"{where}: {e}") from None
        return cls(epoch, tuple(sorted(hosts, key=lambda h: address_sort_key(h.address))))


def _address(text: str) -> str:
    try:
        return canonical_address(text)
    except ValueError as e:
        raise TableError(str(e)) from None


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class HostsFile:
    """
    The host table file: cheap reads, locked atomic changes.  Every call
    blocks (the file is on the shared store, which may hang): services
    call it from a thread.

    @param path: the file (C{[cluster] hosts_file}).
    @param fsync: C{fsync} a new table before renaming it into place.
    """

    def __init__(self, path: str, fsync: bool = True, lock_timeout: float = 10.0) -> None:
        self.path = path
        self.fsync = fsync
        self.lock_timeout = lock_timeout
        self._mutex = threading.Lock()
        self._key: Optional[tuple[int, ...]] = None
        self._table = HostTable()

    def table(self) -> HostTable:
        """
        The current table: an C{open} and C{fstat}, and a read only when
        the file changed.  Opening (not a bare C{stat}) makes an NFS client
        revalidate its cached attributes (close-to-open consistency, the
        flush DESIGN.md uses for mail files), so a change made on another
        node is seen at the next lookup, not after the attribute cache
        times out.  A missing file is an empty table (no host: no owner).

        @raises TableError: the file cannot be read or parsed.
        """
        with self._mutex:
            try:
                with open(self.path, "rb") as f:
                    st = os.fstat(f.fileno())
                    if self._key is not None and self._key == _identity(st):
                        return self._table
                    data = f.read()
            except FileNotFoundError:
                self._key, self._table = None, HostTable()
                return self._table
            except OSError as e:
                raise TableError(f"cannot read {self.path}: {e.strerror}") from None
            table = HostTable.from_bytes(data, self.path)
            # A file changed within the mtime granularity may change again
            # with the same identity: not trusted as a cache key yet.
            recent = st.st_mtime_ns > time.time_ns() - _UNSTABLE_NS
            self._key = None if recent else _identity(st)
            self._table = table
            return table

    def _read(self) -> HostTable:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return HostTable()
        except OSError as e:
            raise TableError(f"cannot read {self.path}: {e.strerror}") from None
        return HostTable.from_bytes(data, self.path)

    def update(self, change: Callable[[HostTable], HostTable]) -> HostTable:
        """
        Apply C{change} to the table read under the dotlock and write the
        result atomically; a change that returns the same table writes
        nothing.

        @return: the new table.
        @raises TableError: the lock, the read or the write failed, or
            C{change} refused (its own L{TableError}).
        """
        from storage.errors import StoreError
        from storage.maildir.files import atomic_write, locked

        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            with locked(self.path, self.lock_timeout):
                old = self._read()
                new = change(old)
                if new is old or new == old:
                    return old
                if new.epoch <= old.epoch:
                    new = dataclasses.replace(new, epoch=old.epoch + 1)
                atomic_write(self.path, new.to_bytes(), fsync=self.fsync, mode=0o644)
                if self.fsync:
                    _fsync_directory(directory)
        except StoreError as e:
            raise TableError(str(e)) from None
        except OSError as e:
            raise TableError(f"cannot change {self.path}: {e.strerror or e}") from None
        with self._mutex:
            self._key = None
        return new


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (a crash must not bring the old table back)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
