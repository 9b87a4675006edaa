# -*- test-case-name: tests.storage.mbox.test_mbox_store -*-
"""
Subscriptions of an mbox root: Dovecot's C{.subscriptions} (version 2:
C{V<TAB>2}, an empty line, one name a line, levels separated by TAB, each
in modified UTF-7; version 1: one C{/}-separated name a line), and
UW-IMAP/pine's C{.mailboxlist} (one C{/}-separated name a line), which is
read and kept in step when a name is unsubscribed.  New subscriptions go
to C{.subscriptions}, rewritten by rename under its dotlock.
"""

from __future__ import annotations

import os
import time

from locking import DotLock, LockError
from storage import mutf7
from storage.errors import LockUnavailable, StoreError

__all__ = ["Subscriptions", "parse", "serialize"]

SUBSCRIPTIONS = ".subscriptions"
MAILBOXLIST = ".mailboxlist"
_HEADER = b"V\t2\n\n"


def _decode(level: str) -> str:
    try:
        return mutf7.decode(level)
    except ValueError:
        return level


def _name(levels: list[str]) -> str:
    name = "/".join(_decode(p) for p in levels)
    return "INBOX" if name.upper() == "INBOX" else name


def parse(data: bytes) -> list[str]:
    """Names from a C{.subscriptions} or C{.mailboxlist} file, in order."""
    text = data.decode("utf-8", "surrogateescape")
    if data.startswith(_HEADER):
        lines = [line.split("\t") for line in text[len(_HEADER):].split("\n") if line]
    else:
        lines = [line.split("/") for line in text.split("\n") if line.strip()]
    names: list[str] = []
    for levels in lines:
        name = _name(levels)
        if name not in names:
            names.append(name)
    return names


def serialize(names: list[str]) -> bytes:
    """Version 2 content."""
    body = "".join("\t".join(mutf7.encode(p) for p in n.split("/")) + "\n" for n in names)
    return _HEADER + body.encode("utf-8", "surrogateescape")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from e


def _write(path: str, data: bytes, fsync: bool) -> None:
    temp = f"{path}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        with open(temp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.rename(temp, path)
    except OSError as e:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from e


class Subscriptions:
    """The subscription files of one root."""

    def __init__(self, root: str, fsync: bool = True) -> None:
        self.path = os.path.join(root, SUBSCRIPTIONS)
        self.legacy = os.path.join(root, MAILBOXLIST)
        self.fsync = fsync

    def read(self) -> list[str]:
        """The names of both files, C{.subscriptions} first, without repeats."""
        names: list[str] = []
        for path in (self.path, self.legacy):
            data = _read(path)
            for name in parse(data) if data else []:
                if name not in names:
                    names.append(name)
        return names

    def change(self, name: str, subscribe: bool) -> bool:
        """Add or remove C{name}; whether anything changed."""
        try:
            lock = DotLock(self.path)
            lock.acquire()
        except LockError as e:
            raise LockUnavailable(f"cannot lock {self.path}: {e}") from e
        try:
            data = _read(self.path)
            names = parse(data) if data else []
            legacy_data = _read(self.legacy)
            legacy = parse(legacy_data) if legacy_data else []
            if subscribe:
                if name in names or name in legacy:
                    return False
                names.append(name)
                _write(self.path, serialize(names), self.fsync)
                return True
            changed = False
            if name in names:
                names.remove(name)
                _write(self.path, serialize(names), self.fsync)
                changed = True
            if name in legacy and legacy_data is not None:
                legacy.remove(name)
                _write(self.legacy, "".join("/".join(mutf7.encode(p) for p in n.split("/")) + "\n" for n in legacy).encode(
                    "utf-8", "surrogateescape"), self.fsync)
                changed = True
            return changed
        finally:
            lock.release()
