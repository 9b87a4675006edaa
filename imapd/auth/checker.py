# -*- test-case-name: tests.imapd.auth.test_checker -*-
"""
A L{twisted.cred} checker for user names and passwords in a Dovecot
passwd-file.

Verifying a hash is slow on purpose (Argon2, bcrypt, SHA-crypt) and reading
the passwd-file is disk I/O (possibly NFS), so both run off the reactor
thread: by default through L{deferToThread}; tests pass a synchronous
runner instead.

Log lines name the user and the reason for a refusal; they never contain a
password or a hash.

A refusal must take as long whoever the user is (issue 18: users whose
hashes are bcrypt or Argon2 answered a wrong password measurably slower
than unknown users, checked against a SHA512-CRYPT dummy).  So every
refusal is padded to one deadline from the start of the check: the time
of the slowest verification among the password costs the file holds
(L{PasswdFile.samples}: one stored value per scheme and parameters),
measured when the file changes, with a margin (and raised, within
bounds, by refusals that took longer on a busy machine).  An unknown user is
verified against that slowest value, so the check does the same work.
The protocol adds its own fixed delay on top
(L{imapd.commands.auth}, measured from the start of the attempt too).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from zope.interface import implementer

from imapd.auth.passwdfile import PasswdFile
from imapd.auth.schemes import hash_password, verify_password

__all__ = ["PasswdFileChecker", "LoginRefused", "refuse"]

_log = Logger()


class LoginRefused(UnauthorizedLogin):
    """
    A refused login and why, for the log line of the session that tried
    (L{imapd.commands.auth}: one line, with the client's address; issue
    16 item 8).  The client only ever learns "Authentication failed".

    @ivar reason: the reason, for the log alone.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("Authentication failed")
        self.reason = reason


def refuse(user: str | None, reason: str):
    """
    Refuse a login: a debug line here (where the reason is known; the
    session's line at info level carries the reason and the address),
    then L{LoginRefused}.
    """
    if user is None:
        _log.debug("Authentication refused: {reason}", reason=reason)
    else:
        _log.debug("Authentication refused for {user!r}: {reason}", user=user, reason=reason)
    raise LoginRefused(reason)


#: The refusal deadline is the slowest sampled verification times this,
#: plus L{_MARGIN_S} (scheduler noise on a busy machine).
_MARGIN = 1.25
_MARGIN_S = 0.02
#: How far refusals that took longer than measured may raise the deadline.
_MAX_GROWTH = 3.0

#: Runs C{f(*args)} somewhere and returns a L{Deferred} (or the result).
Runner = Callable[..., Any]


def _text(value: str | bytes, what: str) -> str:
    """
    Credentials from the IMAP layer arrive as bytes; user names are UTF-8
    (RFC 6855 allows UTF-8 user names, and ASCII is a subset).
    """
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            try:
                refuse(None, f"{what} is not UTF-8")
            except LoginRefused as e:
                raise e from None
    return value


@implementer(ICredentialsChecker)
class PasswdFileChecker:
    """
    Check L{IUsernamePassword} credentials against a L{PasswdFile}.

    The avatar id is the user name as written in the passwd-file (a
    L{str}).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, passwd: PasswdFile, runner: Runner | None = None) -> None:
        """
        @param passwd: the users.
        @param runner: called as C{runner(f, *args)} to run the blocking
            check; returns a L{Deferred} or a plain result.  Defaults to
            L{deferToThread}.
        """
        self.passwd = passwd
        self._runner = runner if runner is not None else deferToThread
        self._dummy: str | None = None
        self._lock = threading.Lock()
        #: (samples measured, the slowest of them, its verification time)
        self._cost: tuple[tuple[str, ...], str | None, float] | None = None
        self._measured = 0.0
        #: Waits in the checking thread; tests replace it.
        self.sleep = time.sleep
        self.clock = time.monotonic

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[str]:
        """
        Check a user name and password.

        @param credentials: provides L{IUsernamePassword}; C{username} and
            C{password} may be L{str} or L{bytes}.
        @return: a L{Deferred} that fires with the user name, or fails with
            L{UnauthorizedLogin}.
        """
        return maybeDeferred(self._runner, self._check, credentials.username,
                             credentials.password)

    def _check(self, username: str | bytes, password: str | bytes) -> str:
        """
        The blocking part: look the user up and verify the password.

        @return: the user name.
        @raises UnauthorizedLogin: for any failure; the reason is logged,
            and is the same for the client whatever it was.
        """
        deadline = self._refusal_time()  # measured first: a changed file costs once
        started = self.clock()
        try:
            return self._verify(username, password)
        except UnauthorizedLogin:
            # Every refusal ends at the same time after its start.
            took = self.clock() - started
            self._observe(took)
            left = started + deadline - self.clock()
            _log.debug("Refusal after {took:.3f}s, padded to {deadline:.3f}s",
                       took=took, deadline=deadline)
            if left > 0:
                self.sleep(left)
            raise

    def _verify(self, username: str | bytes, password: str | bytes) -> str:
        user = _text(username, "user name")
        entry = self.passwd.lookup(user)
        if entry is None:
            # The same work as for the costliest real user, so that the
            # time spent does not tell which user names exist.
            verify_password(password, self._slowest() or self._dummy_hash())
            return self._refuse(user, "unknown user")
        if not entry.password:
            return self._refuse(user, "no password set")
        if "nologin" in entry.extra:
            # Dovecot's nologin extra field: the account may not log in.
            return self._refuse(user, "account has nologin")
        if not verify_password(password, entry.password, user=user):
            return self._refuse(user, "wrong password")
        return entry.user

    def _measure(self) -> tuple[str | None, float]:
        """
        The slowest stored password of the file and its verification time
        (re-measured when the file's password costs change).
        """
        samples = self.passwd.samples()
        with self._lock:
            if self._cost is not None and self._cost[0] == samples:
                return self._cost[1], self._cost[2]
            slowest, worst = None, 0.0
            wrong = secrets.token_bytes(16)
            for stored in samples or (self._dummy_hash(),):
                start = self.clock()
                verify_password(wrong, stored)
                took = self.clock() - start
                if took >= worst:
                    slowest, worst = stored, took
            self._cost = (samples, slowest, worst)
            self._measured = worst
            return slowest, worst

    def _observe(self, took: float) -> None:
        """
        A refusal took C{took} seconds: on a busy machine a verification
        can outlast what was measured; later refusals wait that long too
        (up to L{_MAX_GROWTH} times the measurement, so that one stalled
        passwd-file read does not slow every refusal for good).
        """
        with self._lock:
            if self._cost is None:
                return
            samples, slowest, worst = self._cost
            grown = min(max(worst, took), self._measured * _MAX_GROWTH)
            self._cost = (samples, slowest, grown)

    def _slowest(self) -> str | None:
        return self._measure()[0]

    def _refusal_time(self) -> float:
        """How long after its start every refusal answers (see above)."""
        return self._measure()[1] * _MARGIN + _MARGIN_S

    def _dummy_hash(self) -> str:
        """
        A hash of a random password in the default scheme, for timing.
        """
        if self._dummy is None:
            import secrets

            self._dummy = hash_password(secrets.token_bytes(16))
        return self._dummy

    def _refuse(self, user: str, reason: str) -> str:
        """
        Log why a login is refused and raise.

        @raises UnauthorizedLogin: always.
        """
        # The same message whatever the reason: the client must not learn
        # which user names exist.
        refuse(user, reason)
