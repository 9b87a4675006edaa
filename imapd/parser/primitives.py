# -*- test-case-name: tests.imapd.parser.test_parser_primitives -*-
"""
The basic pieces of the RFC 3501 section 9 grammar: atoms, numbers,
strings (quoted and literal), astrings, nstrings, flags and lists.

Every parser here follows one contract::

    parse_x(buf: bytes, pos: int) -> (value, new_pos)

C{buf} is the whole command exactly as it came off the wire, literal
octets included (the receiver has already checked that every literal it
announced is complete), ending in CRLF.  A parser either returns the value
and the position just after it, or raises L{NotParseable} with a reason
that is safe to send back to the client in a BAD response.  Nothing here
keeps state or does I/O.
"""

from __future__ import annotations

import re
from typing import Callable, Optional, TypeVar

__all__ = [
    "NotParseable", "Incomplete", "parse_space", "parse_end", "at_end",
    "parse_atom", "parse_number", "parse_nz_number", "parse_modseq",
    "parse_quoted", "parse_literal", "parse_string", "parse_astring",
    "parse_nstring", "parse_mailbox", "parse_list_mailbox", "parse_flag",
    "parse_flag_list", "parse_paren_list", "parse_raw_value",
    "NUMBER_MAX", "MODSEQ_MAX",
]

T = TypeVar("T")

#: RFC 3501 section 9: C{number} is an unsigned 32-bit integer.
NUMBER_MAX = 2 ** 32 - 1
#: RFC 7162 section 7: C{mod-sequence-value} fits in 63 bits.
MODSEQ_MAX = 2 ** 63 - 1


class NotParseable(Exception):
    """
    The bytes at some position do not match the grammar.

    @ivar reason: a short, client-safe explanation (it ends up in BAD).
    @ivar pos: where the problem was found, for tests and diagnostics.
    @ivar code: an optional response code (e.g. C{"TOOBIG"}).
    """

    def __init__(self, reason: str, pos: int = -1,
                 code: Optional[str] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pos = pos
        self.code = code


class Incomplete(Exception):
    """
    The command stops at a literal whose octets have not arrived yet.

    Deliberately not a L{NotParseable}: grammar alternatives catch
    C{NotParseable} to try the next branch, but running out of input must
    reach the receiver untouched, which uses it to tell "valid so far"
    from "already wrong" before it asks the client for a literal.
    """


# RFC 3501 section 9: ATOM-CHAR is any CHAR (7-bit, not NUL) except
# atom-specials: "(" ")" "{" SP CTL list-wildcards quoted-specials
# resp-specials.  We build the byte classes once as 256-entry tables.
_CTL = set(range(0, 32)) | {127}
_ATOM_SPECIALS = set(b'(){ %*"\\]') | _CTL
ATOM_CHARS = frozenset(c for c in range(1, 128) if c not in _ATOM_SPECIALS)
# ASTRING-CHAR adds resp-specials ("]"): mailbox names like "[Gmail]/x".
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
# list-char (LIST patterns) adds the wildcards "%" and "*" as well.
LIST_CHARS = ASTRING_CHARS | {ord("%"), ord("*")}
# A tag is an astring-char run without "+" (which marks continuations).
TAG_CHARS = ASTRING_CHARS - {ord("+")}


def _run(buf: bytes, pos: int, chars: frozenset[int]) -> int:
    """Return the end of the longest run of C{chars} starting at C{pos}."""
    end = pos
    n = len(buf)
    while end < n and buf[end] in chars:
        end += 1
    return end


def describe(buf: bytes, pos: int) -> str:
    """Name the thing found at C{pos}, for error messages."""
    if pos >= len(buf) or buf[pos:pos + 2] == b"\r\n":
        return "end of line"
    c = buf[pos]
    if 32 <= c < 127:
        return repr(chr(c))
    return "byte 0x%02x" % c


def parse_space(buf: bytes, pos: int) -> tuple[None, int]:
    """Exactly one SP (RFC 3501 section 9 is strict about single spaces)."""
    if buf[pos:pos + 1] != b" ":
        raise NotParseable("Expected space, found %s" % describe(buf, pos), pos)
    return None, pos + 1


def at_end(buf: bytes, pos: int) -> bool:
    """Whether C{pos} is the final CRLF of the command."""
    return buf[pos:] == b"\r\n"


def parse_end(buf: bytes, pos: int) -> tuple[None, int]:
    """The command's final CRLF; anything else is trailing garbage."""
    if not at_end(buf, pos):
        if buf[pos:pos + 1] == b" ":
            raise NotParseable("Unexpected arguments", pos)
        raise NotParseable(
            "Expected end of line, found %s" % describe(buf, pos), pos)
    return None, len(buf)


def parse_atom(buf: bytes, pos: int,
               chars: frozenset[int] = ATOM_CHARS) -> tuple[bytes, int]:
    """RFC 3501 C{atom}: one or more ATOM-CHARs."""
    end = _run(buf, pos, chars)
    if end == pos:
        raise NotParseable("Expected atom, found %s" % describe(buf, pos), pos)
    return buf[pos:end], end


def parse_number(buf: bytes, pos: int,
                 maximum: int = NUMBER_MAX) -> tuple[int, int]:
    """
    RFC 3501 C{number}: digits, at most C{maximum} (32 bits by default).
    The digit count is checked before conversion so that a client cannot
    make us convert a 60 KiB number.
    """
    end = _run(buf, pos, _DIGITS)
    if end == pos:
        raise NotParseable(
            "Expected number, found %s" % describe(buf, pos), pos)
    if end - pos > len(str(maximum)) or int(buf[pos:end]) > maximum:
        raise NotParseable("Number too large", pos)
    return int(buf[pos:end]), end


_DIGITS = frozenset(b"0123456789")


def parse_nz_number(buf: bytes, pos: int,
                    maximum: int = NUMBER_MAX) -> tuple[int, int]:
    """RFC 3501 C{nz-number}: a number other than zero."""
    value, end = parse_number(buf, pos, maximum)
    if value == 0 or buf[pos] == ord("0"):
        raise NotParseable("Expected non-zero number", pos)
    return value, end


def parse_modseq(buf: bytes, pos: int,
                 zero: bool = False) -> tuple[int, int]:
    """
    RFC 7162 C{mod-sequence-value} (63 bits, non-zero) or, with C{zero},
    C{mod-sequence-valzer} (UNCHANGEDSINCE 0 is meaningful).
    """
    if zero:
        return parse_number(buf, pos, MODSEQ_MAX)
    return parse_nz_number(buf, pos, MODSEQ_MAX)


def parse_quoted(buf: bytes, pos: int) -> tuple[bytes, int]:
    """
    RFC 3501 C{quoted}: DQUOTE *QUOTED-CHAR DQUOTE, where only C{\\\\} and
    C{\\"} may be escaped.  CR, LF and NUL are refused (they need a
    literal); 8-bit bytes are accepted because clients send UTF-8 there
    (RFC 6855 makes that legal) and the handler decides what they mean.
    """
    if buf[pos:pos + 1] != b'"':
        raise NotParseable(
            "Expected quoted string, found %s" % describe(buf, pos), pos)
    out = bytearray()
    i = pos + 1
    n = len(buf)
    while i < n:
        c = buf[i]
        if c == 0x22:  # closing DQUOTE
            return bytes(out), i + 1
        if c == 0x5C:  # backslash
            nxt = buf[i + 1:i + 2]
            if nxt not in (b"\\", b'"'):
                raise NotParseable("Invalid escape in quoted string", i)
            out += nxt
            i += 2
            continue
        if c in (0, 10, 13):
            raise NotParseable("Invalid character in quoted string", i)
        out.append(c)
        i += 1
    raise NotParseable("Unterminated quoted string", pos)


# "{" number ["+"] "}" CRLF, optionally preceded by "~" (RFC 3516 literal8).
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\r\n")


def parse_literal(buf: bytes, pos: int,
                  binary: bool = False) -> tuple[bytes, int]:
    """
    RFC 3501 C{literal} (and RFC 7888 C{{n+}}); with C{binary}, also
    RFC 3516 C{literal8} (C{~{n}}), which only APPEND accepts.

    The size announcement must end the line: the octets follow the CRLF.
    If they are not all there yet, L{Incomplete} is raised.
    """
    m = _LITERAL.match(buf, pos)
    if m is None:
        if buf[pos:pos + 1] in (b"{", b"~"):
            raise NotParseable("Invalid literal", pos)
        raise NotParseable(
            "Expected literal, found %s" % describe(buf, pos), pos)
    if m.group(1) and not binary:
        raise NotParseable("literal8 not allowed here", pos)
    size = int(m.group(2))
    start = m.end()
    if start + size > len(buf):
        raise Incomplete()
    return buf[start:start + size], start + size


def parse_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    """RFC 3501 C{string}: quoted or literal."""
    if buf[pos:pos + 1] == b'"':
        return parse_quoted(buf, pos)
    if buf[pos:pos + 1] == b"{":
        return parse_literal(buf, pos)
    raise NotParseable("Expected string, found %s" % describe(buf, pos), pos)


def parse_astring(buf: bytes, pos: int,
                  chars: frozenset[int] = ASTRING_CHARS) -> tuple[bytes, int]:
    """RFC 3501 C{astring}: 1*ASTRING-CHAR or a string."""
    if buf[pos:pos + 1] in (b'"', b"{"):
        return parse_string(buf, pos)
    if buf[pos:pos + 2] == b"~{":
        # "~" alone is an atom, but "~{" can only be a misplaced literal8.
        raise NotParseable("literal8 not allowed here", pos)
    end = _run(buf, pos, chars)
    if end == pos:
        raise NotParseable(
            "Expected string, found %s" % describe(buf, pos), pos)
    return buf[pos:end], end


def parse_nstring(buf: bytes, pos: int) -> tuple[Optional[bytes], int]:
    """RFC 3501 C{nstring}: a string or NIL (returned as None)."""
    if buf[pos:pos + 3].upper() == b"NIL" and buf[pos + 3:pos + 4] not in _ATOM_TAIL:
        return None, pos + 3
    return parse_string(buf, pos)


_ATOM_TAIL = {bytes([c]) for c in ASTRING_CHARS}


def parse_mailbox(buf: bytes, pos: int) -> tuple[bytes, int]:
    """
    RFC 3501 C{mailbox}: an astring; C{INBOX} in any case means INBOX
    (section 5.1), so it is normalised here and handlers compare one
    spelling.  Other names stay as sent (modified UTF-7 decoding is the
    handler's business).
    """
    name, end = parse_astring(buf, pos)
    if name.upper() == b"INBOX":
        name = b"INBOX"
    return name, end


def parse_list_mailbox(buf: bytes, pos: int) -> tuple[bytes, int]:
    """RFC 3501 C{list-mailbox}: like astring but C{%} and C{*} are allowed."""
    return parse_astring(buf, pos, LIST_CHARS)


def parse_flag(buf: bytes, pos: int) -> tuple[str, int]:
    """
    RFC 3501 C{flag}: a system flag or C{\\\\atom} extension, or a keyword
    atom.  Returned as sent (ASCII), since responses echo keywords.
    """
    if buf[pos:pos + 1] == b"\\":
        if buf[pos + 1:pos + 2] == b"*":
            raise NotParseable("\\* is not a flag", pos)
        atom, end = parse_atom(buf, pos + 1)
        return "\\" + atom.decode("ascii"), end
    atom, end = parse_atom(buf, pos)
    return atom.decode("ascii"), end


def parse_paren_list(buf: bytes, pos: int,
                     item: Callable[[bytes, int], tuple[T, int]],
                     empty: bool = True) -> tuple[list[T], int]:
    """
    A parenthesized, space-separated list of C{item}s (RFC 3501 uses this
    shape for flag lists, STATUS items, header lists, ID and more).
    """
    if buf[pos:pos + 1] != b"(":
        raise NotParseable("Expected '(', found %s" % describe(buf, pos), pos)
    pos += 1
    out: list[T] = []
    if buf[pos:pos + 1] == b")":
        if not empty:
            raise NotParseable("Empty list", pos)
        return out, pos + 1
    while True:
        value, pos = item(buf, pos)
        out.append(value)
        if buf[pos:pos + 1] == b")":
            return out, pos + 1
        if buf[pos:pos + 1] != b" ":
            raise NotParseable(
                "Expected ')', found %s" % describe(buf, pos), pos)
        pos += 1


def parse_flag_list(buf: bytes, pos: int) -> tuple[tuple[str, ...], int]:
    """RFC 3501 C{flag-list}: "(" [flag *(SP flag)] ")"."""
    flags, pos = parse_paren_list(buf, pos, parse_flag)
    return tuple(flags), pos


def parse_raw_value(buf: bytes, pos: int, max_depth: int,
                    depth: int = 0) -> tuple[bytes, int]:
    """
    An RFC 4466 C{tagged-ext-val} kept as raw bytes: a number, an
    astring, or a parenthesized list of those (nested at most
    C{max_depth}).  Used for parameters whose meaning belongs to an
    extension handler (SELECT (QRESYNC (...))).
    """
    start = pos
    if buf[pos:pos + 1] == b"(":
        if depth >= max_depth:
            raise NotParseable("Too deeply nested", pos)
        pos += 1
        while buf[pos:pos + 1] != b")":
            _, pos = parse_raw_value(buf, pos, max_depth, depth + 1)
            if buf[pos:pos + 1] == b" ":
                pos += 1
            elif buf[pos:pos + 1] != b")":
                raise NotParseable(
                    "Expected ')', found %s" % describe(buf, pos), pos)
        return buf[start:pos + 1], pos + 1
    value, end = parse_astring(buf, pos, ASTRING_CHARS | {ord("*"), ord("%")})
    if buf[start:start + 1] in (b'"', b"{"):
        return buf[start:end], end
    return value, end
