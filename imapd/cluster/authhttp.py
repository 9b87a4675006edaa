# -*- test-case-name: tests.imapd.cluster.test_authhttp -*-
"""
The nginx mail proxy's C{auth_http} service (ngx_mail_auth_http_module).

nginx terminates the client's TLS, speaks IMAP up to the login, then
sends us C{GET} with the credentials in headers: C{Auth-Method} (plain,
login, cram-md5, apop, external, none), C{Auth-User} and C{Auth-Pass}
(URL-escaped by nginx), C{Auth-Protocol}, C{Auth-Login-Attempt},
C{Client-IP}.  Only the response headers matter (the body is ignored,
and nginx reads at most about 1 KiB of them):

    success   Auth-Status: OK, Auth-Server: <IP address>, Auth-Port: <port>
    failure   Auth-Status: <text nginx sends in the client's NO>, and
              Auth-Wait: <seconds> to let the client try again; without
              Auth-Wait nginx closes the connection

We check the password (L{imapd.auth.authenticator.Authenticator}: the
same check as a backend's LOGIN), then answer the owner of the user
(L{imapd.cluster.owner}); nginx relays the client's own login to it, so
the backend checks the password again.  nginx's documentation asks that
after some failed attempts the answer carry no Auth-Wait (each attempt
costs nginx memory until the session ends): C{auth_http_max_attempts}.
Failures are also counted per C{Client-IP} (the real client, not nginx)
with the server's C{limits.max_failed_logins_per_address} ledger.
"""

from __future__ import annotations

import hmac
from typing import Optional
from urllib.parse import unquote_to_bytes

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.web import resource, server

from imapd.auth.errors import AuthUnavailable
from imapd.auth.throttle import FailureLedger

__all__ = ["AuthHTTPResource", "auth_http_site"]

log = Logger(namespace="imapd.cluster.authhttp")

#: What the client reads after its tag and NO (nginx adds them).
INVALID = "[AUTHENTICATIONFAILED] Invalid login or password"
UNAVAILABLE = "[UNAVAILABLE] No server available, try again later"
UNSUPPORTED = "[CANNOT] This authentication method is not supported by the proxy"
#: Methods whose password nginx hands us in clear.
PLAINTEXT_METHODS = (b"plain", b"login")


class AuthHTTPResource(resource.Resource):
    """
    @param authenticator: checks a name and password (its C{authenticate}
        returns a Deferred firing with a record whose C{name} is the user).
    @param directory: the L{imapd.cluster.owner.Directory}.
    @param key: the shared secret nginx must send in C{X-Auth-Key}, or "".
    @param wait: seconds of C{Auth-Wait} after a failure.
    @param max_attempts: from this attempt on, a failure closes the session.
    @param limits: the server's L{imapd.server.SessionLimits} (per-address
        failure ledger), or None for no ledger.
    @param runner: C{runner(f, *args)} runs the blocking owner lookup and
        returns a Deferred (default: in the reactor's thread pool).
    """

    isLeaf = True

    def __init__(self, authenticator, directory, key: str = "", wait: int = 3,
                 max_attempts: int = 10, limits=None, clock=None, runner=None) -> None:
        super().__init__()
        if clock is None:
            from twisted.internet import reactor as clock
        self.authenticator = authenticator
        self.directory = directory
        self.key = key.encode("utf-8")
        self.wait = wait
        self.max_attempts = max_attempts
        self.limits = limits
        self.clock = clock
        self.ledger = FailureLedger()
        self.runner = threads.deferToThread if runner is None else runner

    def render_GET(self, request) -> bytes:
        gone = []
        finished = request.notifyFinish()
        d = defer.ensureDeferred(self._answer(request))

        def done(headers):
            if gone:
                return  # nginx gave up (auth_http_timeout): nobody to answer
            for name, value in headers:
                request.setHeader(name, value)
            request.finish()

        def failed(failure):
            if not gone:
                log.failure("auth_http request failed", failure)
                done(self._failure(UNAVAILABLE, 1))

        def lost(_):
            gone.append(True)
            d.cancel()
        finished.addErrback(lost)
        d.addCallbacks(done, failed)
        return server.NOT_DONE_YET

    def _failure(self, message: str, attempt: int) -> list[tuple[str, str]]:
        headers = [("Auth-Status", message)]
        if attempt < self.max_attempts:
            headers.append(("Auth-Wait", str(self.wait)))
        return headers

    async def _answer(self, request) -> list[tuple[str, str]]:
        header = request.getHeader
        try:
            attempt = int(header(b"auth-login-attempt") or b"1")
        except ValueError:
            attempt = 1
        client = (header(b"client-ip") or b"").decode("ascii", "replace")
        if self.key and not hmac.compare_digest(
                header(b"x-auth-key") or b"", self.key):
            log.warn("auth_http request without the right X-Auth-Key from {peer}",
                     peer=request.getClientAddress())
            request.setResponseCode(403)
            return [("Auth-Status", "Temporary server problem, try again later")]
        method = (header(b"auth-method") or b"").lower()
        if method not in PLAINTEXT_METHODS:
            # cram-md5 and apop need the stored secret in clear; external and
            # none carry no password at all.
            return self._failure(UNSUPPORTED, self.max_attempts)
        user = unquote_to_bytes(header(b"auth-user") or b"")
        password = unquote_to_bytes(header(b"auth-pass") or b"")
        if self._blocked(client):
            log.info("auth_http: {client} has too many failed logins", client=client)
            return self._failure(INVALID, self.max_attempts)
        try:
            record = await self.authenticator.authenticate(user, password)
        except UnauthorizedLogin:
            self._failed(client)
            return self._failure(INVALID, attempt)
        except AuthUnavailable as e:
            # The directory is down: nginx retries, the address is not blamed.
            log.error("auth_http: authentication of {user!r} unavailable: {reason}",
                      user=user.decode("utf-8", "replace"), reason=str(e))
            return self._failure(UNAVAILABLE, attempt)
        name = getattr(record, "name", record)
        host = await self.runner(self.directory.owner, name)
        if host is None:
            log.warn("auth_http: no host is up for {user!r}", user=name)
            return self._failure(UNAVAILABLE, attempt)
        log.info("auth_http: {user!r} from {client} to {host}", user=name, client=client,
                 host=host.address)
        return [("Auth-Status", "OK"), ("Auth-Server", host.address),
                ("Auth-Port", str(host.port))]

    def _blocked(self, client: str) -> bool:
        if self.limits is None or not client:
            return False
        return self.ledger.blocked(client, self.clock.seconds(),
                                   self.limits.max_failed_logins_per_address,
                                   self.limits.failed_login_decay)

    def _failed(self, client: Optional[str]) -> None:
        if self.limits is not None and client:
            self.ledger.failed(client, self.clock.seconds(), self.limits.failed_login_decay)


def auth_http_site(resource_: AuthHTTPResource) -> server.Site:
    """The twisted.web site nginx talks to (any path: nginx's auth_http URL)."""
    site = server.Site(resource_)
    site.displayTracebacks = False
    site.noisy = False
    return site
