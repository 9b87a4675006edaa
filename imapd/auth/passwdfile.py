# -*- test-case-name: tests.imapd.auth.test_passwdfile -*-
"""
Dovecot's passwd-file format, re-read when the file changes.

Each line is (Dovecot "passwd-file" documentation, C{db-passwd-file.c})::

    user:password:uid:gid:gecos:home:shell:extra_fields

Only the user name is required; fields after it may be left out or empty.
The user may be C{user@domain}.  C{extra_fields} is a space-separated list of
C{key=value} (or bare C{key}) settings, and since it is the last field it
may itself contain colons.  Blank lines and lines starting with C{#} are
ignored.

Sysadmins edit this file while the server runs, so L{PasswdFile} checks the
file's C{stat()} (inode, size, mtime) on every lookup and re-reads it when
any of them changed: no restart, and the cost is one C{stat()} per login.
A bad line is logged with the file name and line number and skipped, so one
typo does not lock everybody out; its content is never logged, since it
holds a password hash.

Lookups may run in several threads at once (the checker verifies hashes in
a thread pool), so reloading is serialised by a lock.
"""

from __future__ import annotations

import grp
import os
import pwd
import threading
import time
from dataclasses import dataclass, field

from twisted.logger import Logger

from imapd.auth.schemes import password_problem

__all__ = ["PasswdEntry", "PasswdFile", "parse_line"]

_log = Logger()

# Coarse file timestamps (one second on some NFS servers and older file
# systems) cannot tell apart two writes in the same tick that leave the size
# unchanged.  A file modified this recently is re-read on the next lookup
# too, until its mtime is safely in the past.
_UNSTABLE_NS = 2_000_000_000
#: Most distinct password costs sampled for login timing (each costs one
#: verification when the file changes).
_MAX_SAMPLES = 16


@dataclass(frozen=True)
class PasswdEntry:
    """
    One user of a passwd-file.

    @ivar user: the login name, as written (e.g. C{alice@example.org}).
    @ivar password: the password field, C{{SCHEME}data} or bare crypt(3)
        data; empty if the line had none (which never verifies).
    @ivar uid: the numeric user id, or L{None} if not given.
    @ivar gid: the numeric group id, or L{None} if not given.
    @ivar home: the home directory, or L{None} if not given.
    @ivar extra: the extra fields, key to value (C{""} for a bare key).
    """

    user: str
    password: str
    uid: int | None = None
    gid: int | None = None
    home: str | None = None
    extra: dict[str, str] = field(default_factory=dict, hash=False)


class _BadLine(ValueError):
    """
    A line that cannot be used; the message says why.
    """


def _parse_id(text: str, kind: str) -> int | None:
    """
    A uid or gid: a number or, as Dovecot allows, a user or group name.
    """
    if text == "":
        return None
    if text.isdigit():
        return int(text)
    try:
        if kind == "uid":
            return pwd.getpwnam(text).pw_uid
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise _BadLine(f"invalid {kind}") from None


def _parse_extra(text: str) -> dict[str, str]:
    """
    The space-separated C{key=value} extra fields.
    """
    extra = {}
    for item in text.split():
        key, _, value = item.partition("=")
        if not key:
            raise _BadLine("extra field without a name")
        extra[key] = value
    return extra


def parse_line(line: str) -> PasswdEntry | None:
    """
    Parse one line of a passwd-file.

    @param line: the line, without its line ending.
    @return: the entry, or L{None} for a blank or comment line.
    @raises ValueError: if the line is malformed; the message says why
        without quoting the line.
    """
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    fields = line.split(":")
    user = fields[0]
    if not user or user != user.strip():
        raise _BadLine("empty user name or user name with surrounding spaces")
    if len(fields) < 2:
        # Most likely a mistake (a wrapped line, a user name alone); an
        # account without a password is written "user:" (issue 16 item 9).
        raise _BadLine("no ':' after the user name (user:{SCHEME}hash:uid:gid:...)")

    def get(i: int) -> str:
        return fields[i] if i < len(fields) else ""

    # gecos (4) and shell (6) mean nothing to an IMAP server; fields from 7
    # on are the extra fields, which may contain colons.
    return PasswdEntry(
        user=user,
        password=get(1),
        uid=_parse_id(get(2), "uid"),
        gid=_parse_id(get(3), "gid"),
        home=get(5) or None,
        extra=_parse_extra(":".join(fields[7:])),
    )


class PasswdFile:
    """
    A passwd-file, kept in memory and re-read when it changes on disk.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """
        @param path: the file.  It is first read on the first lookup, so a
            missing file is reported then (and every time it goes missing).
        """
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._entries: dict[str, PasswdEntry] = {}
        # The stat() identity of what _entries came from; None forces a
        # read on the next lookup.
        self._key: tuple[int, ...] | None = None
        self._error: str | None = None
        self._data: bytes | None = None
        self._samples: tuple[dict, tuple[str, ...]] | None = None

    def lookup(self, user: str) -> PasswdEntry | None:
        """
        Find a user, re-reading the file first if it changed.

        @param user: the login name (compared exactly).
        @return: the entry, or L{None} if there is no such user (or the
            file cannot be read).
        """
        with self._lock:
            self._refresh()
            return self._entries.get(user)

    def users(self) -> tuple[str, ...]:
        """Every user name in the file (re-read first if it changed)."""
        with self._lock:
            self._refresh()
            return tuple(self._entries)

    def samples(self) -> tuple[str, ...]:
        """
        One stored password per password scheme (and cost parameters) in
        the file, for timing: the checker makes a refusal cost as much as
        the slowest of them (L{imapd.auth.checker}).
        """
        with self._lock:
            self._refresh()
            entries = self._entries
            if self._samples is None or self._samples[0] is not entries:
                seen: dict[str, str] = {}
                for entry in entries.values():
                    stored = entry.password
                    if stored:
                        # The scheme and its parameters ($2b$12$, m=65536,t=3):
                        # what the cost depends on, not the salt or hash.
                        seen.setdefault(_cost_class(stored), stored)
                        if len(seen) >= _MAX_SAMPLES:
                            break
                self._samples = (entries, tuple(seen.values()))
            return self._samples[1]

    def _refresh(self) -> None:
        """
        Re-read the file if its stat() differs from the last read.
        """
        try:
            st = os.stat(self.path)
        except OSError as e:
            self._fail(e)
            return
        if self._key is not None and self._key == _stat_key(st):
            return
        try:
            with open(self.path, "rb") as f:
                # Identify what we actually read, not what we stat()ed
                # before: a rename in between must not be missed.
                st = os.fstat(f.fileno())
                data = f.read()
        except OSError as e:
            self._fail(e)
            return
        if data != self._data or self._error is not None:
            # Only a real change is parsed (and its bad lines logged); a
            # re-read of a recently touched file usually finds the same.
            self._entries = self._parse(data)
            self._data = data
        self._error = None
        recent = st.st_mtime_ns > time.time_ns() - _UNSTABLE_NS
        self._key = None if recent else _stat_key(st)
        _log.debug("Read passwd-file {path}: {count} users", path=self.path,
                   count=len(self._entries))

    def _fail(self, error: OSError) -> None:
        """
        The file cannot be read: nobody can log in from it, and the
        sysadmin is told once per distinct error (not on every login).
        """
        self._entries = {}
        self._key = None
        message = f"{type(error).__name__}: {error.strerror}"
        if message != self._error:
            self._error = message
            _log.error("Cannot read passwd-file {path}: {error}", path=self.path,
                       error=message)

    def _parse(self, data: bytes) -> dict[str, PasswdEntry]:
        """
        Parse the whole file; bad lines are logged and skipped.
        """
        entries: dict[str, PasswdEntry] = {}
        for lineno, raw in enumerate(data.split(b"\n"), 1):
            try:
                entry = parse_line(raw.rstrip(b"\r").decode("utf-8"))
            except UnicodeDecodeError:
                self._bad(lineno, "not UTF-8")
                continue
            except ValueError as e:
                self._bad(lineno, str(e))
                continue
            if entry is None:
                continue
            problem = password_problem(entry.password)
            if problem is not None:
                self._bad(lineno, problem)
            if entry.user in entries:
                # Dovecot keeps the first line for a user; so do we, but say
                # so, since the later line is probably the intended one.
                self._bad(lineno, f"user {entry.user!r} already defined, line ignored")
                continue
            entries[entry.user] = entry
        return entries

    def _bad(self, lineno: int, reason: str) -> None:
        """
        Log a skipped line by file and number.
        """
        _log.warn("passwd-file {path}:{lineno}: {reason}", path=self.path,
                  lineno=lineno, reason=reason)


def _cost_class(stored: str) -> str:
    """
    What the verification cost of a stored password depends on: its
    C{{SCHEME}} and, for crypt and PHC strings, the fields before the salt
    (C{$2b$12$}, C{$6$rounds=5000$}, C{$argon2id$v=19$m=65536,t=3,p=4$}).
    """
    scheme, _, rest = stored.partition("}") if stored.startswith("{") else ("", "", stored)
    fields = rest.split("$")[1:-1]
    params = [f for i, f in enumerate(fields) if i == 0 or "=" in f or f.isdigit()]
    return scheme + "$" + "$".join(params)


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    """
    What identifies a version of the file: device and inode (replaced by a
    rename), size, and modification time.
    """
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
