# -*- test-case-name: tests.imapd.commands.test_urlauth -*-
"""
The URLAUTH commands (RFC 4467 section 9, with RFC 5524's URLFETCH
parameters):

    genurlauth = "GENURLAUTH" 1*(SP url-rump SP mechanism)
    resetkey   = "RESETKEY" [SP mailbox *(SP mechanism)]
    urlfetch   = "URLFETCH" 1*(SP url-fetch-arg)
    url-fetch-arg   = url-full / "(" url-full *(SP url-fetch-param) ")"
    url-fetch-param = "BODY" / "BINARY" / "BODYPARTSTRUCTURE"
    url-rump, url-full = astring;  mechanism = "INTERNAL" / atom

URLs stay bytes, exactly as sent: the authorization token is computed
over the rump URL's octets (L{imapd.urlauth}).  Mechanisms are upper
case; which ones are supported is the handler's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from imapd.parser.primitives import (
    NotParseable, at_end, parse_astring, parse_atom, parse_end, parse_mailbox,
    parse_paren_list, parse_space,
)
from imapd.parser.types import Command

__all__ = ["GenUrlAuth", "ResetKey", "UrlFetch", "UrlFetchArg",
           "parse_genurlauth", "parse_resetkey", "parse_urlfetch", "FETCH_PARAMS"]

#: RFC 5524 section 3 (BINARY, BODYPARTSTRUCTURE) and BODY.
FETCH_PARAMS = frozenset({"BODY", "BINARY", "BODYPARTSTRUCTURE"})


@dataclass(frozen=True, slots=True)
class GenUrlAuth(Command):
    """RFC 4467 section 7.1: C{(rump URL, mechanism)} pairs, in order."""
    requests: tuple[tuple[bytes, str], ...] = ()
    name = "GENURLAUTH"


@dataclass(frozen=True, slots=True)
class ResetKey(Command):
    """
    RFC 4467 section 7.2: C{mailbox} None resets every key of the user;
    C{mechanisms} as sent (upper case).
    """
    mailbox: bytes | None = None
    mechanisms: tuple[str, ...] = ()
    name = "RESETKEY"


@dataclass(frozen=True, slots=True)
class UrlFetchArg:
    """
    One URL of URLFETCH; C{params} (upper case) is None for the plain
    RFC 4467 form, a tuple (maybe empty) for RFC 5524's parenthesized one.
    """
    url: bytes
    params: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class UrlFetch(Command):
    """RFC 4467 section 7.3 with RFC 5524 section 3."""
    args: tuple[UrlFetchArg, ...] = ()
    name = "URLFETCH"


def _sp(buf: bytes, pos: int) -> int:
    return parse_space(buf, pos)[1]


def _upper(buf: bytes, pos: int) -> tuple[str, int]:
    atom, pos = parse_atom(buf, pos)
    return atom.upper().decode("ascii"), pos


def parse_genurlauth(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """GENURLAUTH 1*(SP url-rump SP mechanism)."""
    requests = []
    while not requests or not at_end(buf, pos):
        url, pos = parse_astring(buf, _sp(buf, pos))
        mechanism, pos = _upper(buf, _sp(buf, pos))
        requests.append((url, mechanism))
    parse_end(buf, pos)
    return GenUrlAuth(tag, tuple(requests))


def parse_resetkey(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """RESETKEY [SP mailbox *(SP mechanism)]."""
    if at_end(buf, pos):
        return ResetKey(tag)
    mailbox, pos = parse_mailbox(buf, _sp(buf, pos))
    mechanisms = []
    while not at_end(buf, pos):
        mechanism, pos = _upper(buf, _sp(buf, pos))
        mechanisms.append(mechanism)
    parse_end(buf, pos)
    return ResetKey(tag, mailbox, tuple(mechanisms))


def _fetch_param(buf: bytes, pos: int) -> tuple[str, int]:
    param, end = _upper(buf, pos)
    if param not in FETCH_PARAMS:
        raise NotParseable(f"Unknown URLFETCH parameter {param[:32]}", pos)
    return param, end


def _fetch_arg(buf: bytes, pos: int) -> tuple[UrlFetchArg, int]:
    if buf[pos:pos + 1] != b"(":
        url, pos = parse_astring(buf, pos)
        return UrlFetchArg(url), pos
    url, pos = parse_astring(buf, pos + 1)
    params = []
    while buf[pos:pos + 1] == b" ":
        param, pos = _fetch_param(buf, pos + 1)
        params.append(param)
    if buf[pos:pos + 1] != b")":
        raise NotParseable("Expected ')'", pos)
    if "BODY" in params and "BINARY" in params:
        # RFC 5524 section 3: one or the other.
        raise NotParseable("BODY and BINARY cannot be combined", pos)
    return UrlFetchArg(url, tuple(params)), pos + 1


def parse_urlfetch(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """URLFETCH 1*(SP url-fetch-arg)."""
    args = []
    while not args or not at_end(buf, pos):
        arg, pos = _fetch_arg(buf, _sp(buf, pos))
        args.append(arg)
    parse_end(buf, pos)
    return UrlFetch(tag, tuple(args))
