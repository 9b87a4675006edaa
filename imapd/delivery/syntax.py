# -*- test-case-name: tests.delivery.test_syntax -*-
"""
LMTP command lines (RFC 2033, which takes SMTP's, RFC 5321 section 4.1)
as typed values, without I/O: L{parse_command} turns one line (CRLF
removed) into a frozen dataclass or raises L{SyntaxProblem} with the
reply to send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

__all__ = ["SyntaxProblem", "Lhlo", "MailFrom", "RcptTo", "Simple", "Vrfy",
           "parse_command", "parse_path"]


class SyntaxProblem(Exception):
    """A line that is no acceptable command, with the reply to send."""

    def __init__(self, code: int, status: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.status = status
        self.text = text


@dataclass(frozen=True, slots=True)
class Lhlo:
    """RFC 2033 section 4.1: LHLO domain."""

    domain: str


@dataclass(frozen=True, slots=True)
class MailFrom:
    """
    RFC 5321 section 4.1.1.2 with SIZE (RFC 1870) and BODY (RFC 6152).

    @ivar sender: the reverse-path without brackets ("" for C{<>}).
    @ivar size: the declared size, or None.
    @ivar body: C{7BIT} or C{8BITMIME}.
    """

    sender: str
    size: Optional[int] = None
    body: str = "7BIT"


@dataclass(frozen=True, slots=True)
class RcptTo:
    """RFC 5321 section 4.1.1.3; C{address} without brackets."""

    address: str


@dataclass(frozen=True, slots=True)
class Vrfy:
    """RFC 5321 section 4.1.1.6 (answered 252: we do not say)."""

    argument: str


@dataclass(frozen=True, slots=True)
class Simple:
    """DATA, RSET, NOOP, QUIT: a verb (upper case) and nothing to parse."""

    verb: str


#: RFC 5321 section 4.1.2 Mailbox, loosely: a local part (dot-string or
#: quoted string) and a domain or address literal; no source routes.
_PATH = re.compile(rb'<(?:@[^:<>]*:)?((?:"(?:[^"\\\r\n]|\\.)*"|[^\s<>"@]+)(?:@[^\s<>@]+)?)?>')
_KEYWORD = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9-]*$")

#: Verbs that take no argument.
_SIMPLE = ("DATA", "RSET", "QUIT")


def parse_path(text: bytes, allow_empty: bool) -> tuple[str, bytes]:
    """
    C{<address>} at the start of C{text}: the address and what follows.
    RFC 5321 section 4.1.1.3 allows a source route (C{<@a,@b:user@c>}),
    which is ignored (Appendix C).

    @raises SyntaxProblem: 501 5.1.3 (RFC 3463: bad address syntax).
    """
    m = _PATH.match(text)
    if m is None:
        raise SyntaxProblem(501, "5.1.3", "Bad address syntax; use <local@domain>")
    address = m.group(1) or b""
    if not address and not allow_empty:
        raise SyntaxProblem(501, "5.1.3", "A recipient address is required")
    try:
        decoded = address.decode("utf-8")
    except UnicodeDecodeError:
        raise SyntaxProblem(501, "5.1.3", "Address is not UTF-8") from None
    return decoded, text[m.end():]


def _parameters(text: bytes) -> dict[str, Optional[str]]:
    """C{KEY=VALUE} parameters (RFC 5321 section 4.1.2 esmtp-param)."""
    params: dict[str, Optional[str]] = {}
    for word in text.split():
        key, eq, value = word.partition(b"=")
        if not _KEYWORD.match(key):
            raise SyntaxProblem(501, "5.5.4", "Bad parameter syntax")
        params[key.decode("ascii").upper()] = value.decode("ascii", "replace") if eq else None
    return params


def _mail_from(rest: bytes) -> MailFrom:
    sender, tail = parse_path(rest, allow_empty=True)
    size = None
    body = "7BIT"
    for key, value in _parameters(tail).items():
        if key == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise SyntaxProblem(501, "5.5.4", "SIZE needs a number of octets")
            size = int(value)
        elif key == "BODY":
            body = (value or "").upper()
            if body not in ("7BIT", "8BITMIME"):
                # BINARYMIME would need CHUNKING (RFC 3030), which we lack.
                raise SyntaxProblem(555, "5.5.4", f"BODY={value} is not supported")
        else:
            raise SyntaxProblem(555, "5.5.4", f"Parameter {key} is not supported")
    return MailFrom(sender, size, body)


def _rcpt_to(rest: bytes) -> RcptTo:
    address, tail = parse_path(rest, allow_empty=False)
    params = _parameters(tail)
    if params:
        # No DSN (RFC 3461) here; an MTA only sends its parameters when
        # LHLO announced DSN.
        raise SyntaxProblem(555, "5.5.4", f"Parameter {next(iter(params))} is not supported")
    return RcptTo(address)


def parse_command(line: bytes):
    """
    One command line (without CRLF) as a typed command.

    @raises SyntaxProblem: the reply for a bad or unknown command.
    """
    verb, _, rest = line.strip(b" ").partition(b" ")
    verb = verb.upper()
    rest = rest.lstrip(b" ")
    if verb == b"LHLO":
        if not rest:
            raise SyntaxProblem(501, "5.5.4", "LHLO needs a domain")
        return Lhlo(rest.decode("utf-8", "replace"))
    if verb in (b"HELO", b"EHLO"):
        # RFC 2033 section 4.1: an LMTP server answers them with an error.
        raise SyntaxProblem(500, "5.5.1", "This is LMTP: use LHLO")
    if verb == b"MAIL":
        if not rest.upper().startswith(b"FROM:"):
            raise SyntaxProblem(501, "5.5.4", "Syntax: MAIL FROM:<address>")
        return _mail_from(rest[5:].lstrip(b" "))
    if verb == b"RCPT":
        if not rest.upper().startswith(b"TO:"):
            raise SyntaxProblem(501, "5.5.4", "Syntax: RCPT TO:<address>")
        return _rcpt_to(rest[3:].lstrip(b" "))
    if verb == b"VRFY":
        return Vrfy(rest.decode("utf-8", "replace"))
    if verb == b"NOOP":
        # RFC 5321 section 4.1.1.9: NOOP may have an argument, ignored.
        return Simple("NOOP")
    if verb in (s.encode() for s in _SIMPLE):
        if rest:
            raise SyntaxProblem(501, "5.5.4", f"{verb.decode()} takes no argument")
        return Simple(verb.decode())
    raise SyntaxProblem(500, "5.5.1", "Command not recognized")
