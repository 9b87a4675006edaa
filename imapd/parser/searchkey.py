# -*- test-case-name: tests.imapd.parser.test_parser_search -*-
"""
SEARCH keys (RFC 3501 section 6.4.4 and the C{search-key} rule of
section 9), built into a tree of L{SearchKey} nodes; also RFC 5032
YOUNGER/OLDER (seconds, C{int}) and RFC 7162 MODSEQ (C{int}).

Nesting (parentheses, NOT, OR) is recursive, so it is bounded by
C{max_depth}: a client must not be able to exhaust the stack with
C{NOT NOT NOT ...} or C{((((...}.
"""

from __future__ import annotations

from typing import Callable

from imapd.parser.datetime_ import parse_date
from imapd.parser.primitives import (
    ATOM_CHARS, NotParseable, describe, parse_astring, parse_atom,
    parse_modseq, parse_number, parse_nz_number, parse_quoted, parse_space,
)
from imapd.parser.sequence import is_sequence_set_start, parse_sequence_set
from imapd.parser.types import SearchKey

__all__ = ["parse_search_key", "parse_search_keys"]

_Parser = Callable[[bytes, int], tuple[object, int]]


def _keyword(buf: bytes, pos: int) -> tuple[bytes, int]:
    # flag-keyword = atom (RFC 3501); "\Seen" is not a keyword.
    return parse_atom(buf, pos)


def _header(buf: bytes, pos: int) -> tuple[object, int]:
    # HEADER header-fld-name SP astring
    name, pos = parse_astring(buf, pos)
    _, pos = parse_space(buf, pos)
    value, pos = parse_astring(buf, pos)
    return (name, value), pos


def _size(buf: bytes, pos: int) -> tuple[object, int]:
    return parse_number(buf, pos)


def _interval(buf: bytes, pos: int) -> tuple[object, int]:
    # RFC 5032 YOUNGER/OLDER take a number of seconds.
    return parse_nz_number(buf, pos)


def _modseq(buf: bytes, pos: int) -> tuple[object, int]:
    """
    RFC 7162 section 3.1.5: C{MODSEQ [SP entry-name SP entry-type-req] SP
    mod-sequence-valzer}.  The entry (a per-flag mod-sequence) is checked
    and dropped: we keep one mod-sequence per message, which the RFC
    allows the server to use for every entry.
    """
    if buf[pos:pos + 1] == b'"':
        entry, pos = parse_quoted(buf, pos)
        if not entry.lower().startswith(b"/flags/") or len(entry) == 7:
            raise NotParseable("Invalid entry name", pos)
        _, pos = parse_space(buf, pos)
        kind, pos = parse_atom(buf, pos)
        if kind.lower() not in (b"priv", b"shared", b"all"):
            raise NotParseable("Invalid entry type", pos)
        _, pos = parse_space(buf, pos)
    return parse_modseq(buf, pos, zero=True)


# RFC 3501 section 6.4.4: keys without an argument.
_FLAG_KEYS = frozenset({
    b"ALL", b"ANSWERED", b"DELETED", b"DRAFT", b"FLAGGED", b"NEW", b"OLD",
    b"RECENT", b"SEEN", b"UNANSWERED", b"UNDELETED", b"UNDRAFT",
    b"UNFLAGGED", b"UNSEEN",
    b"SAVEDATESUPPORTED",  # RFC 8514 section 4.3
})

# Keys with one argument, and how to read it.
_ARG_KEYS: dict[bytes, _Parser] = {
    b"BCC": parse_astring, b"BODY": parse_astring, b"CC": parse_astring,
    b"FROM": parse_astring, b"SUBJECT": parse_astring,
    b"TEXT": parse_astring, b"TO": parse_astring,
    b"BEFORE": parse_date, b"ON": parse_date, b"SINCE": parse_date,
    b"SENTBEFORE": parse_date, b"SENTON": parse_date,
    b"SENTSINCE": parse_date,
    b"KEYWORD": _keyword, b"UNKEYWORD": _keyword,
    b"LARGER": _size, b"SMALLER": _size,
    b"UID": parse_sequence_set,
    b"HEADER": _header,
    b"YOUNGER": _interval, b"OLDER": _interval,
    b"MODSEQ": _modseq,
    # RFC 8514 section 4.3.
    b"SAVEDBEFORE": parse_date, b"SAVEDON": parse_date, b"SAVEDSINCE": parse_date,
}


def parse_search_key(buf: bytes, pos: int, max_depth: int,
                     depth: int = 0) -> tuple[SearchKey, int]:
    """
    One C{search-key}.

    @param max_depth: the deepest nesting of (), NOT and OR allowed.
    @param depth: the current nesting (callers start at 0).
    """
    if depth > max_depth:
        raise NotParseable("Search program too deeply nested", pos)
    c = buf[pos:pos + 1]
    if c == b"(":
        # "(" search-key *(SP search-key) ")": an AND group.
        children, pos = parse_search_keys(buf, pos + 1, max_depth, depth + 1)
        if buf[pos:pos + 1] != b")":
            raise NotParseable(
                "Expected ')', found %s" % describe(buf, pos), pos)
        return SearchKey("AND", children=children), pos + 1
    if is_sequence_set_start(buf, pos):
        seqset, pos = parse_sequence_set(buf, pos)
        return SearchKey("SEQSET", seqset), pos
    start = pos
    name, pos = parse_atom(buf, pos, ATOM_CHARS - {ord("(")})
    name = name.upper()
    if name in _FLAG_KEYS:
        return SearchKey(name.decode()), pos
    if name == b"NOT":
        _, pos = parse_space(buf, pos)
        child, pos = parse_search_key(buf, pos, max_depth, depth + 1)
        return SearchKey("NOT", children=(child,)), pos
    if name == b"OR":
        _, pos = parse_space(buf, pos)
        left, pos = parse_search_key(buf, pos, max_depth, depth + 1)
        _, pos = parse_space(buf, pos)
        right, pos = parse_search_key(buf, pos, max_depth, depth + 1)
        return SearchKey("OR", children=(left, right)), pos
    arg = _ARG_KEYS.get(name)
    if arg is None:
        raise NotParseable(
            "Unknown search key %s" % name[:32].decode("ascii"), start)
    if buf[pos:pos + 1] != b" ":
        raise NotParseable("Missing argument to %s" % name.decode(), pos)
    try:
        value, pos = arg(buf, pos + 1)
    except NotParseable as e:
        raise NotParseable("Invalid argument to %s: %s"
                           % (name.decode(), e.reason), e.pos) from None
    return SearchKey(name.decode(), value), pos


def parse_search_keys(buf: bytes, pos: int, max_depth: int,
                      depth: int = 0) -> tuple[tuple[SearchKey, ...], int]:
    """
    One or more space-separated keys, stopping before C{)} or the end of
    the line; the caller decides which of the two it expects.
    """
    keys: list[SearchKey] = []
    while True:
        key, pos = parse_search_key(buf, pos, max_depth, depth)
        keys.append(key)
        if buf[pos:pos + 1] != b" ":
            return tuple(keys), pos
        pos += 1
