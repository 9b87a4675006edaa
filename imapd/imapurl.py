# -*- test-case-name: tests.imapd.test_imapurl -*-
"""
IMAP URLs (RFC 5092) as CATENATE uses them (RFC 4469 section 3): relative
references to a message, or a part of one, of the logged-in user on this
server.  Parsing only, no I/O; the APPEND handler does the reading.

Accepted forms (keywords are case-insensitive, as in RFC 4469's own
examples, which write both C{section=} and C{Section=})::

    [/]<enc-mailbox>[;UIDVALIDITY=<n>]/;UID=<n>[/;SECTION=<s>][/;PARTIAL=<o>[.<l>]]
    ;UID=<n>[/;SECTION=<s>][/;PARTIAL=<o>[.<l>]]      (the selected mailbox)

Without the leading C{/} the mailbox is relative to RFC 4469's base
C{imap://user@server/} (or C{.../mailbox}, whose last segment it
replaces), which names the same mailbox (RFC 3986 section 5.2).  The
second form is how clients name a message of the selected mailbox; read
strictly by RFC 3986 it would drop the mailbox, so it is taken, as its
writers mean it, as relative to the selected mailbox.

Refused (the caller answers C{NO [BADURL ...]}): any scheme or
C{//server} authority, since RFC 4469 section 3 covers only the current
session's messages ("a server implementing only this specification would
return NO"); URLAUTH parameters (RFC 4467: those URLs are for URLFETCH,
L{imapd.urlauth}); characters
outside RFC 5092's C{bchar} set; sections the FETCH grammar would refuse.

Mailbox names: RFC 5092 section 3.2 has the name percent-encoded after
conversion to UTF-8, where RFC 2192 used modified UTF-7.  Both spellings
are accepted: the decoded octets go through L{imapd.mailboxname.from_wire},
which reads ASCII as modified UTF-7 (an identity for plain names) and falls
back to UTF-8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Optional
from urllib.parse import unquote_to_bytes

from imapd import mailboxname
from imapd.errors import IMAPError
from imapd.parser.fetchatt import parse_section
from imapd.parser.primitives import NUMBER_MAX, NotParseable
from imapd.parser.types import Section

__all__ = ["MessageUrl", "BadUrl", "parse_message_url", "MAX_URL", "AuthorizedUrl",
           "parse_authorized_url"]

#: Longest URL considered at all (a mailbox name is at most 1024
#: characters, each at most 12 octets once percent-encoded UTF-8).
MAX_URL = 16 * 1024

# RFC 5092 section 11: bchar = achar / ":" / "@" / "/", achar = uchar /
# "&" / "=", uchar = unreserved / pct-encoded / sub-delims-sh; ";" starts
# the URL's parameters.
_URL_CHARS = re.compile(rb"[A-Za-z0-9\-._~!$'()*+,&=:@/;%]*\Z")

_MESSAGE_URL = re.compile(
    rb"(?:/?(?P<mailbox>[^;]+?)(?:;UIDVALIDITY=(?P<uidvalidity>[0-9]+))?/)?"
    rb";UID=(?P<uid>[0-9]+)"
    rb"(?:/;SECTION=(?P<section>[^;]+?))?"
    rb"(?:/;PARTIAL=(?P<offset>[0-9]+)(?:\.(?P<length>[0-9]+))?)?\Z",
    re.IGNORECASE,
)


class BadUrl(Exception):
    """The URL cannot be used; C{reason} is safe to show the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MessageUrl:
    """
    A parsed message (part) URL.

    @ivar mailbox: the store name, or None for the selected mailbox.
    @ivar uidvalidity: the UIDVALIDITY the URL insists on, if any; the
        URL is bad when the mailbox's differs (RFC 5092 section 6).
    @ivar section: the RFC 3501 section, None for the whole message.
    @ivar partial: C{(offset, length)}; length None means to the end.
    """

    mailbox: Optional[str]
    uidvalidity: Optional[int]
    uid: int
    section: Optional[Section] = None
    partial: Optional[tuple[int, Optional[int]]] = None


def _number(raw: bytes, what: str, nonzero: bool = True) -> int:
    if len(raw) > 10 or int(raw) > NUMBER_MAX or (nonzero and int(raw) == 0):
        raise BadUrl(f"Invalid {what}")
    return int(raw)


def parse_message_url(url: bytes) -> MessageUrl:
    """
    Parse one C{URL} argument of CATENATE.

    @raises BadUrl: the URL is malformed or outside what RFC 4469 lets a
        server resolve (see the module docstring).
    """
    if not url or len(url) > MAX_URL:
        raise BadUrl("Invalid URL")
    if url.startswith(b"//") or re.match(rb"[A-Za-z][A-Za-z0-9+.\-]*:", url):
        raise BadUrl("Only URLs relative to this server and user are supported")
    if not _URL_CHARS.match(url):
        raise BadUrl("Invalid character in URL")
    m = _MESSAGE_URL.match(url)
    if m is None:
        if re.search(rb";(?:EXPIRE|URLAUTH)=", url, re.IGNORECASE):
            raise BadUrl("URLAUTH URLs are for URLFETCH, not CATENATE")
        raise BadUrl("URL does not name a message")
    mailbox: Optional[str] = None
    if m.group("mailbox") is not None:
        try:
            mailbox = mailboxname.from_wire(unquote_to_bytes(m.group("mailbox")))
        except IMAPError as e:
            raise BadUrl(f"Invalid mailbox name: {e.text}") from None
    uidvalidity = None
    if m.group("uidvalidity") is not None:
        uidvalidity = _number(m.group("uidvalidity"), "UIDVALIDITY")
    uid = _number(m.group("uid"), "UID")
    section = None
    if m.group("section") is not None:
        spec = b"[" + unquote_to_bytes(m.group("section")) + b"]"
        try:
            section, end = parse_section(spec, 0)
        except NotParseable:
            raise BadUrl("Invalid section") from None
        if end != len(spec):
            raise BadUrl("Invalid section")
    partial = None
    if m.group("offset") is not None:
        offset = _number(m.group("offset"), "partial offset", nonzero=False)
        length = None
        if m.group("length") is not None:
            length = _number(m.group("length"), "partial length")
        partial = (offset, length)
    return MessageUrl(mailbox, uidvalidity, uid, section, partial)


# RFC 5092 section 6 (and RFC 4467 section 3): an absolute URL with the
# owner's user name, an optional EXPIRE, the access identifier, and (in a
# full URL) ":" mechanism ":" token.  The rump ends with the access.
_AUTHORIZED_URL = re.compile(
    rb"imap://(?P<user>[^;@/]+)(?:;AUTH=[^@/]+)?@(?P<host>[^/]+)/(?P<path>.+?)"
    rb"(?:;EXPIRE=(?P<expire>[^;]+))?;URLAUTH=(?P<access>[^:;/]+)"
    rb"(?::(?P<mechanism>[^:;/]+):(?P<token>[^:;/]*))?\Z",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class AuthorizedUrl:
    """
    A URLAUTH URL (RFC 4467): rump (GENURLAUTH's argument) or full
    (URLFETCH's).

    @ivar rump: the URL's octets up to and including the access
        identifier, as sent: what the token is computed over.
    @ivar user: the owner (the URL's user name, percent-decoded).
    @ivar message: the message (part) it names.
    @ivar expire: the EXPIRE date-time, or None.
    @ivar access: the access identifier, lower case: C{"anonymous"},
        C{"authuser"}, C{"user"} or C{"submit"} (with C{access_user}),
        or another application name.
    @ivar access_user: the user of C{user+}/C{submit+}, or None.
    @ivar mechanism: upper case, None in a rump URL.
    @ivar token: the decoded token, None in a rump URL.
    """

    rump: bytes
    user: str
    message: MessageUrl
    expire: Optional[datetime]
    access: str
    access_user: Optional[str]
    mechanism: Optional[str] = None
    token: Optional[bytes] = None


def parse_authorized_url(url: bytes) -> AuthorizedUrl:
    """
    Parse a URLAUTH URL, rump or full.

    @raises BadUrl: malformed, or not naming one message (part) of a
        mailbox with a UID (RFC 4467 section 3).
    """
    if not url or len(url) > MAX_URL:
        raise BadUrl("Invalid URL")
    if not _URL_CHARS.match(url.split(b"://", 1)[-1]):
        raise BadUrl("Invalid character in URL")
    m = _AUTHORIZED_URL.match(url)
    if m is None:
        raise BadUrl("Not an IMAP URL with URLAUTH")
    try:
        user = unquote_to_bytes(m.group("user")).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl("Invalid user name") from None
    message = parse_message_url(b"/" + m.group("path"))
    expire = None
    if m.group("expire") is not None:
        try:
            expire = datetime.fromisoformat(m.group("expire").decode("ascii"))
        except ValueError:
            raise BadUrl("Invalid EXPIRE") from None
        if expire.tzinfo is None:
            # RFC 3339 date-time always has an offset.
            raise BadUrl("Invalid EXPIRE")
    access, plus, who = m.group("access").decode("ascii").partition("+")
    access = access.lower()
    access_user = None
    if plus:
        try:
            access_user = unquote_to_bytes(who).decode("utf-8")
        except UnicodeDecodeError:
            raise BadUrl("Invalid access identifier") from None
    elif access in ("user", "submit"):
        raise BadUrl("Invalid access identifier")
    mechanism = token = None
    if m.group("mechanism") is not None:
        mechanism = m.group("mechanism").decode("ascii").upper()
        try:
            token = bytes.fromhex(m.group("token").decode("ascii"))
        except ValueError:
            raise BadUrl("Invalid URLAUTH token") from None
    return AuthorizedUrl(url[:m.end("access")], user, message, expire, access,
                         access_user, mechanism, token)
