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
    @param cache: an L{imapd.auth.passdb.AuthCache} in front of the
        checker and the lookup, or None.

    A checker whose avatar id is already a L{UserRecord} (LDAP reads the
    user's fields in the search that finds the password) needs no user
    database lookup.  A database that cannot answer fails the Deferred
    with L{imapd.auth.errors.AuthUnavailable}, which is not a refusal.
    """

    def __init__(self, checker, userdb: IUserDB, runner=None,
                 first_valid_uid: int = 1000, cache=None) -> None:
        if runner is None:
            from twisted.internet.threads import deferToThread as runner
        self.checker = checker
        self.userdb = userdb
        self._runner = runner
        self.first_valid_uid = first_valid_uid
        self.cache = cache

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
            none) or L{imapd.auth.errors.AuthUnavailable}.
        """
        if self.cache is None:
            return (yield self._authenticate(username, password))
        key = username if isinstance(username, bytes) else username.encode("utf-8")
        secret = password if isinstance(password, bytes) else password.encode("utf-8")
        hit, record = self.cache.get(key, secret)
        if hit:
            if record is None:
                _log.info("Authentication refused for {user!r}: refused before (auth cache)",
                          user=key.decode("utf-8", "replace"))
                raise UnauthorizedLogin("Authentication failed")
            return record
        try:
            record = yield self._authenticate(username, password)
        except UnauthorizedLogin:
            self.cache.put(key, secret, None)
            raise
        self.cache.put(key, secret, record)
        return record

    @defer.inlineCallbacks
    def _authenticate(self, username, password):
        name = yield self.checker.requestAvatarId(UsernamePassword(username, password))
        if isinstance(name, UserRecord):
            record = name
            name = record.name
        else:
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


def build_authenticator(config, effective, runner=None, pam_check=None,
                        ldap3=None) -> Authenticator:
    """
    The L{Authenticator} the configuration asks for; every process shape
    calls this (the single-process portal, the auth process).

    With C{[auth] passdb} empty (as before it existed):

      - passwords: PAM when C{[auth] pam} names a service, else the
        passwd-file (C{effective.passwd_file});
      - users: the system password database when C{[userdb] system} is
        true, or when PAM is used without a passwd-file (PAM checks
        passwords only; its users are the system's); else the
        passwd-file's fields.

    With C{passdb} listing databases (C{"passwd-file"}, C{"pam"},
    C{"ldap"}), they are tried in that order (L{ChainChecker}), and so
    are their user databases (L{ChainUserDB}): the passwd-file's fields
    (the system's with C{userdb.system}), the system's for PAM (the
    passwd-file's when there is one and C{userdb.system} is false, as
    above), the directory's for LDAP.

    C{[auth] cache_size} above 0 puts an L{AuthCache} in front.

    @param effective: L{imapd.defaults.prepare}'s result.
    @param runner: the blocking-call runner for the checker and the
        lookups (default L{deferToThread}, and for the LDAP checks the
        directory's own threads; C{imapd-admin auth test} runs them
        inline).
    @param pam_check: the PAM call (a seam for tests).
    @param ldap3: the L{ldap3} module (a seam for tests).
    @raises conf.ConfigError: a combination that cannot work, naming the
        option (and the configuration file).
    """
    from imapd.auth.passdb import AuthCache, ChainChecker, ChainUserDB

    auth, userdb = config.auth, config.userdb
    passwd = PasswdFile(effective.passwd_file) if effective.passwd_file else None
    if not auth.passdb:
        checker, users = _implicit_databases(config, passwd, runner, pam_check)
    else:
        checkers, userdbs = [], []
        for driver in auth.passdb:
            if driver == "ldap":
                from imapd.auth.ldapsetup import ldap_databases

                one, user = ldap_databases(config, ldap3, runner=runner)
            elif driver == "pam":
                if not auth.pam:
                    raise _problem(config, "auth.passdb",
                                   "lists \"pam\": set auth.pam to the PAM service name")
                one = _pam_checker(config, runner, pam_check)
                user = (SystemUserDB() if userdb.system or passwd is None
                        else PasswdFileUserDB(passwd))
            else:
                if passwd is None:
                    raise _problem(config, "auth.passdb",
                                   "lists \"passwd-file\": set auth.passwd_file")
                from imapd.auth.checker import PasswdFileChecker

                one = PasswdFileChecker(passwd, runner=runner)
                user = SystemUserDB() if userdb.system else PasswdFileUserDB(passwd)
            checkers.append(one)
            userdbs.append(user)
        checker = checkers[0] if len(checkers) == 1 else ChainChecker(checkers)
        users = userdbs[0] if len(userdbs) == 1 else ChainUserDB(userdbs)
    cache = None
    if auth.cache_size > 0:
        cache = AuthCache(auth.cache_size, auth.cache_ttl, auth.cache_negative_ttl)
    return Authenticator(checker, users, runner=runner,
                         first_valid_uid=userdb.first_valid_uid, cache=cache)


def _pam_checker(config, runner, pam_check):
    """The PAM checker of C{[auth] pam}, its service file checked now."""
    from imapd.auth.pam import PamChecker, PamUnavailable, pam_service_file

    auth = config.auth
    try:
        path = pam_service_file(auth.pam)
    except ValueError as e:
        raise _problem(config, "auth.pam", str(e)) from None
    if not os.path.exists(path):
        # Linux-PAM would fall back to the "other" service, which
        # denies everybody on most systems: say so now, not at login.
        raise _problem(config, "auth.pam", f"no PAM service file {path}")
    try:
        return PamChecker(auth.pam, runner=runner, check=pam_check)
    except PamUnavailable as e:
        raise _problem(config, "auth.pam", str(e)) from None


def _implicit_databases(config, passwd, runner, pam_check):
    """The checker and user database without C{[auth] passdb} (see above)."""
    from imapd.auth.checker import PasswdFileChecker

    auth, userdb = config.auth, config.userdb
    if auth.pam:
        checker = _pam_checker(config, runner, pam_check)
        if userdb.system and auth.passwd_file:
            raise _problem(config, "auth.passwd_file",
                           "is not used when auth.pam checks passwords and "
                           "userdb.system gives the users; remove one of them")
        if userdb.system or passwd is None:
            if not userdb.system:
                _log.info("Users' uid, gid and home from the system password database: "
                          "auth.pam checks passwords and there is no auth.passwd_file")
            return checker, SystemUserDB()
        return checker, PasswdFileUserDB(passwd)
    if passwd is None:
        raise _problem(config, "auth.passwd_file", "is needed without auth.pam")
    if userdb.system and not auth.passwd_file:
        # The embedded default's demo user is no system account.
        raise _problem(config, "userdb.system",
                       "needs auth.pam or auth.passwd_file to check the "
                       "system users' passwords")
    checker = PasswdFileChecker(passwd, runner=runner)
    return checker, SystemUserDB() if userdb.system else PasswdFileUserDB(passwd)
