# -*- test-case-name: tests.imapd.test_wire -*-
"""
Encoding of IMAP data items for responses (RFC 3501 section 4).

Every response the server writes is built from these helpers, so that
quoting rules live in one place.  All functions return C{bytes}.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["quoted", "literal", "string", "nstring", "astring", "plist", "uid_set", "NIL"]

NIL = b"NIL"

# RFC 3501 section 4.3: a quoted string may hold any 7-bit character except
# CR and LF; backslash and double quote are escaped.  Anything else (8-bit,
# NUL, CR, LF) must travel as a literal.
_QUOTABLE = bytes(c for c in range(1, 128) if c not in (10, 13))
_MAX_QUOTED = 1024


def quoted(value: bytes) -> bytes:
    """A quoted string; the caller guarantees C{value} is quotable."""
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(value: bytes) -> bytes:
    """A synchronizing literal (RFC 3501 section 4.3): C{{n}CRLF} + bytes."""
    return b"{%d}\r\n" % len(value) + value


def _is_quotable(value: bytes) -> bool:
    return len(value) <= _MAX_QUOTED and not value.translate(None, _QUOTABLE)


def string(value: bytes | str) -> bytes:
    """
    A string in the cheapest safe form: quoted when every byte allows it,
    otherwise a literal.
    """
    if isinstance(value, str):
        value = value.encode("utf-8")
    return quoted(value) if _is_quotable(value) else literal(value)


def nstring(value: bytes | str | None) -> bytes:
    """RFC 3501 C{nstring}: NIL for None, else L{string}."""
    return NIL if value is None else string(value)


_ATOM_SPECIALS = frozenset(b'(){ %*"\\]')


def astring(value: bytes | str) -> bytes:
    """
    RFC 3501 C{astring}: a bare atom when possible (mailbox names in LIST
    read better that way), else L{string}.
    """
    if isinstance(value, str):
        value = value.encode("utf-8")
    if value and value.upper() != b"NIL" and all(
        32 < c < 127 and c not in _ATOM_SPECIALS for c in value
    ):
        return value
    return string(value)


def plist(items: Iterable[bytes]) -> bytes:
    """A parenthesized list of already-encoded items."""
    return b"(" + b" ".join(items) + b")"


def uid_set(uids: Iterable[int]) -> str:
    """
    RFC 4315 C{uid-set} for APPENDUID/COPYUID, keeping the given order
    (COPYUID pairs source and destination UIDs by position) and folding
    ascending runs into ranges: C{[1, 2, 3, 7]} -> C{"1:3,7"}.
    """
    parts: list[str] = []
    start = prev = None
    for u in uids:
        if prev is not None and u == prev + 1:
            prev = u
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = u
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)
