# -*- test-case-name: tests.imapd.test_server -*-
"""
The server's shared context and its protocol factory.

Everything a session needs from the outside world comes through
L{ServerContext}: the cred portal, TLS settings for STARTTLS, limits, the
storage thread pool and the clock.  L{imapd.tap} builds one from the
configuration; tests build one by hand with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from twisted.internet.protocol import Factory

__all__ = ["SessionLimits", "QuotaLimits", "QuotaPolicy", "MailboxPolicy",
           "SPECIAL_USE_ATTRIBUTES", "DEFAULT_SPECIAL_USE", "ServerContext", "IMAPFactory"]


@dataclass(frozen=True)
class SessionLimits:
    """
    Limits on what one client controls (mission: "limits on everything a
    client controls").  Times in seconds, sizes in octets.
    """

    #: RFC 3501 section 5.4: at least 30 minutes once authenticated.
    idle_timeout_auth: float = 30 * 60
    #: Before login a connection has no business lingering.
    idle_timeout_unauth: float = 60
    #: Longest command line, literal contents excluded.
    max_line: int = 64 * 1024
    #: Largest literal after login (APPEND size limit, APPENDLIMIT).
    max_literal: int = 64 * 1024 * 1024
    #: Largest literal before login: only credentials are expected there.
    max_literal_unauth: int = 8 * 1024
    #: Most literals in one command once authenticated (MULTIAPPEND sends
    #: one per message); with C{max_literal} it bounds a command's size.
    max_literals_per_command: int = 16
    #: Before login: LOGIN's user and password are the only literals.
    max_literals_unauth: int = 2
    #: Consecutive BAD commands before the server says BYE.
    max_bad_commands: int = 20
    #: Delay before answering a failed login (slows password guessing).
    failed_login_delay: float = 2.0
    #: Failed logins on one connection before BYE.
    max_failed_logins: int = 3
    #: How often a session in IDLE re-syncs its mailbox against the store.
    idle_poll_interval: float = 2.0


@dataclass(frozen=True)
class QuotaLimits:
    """
    One user's limits (RFC 9208 section 5): C{storage} in units of 1024
    octets (RES-STORAGE), C{messages} a message count (RES-MESSAGE); 0
    means no limit on that resource.
    """

    storage: int = 0
    messages: int = 0


@dataclass(frozen=True)
class QuotaPolicy:
    """
    The quota limits from configuration: C{default} for every user and
    per-user overrides in C{users} (user name -> L{QuotaLimits}, already
    merged with the default, so an override that names only one resource
    keeps the default of the other).
    """

    default: QuotaLimits = QuotaLimits()
    users: tuple[tuple[str, QuotaLimits], ...] = ()

    def limits_for(self, user: str) -> QuotaLimits:
        for name, limits in self.users:
            if name == user:
                return limits
        return self.default


#: RFC 6154 section 2: the special-use attributes, spelled as sent.
SPECIAL_USE_ATTRIBUTES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk",
                          "\\Sent", "\\Trash")

#: The special-use mailboxes when none are configured: Dovecot's default
#: names (mailbox name -> attribute).
DEFAULT_SPECIAL_USE: tuple[tuple[str, str], ...] = (
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


@dataclass(frozen=True)
class MailboxPolicy:
    """
    RFC 6154 special-use mailboxes from configuration.

    @ivar special_use: (mailbox name, attribute) pairs; names compare
        without regard to case, as whole names.
    @ivar auto_create: mailboxes created when missing, at the user's LIST.
    """

    special_use: tuple[tuple[str, str], ...] = DEFAULT_SPECIAL_USE
    auto_create: tuple[str, ...] = ()


@dataclass
class ServerContext:
    """
    @ivar portal: a L{twisted.cred.portal.Portal} whose realm returns
        L{imapd.account.IAccount} avatars for L{IUsernamePassword}.
    @ivar tls: a Twisted TLS context factory (e.g.
        L{twisted.internet.ssl.CertificateOptions}) for STARTTLS, or None
        when no certificate is configured (STARTTLS is then not offered).
    @ivar allow_plaintext_auth: allow LOGIN/AUTHENTICATE without TLS.
    @ivar storage_pool: the thread pool for blocking store calls.
    @ivar reactor: provides L{IReactorTime} (a L{task.Clock} in tests).
    """

    portal: Any
    reactor: Any
    storage_pool: Any = None
    tls: Any = None
    allow_plaintext_auth: bool = False
    limits: SessionLimits = field(default_factory=SessionLimits)
    hostname: str = "localhost"
    #: Values for the RFC 2971 ID response.
    server_id: dict = field(
        default_factory=lambda: {"name": "imapd", "vendor": "imapd developers"}
    )
    #: Whether connections through this factory start in TLS already
    #: (implicit TLS, port 993), which makes STARTTLS pointless.
    implicit_tls: bool = False
    #: RFC 9208 limits per user.
    quota: QuotaPolicy = field(default_factory=QuotaPolicy)
    #: RFC 6154 special-use mailboxes.
    mailboxes: MailboxPolicy = field(default_factory=MailboxPolicy)


class IMAPFactory(Factory):
    """Builds one L{imapd.protocol.IMAPServerProtocol} per connection."""

    def __init__(self, context: ServerContext, implicit_tls: Optional[bool] = None):
        self.context = context
        self.implicit_tls = context.implicit_tls if implicit_tls is None else implicit_tls

    def buildProtocol(self, addr):
        from imapd.protocol import IMAPServerProtocol

        proto = IMAPServerProtocol(self.context, implicit_tls=self.implicit_tls)
        proto.factory = self
        return proto
