# -*- test-case-name: tests.imapd.auth.test_pam -*-
"""
A L{twisted.cred} checker that asks PAM (C{[auth] pam = "SERVICE"}): the
host's own password policy (C{pam_unix} and C{/etc/shadow}, LDAP, ...)
decides, through the service file C{/etc/pam.d/SERVICE}.

libpam is reached through python-pam (ctypes).  Its calls block (a
module may read files, ask a network server, or sleep on a failure, as
C{pam_unix} does), so they run in a thread (L{deferToThread} by default,
like the passwd-file checker), one PAM handle per attempt: a handle is
not to be shared between threads.  The conversation answers every
password prompt with the password and nothing else.

The check is C{pam_authenticate} then C{pam_acct_mgmt} (an expired or
locked account is refused like a wrong password), and no
C{pam_setcred}/session: an IMAP login opens no Unix session (Dovecot's
default too).  C{pam_unix} reads the shadow file only as root; the
caller's process must run as root (the single-process server started as
root, or the auth process).

As in L{imapd.auth.checker}, a refusal must not tell a wrong password
from an unknown user by its time: PAM modules usually take care of it
themselves (C{pam_unix} pauses on every failure unless C{nodelay}), and
on top of that every refusal is padded to the slowest check seen so far
(within bounds), so a module that answers "unknown user" faster than it
verifies a hash does not show it.  Log lines name the user and PAM's
reason, never the password.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from zope.interface import implementer

from imapd.auth.checker import Runner, _text, refuse

__all__ = ["PamChecker", "PamUnavailable", "pam_service_file", "PAM_DIR"]

_log = Logger()

#: Where Linux-PAM looks for service files.
PAM_DIR = "/etc/pam.d"
#: Padding never grows past this many seconds (one stalled LDAP answer
#: must not slow every later refusal for good).
_MAX_PAD = 5.0
_MARGIN = 1.1
_MARGIN_S = 0.01


class PamUnavailable(Exception):
    """PAM cannot be used here (no python-pam, no libpam); the message says why."""


def pam_service_file(service: str) -> str:
    """
    The file Linux-PAM reads for C{service}.

    @raises ValueError: the name cannot be a service (empty, a path, NUL).
    """
    if not service or "/" in service or "\0" in service or service in (".", ".."):
        raise ValueError(f"{service!r} is not a PAM service name")
    return os.path.join(PAM_DIR, service)


def _libpam_authenticate() -> Callable[[str, bytes, str], tuple[bool, str]]:
    """
    The blocking PAM check: C{check(user, password, service) -> (ok, reason)}.

    @raises PamUnavailable: python-pam or libpam cannot be loaded.
    """
    try:
        import pam as python_pam
        python_pam.PamAuthenticator()  # loads libpam now, not at the first login
    except (ImportError, OSError, AttributeError, TypeError) as e:
        raise PamUnavailable(f"cannot load PAM (python-pam over libpam): {e}") from None

    def check(user: str, password: bytes, service: str) -> tuple[bool, str]:
        handle = python_pam.PamAuthenticator()
        try:
            ok = handle.authenticate(user, password, service=service, resetcreds=False)
        except ValueError as e:
            # NUL in the name or password: no PAM call at all.
            return False, str(e)
        return bool(ok), str(handle.reason)

    return check


@implementer(ICredentialsChecker)
class PamChecker:
    """
    Check L{IUsernamePassword} credentials with PAM service C{service}.
    The avatar id is the user name (a L{str}).

    @param runner: C{runner(f, *args)} runs the blocking check (default
        L{deferToThread}); tests pass a synchronous one.
    @param check: the PAM call (a seam for tests; default libpam's).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, service: str, runner: Runner | None = None,
                 check: Optional[Callable[[str, bytes, str], tuple[bool, str]]] = None) -> None:
        pam_service_file(service)
        self.service = service
        self._runner = runner if runner is not None else deferToThread
        self._check_pam = check if check is not None else _libpam_authenticate()
        self._lock = threading.Lock()
        #: The slowest PAM check seen, what every refusal is padded to.
        self._slowest = 0.0
        self.sleep = time.sleep
        self.clock = time.monotonic

    def requestAvatarId(self, credentials: Any) -> Deferred[str]:
        return maybeDeferred(self._runner, self._check, credentials.username,
                             credentials.password)

    def _check(self, username: str | bytes, password: str | bytes) -> str:
        started = self.clock()
        try:
            user = _text(username, "user name")
        except UnauthorizedLogin:
            self._pad(started)
            raise
        if isinstance(password, str):
            password = password.encode("utf-8")
        ok, reason = self._check_pam(user, password, self.service)
        took = self.clock() - started
        with self._lock:
            self._slowest = min(max(self._slowest, took), _MAX_PAD)
        if ok:
            return user
        self._pad(started)
        # PAM's reason ("Authentication failure", "User not known to the
        # underlying authentication module") is for the log only.
        refuse(user, f"PAM service {self.service!r}: {reason}")

    def _pad(self, started: float) -> None:
        """Wait until a refusal started at C{started} took as long as the slowest check."""
        with self._lock:
            pad = self._slowest * _MARGIN + _MARGIN_S
        left = started + pad - self.clock()
        if left > 0:
            self.sleep(left)
