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
"""

from __future__ import annotations

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

__all__ = ["PasswdFileChecker"]

_log = Logger()

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
            _log.info("Authentication refused: {what} is not UTF-8", what=what)
            raise UnauthorizedLogin("Authentication failed") from None
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
        user = _text(username, "user name")
        entry = self.passwd.lookup(user)
        if entry is None:
            # Spend about as long as for a real user, so response time does
            # not tell which user names exist.
            verify_password(password, self._dummy_hash())
            return self._refuse(user, "unknown user")
        if not entry.password:
            return self._refuse(user, "no password set")
        if "nologin" in entry.extra:
            # Dovecot's nologin extra field: the account may not log in.
            return self._refuse(user, "account has nologin")
        if not verify_password(password, entry.password, user=user):
            return self._refuse(user, "wrong password")
        return entry.user

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
        _log.info("Authentication refused for {user!r}: {reason}", user=user,
                  reason=reason)
        # The same message whatever the reason: the client must not learn
        # which user names exist.
        raise UnauthorizedLogin("Authentication failed")
