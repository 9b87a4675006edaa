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

import os
from typing import Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from imapd.auth.checker import refuse
from imapd.auth.passwdfile import PasswdFile
from imapd.auth.userdb import IUserDB, SystemUserDB, UserRecord

__all__ = ["Authenticator", "AuthenticatorChecker", "PasswdFileUserDB", "build_authenticator"]

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
    @param first_valid_uid: records with a uid below this are refused
        (C{[userdb] first_valid_uid}: system accounts such as C{daemon}
        or C{bin} must not become mail users because PAM or a passwd-file
        line says their password is right); uid 0 always is.  Virtual
        users (no uid) are not concerned.
    """

    def __init__(self, checker, userdb: IUserDB, runner=None,
                 first_valid_uid: int = 1000) -> None:
        if runner is None:
            from twisted.internet.threads import deferToThread as runner
        self.checker = checker
        self.userdb = userdb
        self._runner = runner
        self.first_valid_uid = first_valid_uid

    def refusal(self, record: UserRecord) -> Optional[str]:
        """
        Why C{record} may not be served (for the log), or None.
        """
        if record.uid is None:
            return None
        if record.uid == 0:
            # Never: a session as root could read and write every file.
            return "uid 0 (root) is never served"
        if record.uid < self.first_valid_uid:
            return (f"uid {record.uid} is below userdb.first_valid_uid "
                    f"{self.first_valid_uid}")
        return None

    def user(self, name: str) -> Optional[UserRecord]:
        """
        Blocking: the user database's record for C{name} if that user may
        be served (no password check; e.g. whose store another user's
        URLAUTH URL names), else None.
        """
        record = self.userdb.lookup(name)
        if record is None or self.refusal(record) is not None:
            return None
        return record

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
            refuse(name, "not in the user database")
        why = self.refusal(record)
        if why is not None:
            # The password was right; the sysadmin learns why the login
            # failed all the same, the client only that it did.
            refuse(name, why)
        return record


@implementer(ICredentialsChecker)
class AuthenticatorChecker:
    """
    An L{Authenticator} as a L{twisted.cred} checker, for the
    single-process server's portal: the avatar id it gives the realm is
    the L{UserRecord} (L{imapd.account.MailRealm} takes one).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def requestAvatarId(self, credentials):
        return self.authenticator.authenticate(credentials.username, credentials.password)


def _problem(config, option: str, reason: str):
    from conf import COMMAND_LINE, ConfigError

    return ConfigError(config.source or COMMAND_LINE, option, reason)


def build_authenticator(config, effective, runner=None, pam_check=None) -> Authenticator:
    """
    The L{Authenticator} the configuration asks for; every process shape
    calls this (the single-process portal, the auth process).

      - passwords: PAM when C{[auth] pam} names a service, else the
        passwd-file (C{effective.passwd_file});
      - users: the system password database when C{[userdb] system} is
        true, or when PAM is used without a passwd-file (PAM checks
        passwords only; its users are the system's); else the
        passwd-file's fields.

    @param effective: L{imapd.defaults.prepare}'s result.
    @param runner: the blocking-call runner for the checker and the
        lookups (default L{deferToThread}).
    @param pam_check: the PAM call (a seam for tests).
    @raises conf.ConfigError: a combination that cannot work, naming the
        option (and the configuration file).
    """
    from imapd.auth.checker import PasswdFileChecker

    auth, userdb = config.auth, config.userdb
    passwd = PasswdFile(effective.passwd_file) if effective.passwd_file else None
    if auth.pam:
        from imapd.auth.pam import PamChecker, PamUnavailable, pam_service_file

        try:
            path = pam_service_file(auth.pam)
        except ValueError as e:
            raise _problem(config, "auth.pam", str(e)) from None
        if not os.path.exists(path):
            # Linux-PAM would fall back to the "other" service, which
            # denies everybody on most systems: say so now, not at login.
            raise _problem(config, "auth.pam", f"no PAM service file {path}")
        if userdb.system and auth.passwd_file:
            raise _problem(config, "auth.passwd_file",
                           "is not used when auth.pam checks passwords and "
                           "userdb.system gives the users; remove one of them")
        try:
            checker = PamChecker(auth.pam, runner=runner, check=pam_check)
        except PamUnavailable as e:
            raise _problem(config, "auth.pam", str(e)) from None
        if userdb.system or passwd is None:
            if not userdb.system:
                _log.info("Users' uid, gid and home from the system password database: "
                          "auth.pam checks passwords and there is no auth.passwd_file")
            users: IUserDB = SystemUserDB()
        else:
            users = PasswdFileUserDB(passwd)
    else:
        if passwd is None:
            raise _problem(config, "auth.passwd_file", "is needed without auth.pam")
        if userdb.system and not auth.passwd_file:
            # The embedded default's demo user is no system account.
            raise _problem(config, "userdb.system",
                           "needs auth.pam or auth.passwd_file to check the "
                           "system users' passwords")
        checker = PasswdFileChecker(passwd, runner=runner)
        users = SystemUserDB() if userdb.system else PasswdFileUserDB(passwd)
    return Authenticator(checker, users, runner=runner,
                         first_valid_uid=userdb.first_valid_uid)
