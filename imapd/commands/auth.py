# -*- test-case-name: tests.imapd.commands.test_auth -*-
"""
Not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE (RFC 3501 section
6.2; SASL-IR RFC 4959).

Logins go through the cred portal (L{imapd.account.MailRealm}); failures
are answered L{SessionLimits.failed_login_delay} after the attempt began
(not after the check ended, so that the time of the check, which depends
on the user's password scheme, does not show), and too many failures end
the connection.  Failures are also counted per remote address across
connections (L{imapd.auth.throttle}): an address over
C{max_failed_logins_per_address} gets BYE without a password check.
"""

from __future__ import annotations

import base64
import binascii

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import LoginFailed, UnauthorizedLogin
from twisted.internet import task
from twisted.python.failure import Failure

from storage.errors import StoreError

from imapd import metrics
from imapd.account import IAccount, store_open_failed
from imapd.auth.errors import AuthUnavailable
from imapd.cluster.relay import NotOurs, relay_login
from imapd.commands.any import capabilities
from imapd.errors import BadCommand, CommandFailed, ConnectionClosing
from imapd.parser.types import Authenticate, Login, StartTLS

__all__ = ["handle_starttls", "handle_login", "handle_authenticate"]


async def handle_starttls(session, cmd: StartTLS):
    """RFC 3501 section 6.2.1."""
    if session.tls_active:
        raise BadCommand("TLS is already active")
    if session.context.tls is None:
        raise CommandFailed("TLS is not configured on this server")
    session.send(f"{cmd.tag} OK Begin TLS negotiation now\r\n".encode())
    session.start_tls()
    # The tagged response is written above, before the handshake; the
    # dispatcher must not write another one.
    session.suppress_tagged = True


def _require_secure(session) -> None:
    if not session.plaintext_auth_allowed:
        # RFC 5530 PRIVACYREQUIRED; RFC 3501 6.2.3 LOGINDISABLED.
        raise CommandFailed(
            "Plaintext authentication is disabled; use STARTTLS first",
            "PRIVACYREQUIRED",
        )


async def _login(session, tag: str, user: bytes, password: bytes,
                 authzid: "bytes | None" = None):
    """
    Authenticate through the portal; set up the session on success.  In a
    login process (C{context.handoff}, issue 14) the master's auth process
    checks the password, and the session then goes to its mail worker,
    which answers the command.
    """
    try:
        name = user.decode("utf-8")
    except UnicodeDecodeError:
        raise BadCommand("User name is not valid UTF-8")
    limits = session.limits
    ledger = session.context.login_failures
    handoff = session.context.handoff
    address = _address(session)
    started = session.clock.seconds()
    if ledger.blocked(address, started, limits.max_failed_logins_per_address,
                      limits.failed_login_decay):
        session.log_event("login refused", name, reason="too many failures from address")
        raise ConnectionClosing("Too many failed logins from your address; try again later")
    try:
        if handoff is None:
            # The session is the mind: a realm may keep it to end it later
            # (imapd.cluster.sessions).
            _iface, account, _logout = await session.context.portal.login(
                UsernamePassword(user, password), session, IAccount
            )
        else:
            record = await handoff.authenticate(session, user, password)
    except AuthUnavailable as e:
        # The password database could not answer (LDAP down): RFC 5530
        # UNAVAILABLE, not counted as a failure; the log names the server.
        session.log_event("login unavailable", name, reason=str(e))
        raise CommandFailed("Authentication is unavailable now; try again", "UNAVAILABLE")
    except NotOurs as e:
        # Issue 15 proxy-when-not-ours: the password is good, the user
        # lives on another node; the session becomes a relay to it.
        # A SASL login (authzid not None) is relayed as one.
        return await relay_login(session, e.host, user, password, authzid)
    except (UnauthorizedLogin, LoginFailed) as e:
        metrics.login(False)
        session._failed_logins += 1
        ledger.failed(address, session.clock.seconds(), limits.failed_login_decay)
        # One line, with the address and the checker's reason (issue 16
        # item 8); the client learns none of it.
        session.log_event("login failed", name,
                          reason=getattr(e, "reason", None) or "authentication failed")
        # The same deadline for every failure, from the attempt's start.
        left = started + limits.failed_login_delay - session.clock.seconds()
        await task.deferLater(session.clock, max(0.0, left), lambda: None)
        if session._failed_logins >= session.limits.max_failed_logins:
            raise ConnectionClosing("Too many failed logins")
        raise CommandFailed("Authentication failed.", "AUTHENTICATIONFAILED")
    except StoreError:
        # Issue 16 item 2: the password was good, the mail cannot be
        # opened (the realm opens the store); logged with the user and the
        # session, no path for the client.  (Anything else is a SERVERBUG
        # the dispatcher logs with its traceback.)
        code, text = store_open_failed(session.log, name, session, Failure())
        raise CommandFailed(text, code)
    metrics.login(True)
    if handoff is not None:
        session.log_event("login", record.name, tls=session.tls_active)
        await handoff.hand_off(session, tag, record)
        # The worker wrote the tagged response.
        session.suppress_tagged = True
        return None
    session.set_authenticated(account)
    session.log_event("login", account.user, tls=session.tls_active)
    return "CAPABILITY " + " ".join(capabilities(session)), "Logged in"


def _address(session) -> str:
    """
    The remote address failures are counted by (the host, without the
    port): the client a trusted proxy named (ID x-originating-ip), else
    the transport's peer.
    """
    if session.client_address is not None:
        return session.client_address
    peer = session.transport.getPeer() if session.transport is not None else None
    return str(getattr(peer, "host", peer))


async def handle_login(session, cmd: Login):
    """RFC 3501 section 6.2.3."""
    _require_secure(session)
    return await _login(session, cmd.tag, cmd.user, cmd.password)


def _b64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadCommand("Invalid base64 in SASL response")


async def handle_authenticate(session, cmd: Authenticate):
    """
    RFC 3501 section 6.2.2 with RFC 4959's initial response.  A client
    response of C{*} cancels (answered with BAD, as the RFC says).
    """
    from imapd.auth.sasl import MECHANISMS, Credentials, SaslError

    factory = MECHANISMS.get(cmd.mechanism.upper())
    if factory is None:
        raise CommandFailed(f"Unsupported authentication mechanism {cmd.mechanism}")
    _require_secure(session)
    mech = factory()
    if cmd.initial is None:
        response = None
    elif cmd.initial == b"=":
        response = b""
    else:
        response = _b64(cmd.initial)
    while True:
        try:
            step = mech.step(response)
        except SaslError as e:
            raise BadCommand(f"Authentication failed: {e}")
        if isinstance(step, Credentials):
            break
        challenge = base64.b64encode(step.data) if step.data else b""
        line = await session.read_line(challenge)
        if line.strip() == b"*":
            raise BadCommand("Authentication cancelled")
        response = _b64(line.strip())
    def raw(value) -> bytes:
        return value.encode("utf-8") if isinstance(value, str) else value
    return await _login(session, cmd.tag, raw(step.authcid), raw(step.password),
                        raw(step.authzid or ""))
