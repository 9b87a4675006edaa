# -*- test-case-name: tests.imapd.auth.test_authenticator -*-
"""
One call from credentials to a user: L{Authenticator.authenticate}.

A password check (a L{twisted.cred} checker: the passwd-file's, PAM's)
followed by a user database lookup (L{imapd.auth.userdb}).  The
single-process server calls it from its portal; with several processes
the auth process calls it for the login processes, which never read the
passwd-file or the shadow file themselves.
"""

from __future__ import annotations

from typing import Optional

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from imapd.auth.passwdfile import PasswdFile
from imapd.auth.userdb import IUserDB, UserRecord

__all__ = ["Authenticator", "PasswdFileUserDB"]

_log = Logger()


@implementer(IUserDB)
class PasswdFileUserDB:
    """
    Users from a Dovecot passwd-file: its uid, gid, home and extra fields
    (C{user:password:uid:gid:gecos:home:shell:extra}).
    """

    def __init__(self, passwd: PasswdFile) -> None:
        self.passwd = passwd

    def lookup(self, name: str) -> Optional[UserRecord]:
        entry = self.passwd.lookup(name)
        if entry is None:
            return None
        return UserRecord(entry.user, entry.uid, entry.gid, entry.home, dict(entry.extra))


class Authenticator:
    """
    Check a user name and password, then look the user up.

    @param checker: an C{ICredentialsChecker} for L{UsernamePassword};
        its avatar id is the user's name.
    @param userdb: where the checked user's uid, gid and home come from.
    @param runner: C{runner(f, *args)} runs the blocking userdb lookup
        and returns a Deferred or a result (default
        L{twisted.internet.threads.deferToThread}).
    """

    def __init__(self, checker, userdb: IUserDB, runner=None) -> None:
        if runner is None:
            from twisted.internet.threads import deferToThread as runner
        self.checker = checker
        self.userdb = userdb
        self._runner = runner

    @defer.inlineCallbacks
    def authenticate(self, username: bytes, password: bytes):
        """
        @return: a Deferred firing with the L{UserRecord}, or failing with
            L{UnauthorizedLogin} (logged with the reason; the client learns
            none).
        """
        name = yield self.checker.requestAvatarId(UsernamePassword(username, password))
        if isinstance(name, bytes):
            name = name.decode("utf-8")
        record = yield defer.maybeDeferred(self._runner, self.userdb.lookup, name)
        if record is None:
            _log.info("Authentication refused for {user!r}: not in the user database",
                      user=name)
            raise UnauthorizedLogin("Authentication failed")
        return record
