# -*- test-case-name: tests.imapd.auth.test_passdb -*-
"""
Several password and user databases tried in order (C{[auth] passdb =
["ldap", "passwd-file"]}), and the authentication cache.

L{ChainChecker}: the first database that accepts the password wins; one
that refuses passes the attempt to the next.  One that cannot answer
(L{AuthUnavailable}: the directory is down) passes it on too, but if no
later database accepts, the attempt ends as unavailable, not refused: a
user whose directory is down has not typed a wrong password.

L{ChainUserDB}: the user databases in the same order; the first that
knows the name gives the record.

L{AuthCache} (C{[auth] cache_size}, C{cache_ttl}, C{cache_negative_ttl};
Dovecot's C{auth_cache_size}, C{auth_cache_ttl},
C{auth_cache_negative_ttl}) is general: it sits in front of the whole
chain (L{imapd.auth.authenticator.Authenticator}), whatever the databases
are, so that a busy server does not ask the directory (or verify an
Argon2 hash) for each of a webmail's logins.  An entry keeps, per user
name, a salted hash of the password that was checked and the outcome: a
login with the same password within C{cache_ttl} gets the same record
(within C{cache_negative_ttl}, the same refusal) without asking; another
password goes to the databases.  Unavailable answers are never kept.
The cache lives in the process that checks passwords (the single
process, or C{imapd: auth}); a password changed in the directory is
noticed within C{cache_ttl}.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from typing import Callable, Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from zope.interface import implementer

from imapd.auth.errors import AuthUnavailable
from imapd.auth.userdb import IUserDB, UserRecord

__all__ = ["ChainChecker", "ChainUserDB", "AuthCache", "PASSDB_DRIVERS"]

#: The names C{[auth] passdb} may list.
PASSDB_DRIVERS = ("passwd-file", "pam", "ldap")


@implementer(ICredentialsChecker)
class ChainChecker:
    """The checkers in order (see the module docstring)."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, checkers) -> None:
        self.checkers = tuple(checkers)

    @defer.inlineCallbacks
    def requestAvatarId(self, credentials):
        unavailable = None
        for checker in self.checkers:
            try:
                result = yield checker.requestAvatarId(credentials)
            except UnauthorizedLogin:
                continue
            except AuthUnavailable as e:
                unavailable = e
                continue
            return result
        if unavailable is not None:
            raise unavailable
        raise UnauthorizedLogin("Authentication failed")


@implementer(IUserDB)
class ChainUserDB:
    """The user databases in order: the first record found (blocking)."""

    def __init__(self, userdbs) -> None:
        self.userdbs = tuple(userdbs)

    def lookup(self, name: str) -> Optional[UserRecord]:
        unavailable = None
        for userdb in self.userdbs:
            try:
                record = userdb.lookup(name)
            except AuthUnavailable as e:
                unavailable = e
                continue
            if record is not None:
                return record
        if unavailable is not None:
            # "No such user" would bounce mail the directory knows about.
            raise unavailable
        return None


class AuthCache:
    """
    Outcomes of password checks by user name (see the module docstring).

    @param size: entries kept at most (the least recently used go first).
    @param ttl: seconds a success is reused.
    @param negative_ttl: seconds a refusal is reused (0: never).
    """

    def __init__(self, size: int, ttl: float, negative_ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        #: user name -> (password digest, record or None, expiry)
        self._entries: OrderedDict[bytes, tuple[bytes, Optional[UserRecord], float]] = \
            OrderedDict()
        self.hits = 0
        self.misses = 0

    def _digest(self, username: bytes, password: bytes) -> bytes:
        # Keyed per process: the cache never holds a password, nor a hash
        # that could be attacked offline without the process's memory.
        return hmac.new(self._key, username + b"\0" + password, hashlib.sha256).digest()

    def get(self, username: bytes, password: bytes):
        """
        C{(True, record)} for a cached success, C{(True, None)} for a
        cached refusal, C{(False, None)} when the databases must be asked.
        """
        digest = self._digest(username, password)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(username)
            if entry is not None:
                if entry[2] <= now:
                    del self._entries[username]
                elif hmac.compare_digest(entry[0], digest):
                    self._entries.move_to_end(username)
                    self.hits += 1
                    return True, entry[1]
            self.misses += 1
        return False, None

    def put(self, username: bytes, password: bytes, record: Optional[UserRecord]) -> None:
        """Keep an outcome: C{record}, or None for a refusal."""
        ttl = self.ttl if record is not None else self.negative_ttl
        if ttl <= 0 or self.size <= 0:
            return
        entry = (self._digest(username, password), record, self._clock() + ttl)
        with self._lock:
            self._entries[username] = entry
            self._entries.move_to_end(username)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
