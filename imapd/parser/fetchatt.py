# -*- test-case-name: tests.imapd.parser.test_parser_fetch -*-
"""
FETCH data items (RFC 3501 section 6.4.5 and the C{fetch-att} rule of
section 9), with RFC 3516 BINARY and RFC 7162 MODSEQ.

    fetch-att = "ENVELOPE" / "FLAGS" / "INTERNALDATE" /
                "RFC822" [".HEADER" / ".SIZE" / ".TEXT"] /
                "BODY" ["STRUCTURE"] / "UID" /
                "BODY" section ["<" number "." nz-number ">"] /
                "BODY.PEEK" section ["<" number "." nz-number ">"] /
                "BINARY" [".PEEK"] section-binary [partial] /
                "BINARY.SIZE" section-binary / "MODSEQ" /
                "SAVEDATE" / "PREVIEW" [SP "(" "LAZY" ")"]

SAVEDATE is RFC 8514 section 3, PREVIEW RFC 8970 section 3 (LAZY is its
only modifier).
"""

from __future__ import annotations

from typing import Optional

from imapd.parser.primitives import (
    NotParseable, describe, parse_astring, parse_number, parse_nz_number,
    parse_paren_list,
)
from imapd.parser.types import FetchAttr, Section

__all__ = ["parse_fetch_atts", "parse_fetch_att", "parse_section", "MACROS"]

# RFC 3501 section 6.4.5: the macros stand alone (never inside a list).
MACROS: dict[bytes, tuple[FetchAttr, ...]] = {
    b"ALL": (FetchAttr("FLAGS"), FetchAttr("INTERNALDATE"),
             FetchAttr("RFC822.SIZE"), FetchAttr("ENVELOPE")),
    b"FAST": (FetchAttr("FLAGS"), FetchAttr("INTERNALDATE"),
              FetchAttr("RFC822.SIZE")),
    b"FULL": (FetchAttr("FLAGS"), FetchAttr("INTERNALDATE"),
              FetchAttr("RFC822.SIZE"), FetchAttr("ENVELOPE"),
              FetchAttr("BODY")),
}

# Items that take no section.
_SIMPLE = {b"ENVELOPE", b"FLAGS", b"INTERNALDATE", b"RFC822",
           b"RFC822.HEADER", b"RFC822.SIZE", b"RFC822.TEXT",
           b"BODYSTRUCTURE", b"UID", b"MODSEQ", b"SAVEDATE"}

_NAME_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")


def _name(buf: bytes, pos: int) -> tuple[bytes, int]:
    end = pos
    while end < len(buf) and buf[end] in _NAME_CHARS:
        end += 1
    if end == pos:
        raise NotParseable(
            "Expected FETCH item, found %s" % describe(buf, pos), pos)
    return buf[pos:end].upper(), end


def _header_list(buf: bytes, pos: int) -> tuple[tuple[bytes, ...], int]:
    # header-list = "(" header-fld-name *(SP header-fld-name) ")"
    names, pos = parse_paren_list(buf, pos, parse_astring, empty=False)
    return tuple(names), pos


def parse_section(buf: bytes, pos: int,
                  binary: bool = False) -> tuple[Section, int]:
    """
    RFC 3501 C{section} (C{[...]}); with C{binary}, RFC 3516
    C{section-binary}, which holds part numbers only.
    """
    if buf[pos:pos + 1] != b"[":
        raise NotParseable("Expected '['", pos)
    pos += 1
    parts: list[int] = []
    text: Optional[str] = None
    fields: tuple[bytes, ...] = ()
    # section-part = nz-number *("." nz-number)
    while buf[pos:pos + 1].isdigit():
        try:
            n, pos = parse_nz_number(buf, pos)
        except NotParseable:
            raise NotParseable("Invalid section part number", pos) from None
        parts.append(n)
        if buf[pos:pos + 1] != b".":
            break
        pos += 1
        if not buf[pos:pos + 1].isdigit():
            break
    if buf[pos:pos + 1] != b"]":
        if binary:
            raise NotParseable("Invalid BINARY section", pos)
        try:
            name, pos = _name(buf, pos)
        except NotParseable:
            raise NotParseable("Invalid section", pos) from None
        if name in (b"HEADER", b"TEXT"):
            text = name.decode()
        elif name in (b"HEADER.FIELDS", b"HEADER.FIELDS.NOT"):
            text = name.decode()
            if buf[pos:pos + 1] != b" ":
                raise NotParseable("Expected header list", pos)
            fields, pos = _header_list(buf, pos + 1)
        elif name == b"MIME" and parts:
            # RFC 3501 section 6.4.5: MIME only qualifies a body part.
            text = "MIME"
        else:
            raise NotParseable("Invalid section", pos)
    elif parts and buf[pos - 1:pos] == b".":
        raise NotParseable("Invalid section", pos)
    if buf[pos:pos + 1] != b"]":
        raise NotParseable(
            "Expected ']', found %s" % describe(buf, pos), pos)
    return Section(tuple(parts), text, fields), pos + 1


def _partial(buf: bytes, pos: int) -> tuple[Optional[tuple[int, int]], int]:
    # "<" number "." nz-number ">"
    if buf[pos:pos + 1] != b"<":
        return None, pos
    try:
        offset, p = parse_number(buf, pos + 1)
        if buf[p:p + 1] != b".":
            raise NotParseable("", p)
        length, p = parse_nz_number(buf, p + 1)
    except NotParseable:
        raise NotParseable("Invalid partial", pos) from None
    if buf[p:p + 1] != b">":
        raise NotParseable("Invalid partial", pos)
    return (offset, length), p + 1


def _preview(buf: bytes, pos: int) -> tuple[FetchAttr, int]:
    # RFC 8970 section 3: "PREVIEW" [SP "(" preview-mod *(SP preview-mod)
    # ")"], preview-mod = "LAZY".  The space before "(" is part of the
    # item, so "PREVIEW (LAZY)" is one item inside the attribute list.
    # "FETCH 1 PREVIEW (CHANGEDSINCE 5)" is PREVIEW then FETCH modifiers
    # (RFC 4466 section 2.4): a list that is not all LAZY is left to them.
    if buf[pos:pos + 2] != b" (":
        return FetchAttr("PREVIEW"), pos
    try:
        mods, end = parse_paren_list(buf, pos + 1, _name, empty=False)
    except NotParseable:
        return FetchAttr("PREVIEW"), pos
    if any(mod != b"LAZY" for mod in mods):
        return FetchAttr("PREVIEW"), pos
    return FetchAttr("PREVIEW", lazy=True), end


def parse_fetch_att(buf: bytes, pos: int) -> tuple[FetchAttr, int]:
    """One C{fetch-att}; names are upper-cased in the result."""
    start = pos
    name, pos = _name(buf, pos)
    bracket = buf[pos:pos + 1] == b"["
    if name == b"PREVIEW":
        return _preview(buf, pos)
    if name in _SIMPLE or (name == b"BODY" and not bracket):
        # Plain BODY is the non-extensible BODYSTRUCTURE.
        return FetchAttr(name.decode()), pos
    if name in (b"BODY", b"BODY.PEEK") and bracket:
        section, pos = parse_section(buf, pos)
        partial, pos = _partial(buf, pos)
        return FetchAttr("BODY", section, partial,
                         peek=name == b"BODY.PEEK"), pos
    if name in (b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE") and bracket:
        section, pos = parse_section(buf, pos, binary=True)
        if name == b"BINARY.SIZE":
            return FetchAttr("BINARY.SIZE", section), pos
        partial, pos = _partial(buf, pos)
        return FetchAttr("BINARY", section, partial,
                         peek=name == b"BINARY.PEEK"), pos
    if name in (b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE",
                b"BODY.PEEK"):
        raise NotParseable("Expected '[' after %s" % name.decode(), pos)
    raise NotParseable(
        "Unknown FETCH item %s" % name[:32].decode("ascii"), start)


def parse_fetch_atts(buf: bytes, pos: int) -> tuple[tuple[FetchAttr, ...], int]:
    """
    The argument of FETCH after the sequence set: a macro (ALL, FAST,
    FULL, expanded here), a single item, or a parenthesized list.
    """
    if buf[pos:pos + 1] == b"(":
        items, pos = parse_paren_list(buf, pos, parse_fetch_att, empty=False)
        return tuple(items), pos
    name, end = _name(buf, pos)
    if name in MACROS:
        return MACROS[name], end
    item, pos = parse_fetch_att(buf, pos)
    return (item,), pos
