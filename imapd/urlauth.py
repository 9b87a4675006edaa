# -*- test-case-name: tests.imapd.commands.test_urlauth -*-
"""
URLAUTH (RFC 4467) with URLAUTH=BINARY (RFC 5524): authorization tokens
and the resolution of authorized URLs.  The commands are
L{imapd.commands.urlauth}; the keys are in the mail store
(L{storage.urlauthkeys}).

The C{INTERNAL} mechanism (section 3.1 leaves its algorithm to the
server): the token is one version octet (1) and HMAC-SHA1 of the rump
URL's octets under the mailbox's access key, in hex, the layout Dovecot
uses, so a token is 42 hex digits (section 9 wants at least 32).

What a URL may be, and who may fetch it (choices where the RFC is
silent or leaves them to the server):

  - GENURLAUTH makes URLs only for the logged-in user's own messages,
    which must exist (as Dovecot checks); any host name is accepted,
    since a server behind a proxy or several names cannot know which one
    clients use (Dovecot's C{imap_urlauth_host = *}).
  - URLFETCH resolves the URLs of any user of the user database: the
    owner's existing store is opened for reading as a login would open
    it (L{imapd.account.Account.other_store}) and the token is checked
    with the owner's key.  Access identifiers are checked as section 3
    says: C{anonymous} and C{authuser} for any session (URLFETCH needs
    a login), C{user+X} only for user X, C{submit+X} only for the
    configured submission server login (C{[urlauth] submit_user},
    fetching on behalf of X, RFC 4468).  Every failure is C{NIL}
    (section 7.3), whether the owner, mailbox or message is missing or
    the token is wrong, after the same HMAC work as a success (section
    8: no timing oracle for mailbox names).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone
from typing import Optional

from imapd.imapurl import AuthorizedUrl, BadUrl, parse_authorized_url
from imapd.message import Message
from storage.errors import InvalidMailboxName, MailboxNotFound, MessageExpunged
from storage.urlauthkeys import KEY_BYTES, MailboxKeys, key_file

__all__ = ["MECHANISMS", "token_for", "add_token", "generate", "resolve", "Resolved",
           "keys_of"]

#: Mechanisms we implement (RFC 4467 section 3.1 requires INTERNAL).
MECHANISMS = ("INTERNAL",)
_VERSION = b"\x01"


def keys_of(store) -> MailboxKeys:
    """The access keys of C{store}'s user."""
    return MailboxKeys(key_file(store), fsync=getattr(store, "fsync", True))


def token_for(rump: bytes, key: bytes) -> bytes:
    """The INTERNAL token of C{rump} under the mailbox key C{key}."""
    return _VERSION + hmac.new(key, rump, hashlib.sha1).digest()


def add_token(rump: bytes, token: bytes) -> bytes:
    """The full URL: C{rump:INTERNAL:<hex token>} (RFC 4467 section 6)."""
    return rump + b":INTERNAL:" + token.hex().encode("ascii")


def _expired(url: AuthorizedUrl, now: Optional[datetime]) -> bool:
    if url.expire is None:
        return False
    return url.expire <= (now or datetime.now(timezone.utc))


def _open_message(store, url: AuthorizedUrl) -> Message:
    """Blocking: the message the URL names; BadUrl when it is not there."""
    name = url.message.mailbox
    try:
        mailbox = store.open(name, True)
    except (MailboxNotFound, InvalidMailboxName):
        raise BadUrl("No such mailbox") from None
    try:
        snapshot = mailbox.sync()
        if url.message.uidvalidity is not None and url.message.uidvalidity != snapshot.uidvalidity:
            raise BadUrl("UIDVALIDITY mismatch")
        if not any(r.uid == url.message.uid for r in snapshot.messages):
            raise BadUrl("No such message")
        try:
            return Message(mailbox.read(url.message.uid))
        except MessageExpunged:
            raise BadUrl("No such message") from None
    finally:
        mailbox.close()


def _section(message: Message, url: AuthorizedUrl) -> bytes:
    section = url.message.section
    data = message.raw if section is None else message.section(section.part, section.text,
                                                              section.fields)
    if data is None:
        raise BadUrl("No such section")
    partial = url.message.partial
    if partial is not None:
        offset, length = partial
        data = data[offset:] if length is None else data[offset:offset + length]
    return data


def generate(store, user: str, rump: bytes, mechanism: str,
             now: Optional[datetime] = None) -> bytes:
    """
    Blocking: RFC 4467 section 7.1, the full URL for C{rump}.

    @raises BadUrl: with the reason to put in the tagged NO.
    """
    if mechanism not in MECHANISMS:
        raise BadUrl(f"Unsupported URLAUTH mechanism {mechanism[:32]}")
    url = parse_authorized_url(rump)
    if url.mechanism is not None:
        raise BadUrl("Not a rump URL: it has a mechanism and token already")
    if url.user != user:
        raise BadUrl("URLs can be made only for your own messages")
    if _expired(url, now):
        raise BadUrl("The URL has expired already")
    _section(_open_message(store, url), url)
    key = keys_of(store).get(url.message.mailbox, create=True)
    return add_token(url.rump, token_for(url.rump, key))


class Resolved:
    """What URLFETCH needs of one authorized URL."""

    __slots__ = ("message", "data", "section")

    def __init__(self, message: Message, data: bytes, section) -> None:
        self.message = message
        self.data = data
        self.section = section

    def binary(self) -> Optional[bytes]:
        """
        RFC 5524 BINARY: the part with its transfer encoding removed; a
        section with a text specifier, or the whole message, as it is.
        None for an encoding we cannot undo.
        """
        section = self.section
        if section is None or section.text is not None or not section.part:
            return self.data
        return self.message.binary_section(section.part)

    def bodypartstructure(self) -> Optional[bytes]:
        """RFC 5524 BODYPARTSTRUCTURE of the part the URL names."""
        section = self.section
        return self.message.part_structure(() if section is None else section.part)


def resolve(account, raw: bytes, now: Optional[datetime] = None,
            submit_user: str = "") -> Resolved:
    """
    Blocking: RFC 4467 section 7.3, the data of a full URL for the
    session of C{account} (an L{imapd.account.IAccount}).

    @param submit_user: the submission server's login, or "" for none.
    @raises BadUrl: the URL does not verify or cannot be fetched here
        (the caller answers NIL; the reason is for the log).
    """
    url = parse_authorized_url(raw)
    if url.mechanism is None or url.token is None:
        raise BadUrl("Not a full URLAUTH URL")
    if url.mechanism not in MECHANISMS:
        raise BadUrl("Unsupported mechanism")
    user = account.user
    if url.user == user:
        store, other = account.store, None
    else:
        store = other = account.other_store(url.user)
    try:
        return _resolve(store, user, url, now, submit_user)
    finally:
        if other is not None:
            other.close()


def _resolve(store, user: str, url: AuthorizedUrl, now: Optional[datetime],
             submit_user: str) -> Resolved:
    key = None
    if store is not None:
        key = keys_of(store).get(url.message.mailbox)
    # Section 8: compute a token whether or not the owner or the mailbox
    # (key) exists.
    good = hmac.compare_digest(token_for(url.rump, key or secrets.token_bytes(KEY_BYTES)),
                               url.token)
    if key is None or not good:
        raise BadUrl("URLAUTH verification failed")
    if _expired(url, now):
        raise BadUrl("URLAUTH has expired")
    if url.access == "user":
        if url.access_user != user:
            raise BadUrl("Access is for another user")
    elif url.access == "submit":
        # Section 3: only the submission entity, on behalf of the user
        # named after "submit+" (RFC 4468 section 5: BURL).
        if not submit_user or user != submit_user:
            raise BadUrl("Access is for the submission server")
    elif url.access not in ("anonymous", "authuser"):
        raise BadUrl(f"No {url.access} access is configured here")
    message = _open_message(store, url)
    return Resolved(message, _section(message, url), url.message.section)
