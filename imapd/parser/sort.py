# -*- test-case-name: tests.imapd.sort.test_sort_parser -*-
"""
SORT and THREAD command parsing (RFC 5256 section 5, RFC 5957), and their
typed results.  Registered in L{imapd.parser.commands}.

    sort          = ["UID" SP] "SORT" [SP sort-return-opts] SP sort-criteria
                    SP search-criteria
    sort-return-opts = "RETURN" SP "(" [sort-return-opt
                       *(SP sort-return-opt)] ")"       ; RFC 5267 section 3
    sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"
    sort-criterion = ["REVERSE" SP] sort-key
    thread        = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
    search-criteria = charset 1*(SP search-key)

Unlike SEARCH, the charset is mandatory here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from imapd.parser.primitives import (
    NotParseable, describe, parse_astring, parse_atom, parse_end,
    parse_paren_list, parse_space,
)
from imapd.parser.context import parse_return_options
from imapd.parser.searchkey import parse_search_keys
from imapd.parser.types import Command, FetchAttr, SearchKey

__all__ = ["Sort", "Thread", "parse_sort", "parse_thread", "SORT_KEYS"]

#: RFC 5256 section 3 sort keys and RFC 5957 section 3 additions.
SORT_KEYS = frozenset({
    "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
    "DISPLAYFROM", "DISPLAYTO",
})

@dataclass(frozen=True, slots=True)
class Sort(Command):
    """
    RFC 5256 section 3 SORT (and UID SORT).

    @ivar criteria: C{(key, reverse)} pairs, most significant first.
    @ivar charset: the charset of the search strings, as sent.
    @ivar key: an AND node of the search keys.
    @ivar return_opts: the RFC 5267 ESORT C{RETURN} options, upper case
        (an empty list is C{("ALL",)}, as in RFC 4731 section 3.1), or
        C{None} without RETURN: then the answer is a plain C{* SORT}.
    @ivar partial: the RFC 5267 section 4.4 C{PARTIAL low:high} range
        (CONTEXT=SORT), ascending, or None.
    @ivar update_atts: RFC 5465 section 7's C{UPDATE (fetch-atts)}.
    """
    criteria: tuple[tuple[str, bool], ...] = ()
    charset: str = "UTF-8"
    key: SearchKey = field(default_factory=lambda: SearchKey("ALL"))
    uid: bool = False
    return_opts: Optional[tuple[str, ...]] = None
    partial: Optional[tuple[int, int]] = None
    update_atts: tuple[FetchAttr, ...] = ()
    name = "SORT"


@dataclass(frozen=True, slots=True)
class Thread(Command):
    """
    RFC 5256 section 4 THREAD (and UID THREAD).

    @ivar algorithm: the upper-case algorithm name, as sent (the handler
        refuses the ones it does not implement).
    """
    algorithm: str = "REFERENCES"
    charset: str = "UTF-8"
    key: SearchKey = field(default_factory=lambda: SearchKey("ALL"))
    uid: bool = False
    name = "THREAD"


def _sp(buf: bytes, pos: int) -> int:
    return parse_space(buf, pos)[1]


def _upper_atom(buf: bytes, pos: int) -> tuple[str, int]:
    atom, pos = parse_atom(buf, pos)
    return atom.upper().decode("ascii", "replace"), pos


def _criterion(buf: bytes, pos: int) -> tuple[tuple[str, bool], int]:
    start = pos
    name, pos = _upper_atom(buf, pos)
    reverse = False
    if name == "REVERSE":
        reverse = True
        start = pos = _sp(buf, pos)
        name, pos = _upper_atom(buf, pos)
    if name not in SORT_KEYS:
        raise NotParseable("Unknown sort key %s" % name[:32], start)
    return (name, reverse), pos


def _search_criteria(buf: bytes, pos: int,
                     max_depth: int) -> tuple[str, SearchKey, int]:
    value, pos = parse_astring(buf, pos)
    try:
        charset = value.decode("ascii")
    except UnicodeDecodeError:
        raise NotParseable("Invalid charset name", pos) from None
    keys, pos = parse_search_keys(buf, _sp(buf, pos), max_depth)
    parse_end(buf, pos)
    return charset, SearchKey("AND", children=keys), pos


def parse_sort(tag: str, buf: bytes, pos: int, ctx, uid: bool = False) -> Command:
    """
    RFC 5256 section 5: SORT SP sort-criteria SP search-criteria, with
    RFC 5267 section 3's C{RETURN (options)} before the criteria (with
    section 4's CONTEXT, UPDATE and PARTIAL: CONTEXT=SORT).
    """
    pos = _sp(buf, pos)
    ret = None
    if buf[pos:pos + 7].upper() == b"RETURN ":
        # RFC 4731 section 3.1, which RFC 5267 section 3 follows:
        # RETURN () means RETURN (ALL).  A repeated option counts once.
        ret, pos = parse_return_options(buf, pos + 7)
        pos = _sp(buf, pos)
    if buf[pos:pos + 1] != b"(":
        raise NotParseable(
            "Expected sort criteria, found %s" % describe(buf, pos), pos)
    criteria, pos = parse_paren_list(buf, pos, _criterion, empty=False)
    charset, key, pos = _search_criteria(buf, _sp(buf, pos), ctx.max_depth)
    if ret is None:
        return Sort(tag, tuple(criteria), charset, key, uid)
    return Sort(tag, tuple(criteria), charset, key, uid, ret.names, ret.partial,
                ret.update_atts)


def parse_thread(tag: str, buf: bytes, pos: int, ctx,
                 uid: bool = False) -> Command:
    """RFC 5256 section 5: THREAD SP thread-alg SP search-criteria."""
    algorithm, pos = _upper_atom(buf, _sp(buf, pos))
    charset, key, pos = _search_criteria(buf, _sp(buf, pos), ctx.max_depth)
    return Thread(tag, algorithm, charset, key, uid)


def parse_uid_sort(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """UID SORT (RFC 5256 section 3)."""
    return parse_sort(tag, buf, pos, ctx, uid=True)


def parse_uid_thread(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """UID THREAD (RFC 5256 section 4)."""
    return parse_thread(tag, buf, pos, ctx, uid=True)
