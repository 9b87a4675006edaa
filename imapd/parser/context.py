# -*- test-case-name: tests.imapd.parser.test_parser_context -*-
"""
The RETURN options of SEARCH and SORT (RFC 4731 section 3.1, RFC 5267
sections 3 and 4, RFC 5182 SAVE) and RFC 5267's CANCELUPDATE command.
Shared by L{imapd.parser.commands} (SEARCH) and L{imapd.parser.sort}
(SORT), which both call L{parse_return_options}.

    search-return-opts = SP "RETURN" SP "(" [search-return-opt
                         *(SP search-return-opt)] ")"
    search-return-opt  = "MIN" / "MAX" / "ALL" / "COUNT" / "SAVE" /
                         "CONTEXT" / modifier-update /
                         "PARTIAL" SP partial-range
    partial-range      = nz-number ":" nz-number   ; RFC 5267 section 5
    modifier-update    = "UPDATE" [SP "(" fetch-att *(SP fetch-att) ")"]
                                                  ; RFC 5465 section 7
    command-select    =/ "CANCELUPDATE" 1*(SP quoted)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from imapd.parser.primitives import (
    NotParseable, at_end, parse_atom, parse_end, parse_nz_number,
    parse_paren_list, parse_quoted, parse_space,
)
from imapd.parser.fetchatt import parse_fetch_att
from imapd.parser.types import Command, FetchAttr

__all__ = ["RETURN_OPTIONS", "CancelUpdate", "ReturnOptions", "parse_return_options",
           "parse_cancelupdate"]

#: RFC 4731 section 3.1 (MIN MAX ALL COUNT), RFC 5182 (SAVE) and RFC 5267
#: section 4 (CONTEXT, UPDATE, PARTIAL): the same set for SEARCH and SORT.
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE",
                            "CONTEXT", "UPDATE", "PARTIAL"})


@dataclass(frozen=True, slots=True)
class CancelUpdate(Command):
    """
    RFC 5267 section 4.3.5: stop the updates of the searches whose
    commands had these tags.
    """
    tags: tuple[str, ...] = ()
    name = "CANCELUPDATE"


def _partial_range(buf: bytes, pos: int) -> tuple[tuple[int, int], int]:
    """
    RFC 5267 section 4.4: C{nz-number ":" nz-number}; C{500:400} is the
    same as C{400:500}, and C{*} is not allowed.  (RFC 9394's negative
    ranges, counted from the end, are not part of CONTEXT=SEARCH.)
    """
    low, pos = parse_nz_number(buf, pos)
    if buf[pos:pos + 1] != b":":
        raise NotParseable("PARTIAL needs a range n:m", pos)
    high, pos = parse_nz_number(buf, pos + 1)
    return (min(low, high), max(low, high)), pos


@dataclass(frozen=True, slots=True)
class ReturnOptions:
    """
    A parsed RETURN list.

    @ivar names: the upper-case option names in the order given, each once.
    @ivar partial: the PARTIAL range, ascending, or None.
    @ivar update_atts: RFC 5465 section 7, the FETCH attributes sent for
        each message an UPDATE adds to the result.
    """

    names: tuple[str, ...]
    partial: Optional[tuple[int, int]] = None
    update_atts: tuple[FetchAttr, ...] = ()


def parse_return_options(buf: bytes, pos: int) -> tuple[ReturnOptions, int]:
    """
    The parenthesized RETURN list at C{pos} (L{ReturnOptions}).

    An empty list means ALL (RFC 4731 section 3.1); so does a list whose
    only option is the CONTEXT hint, which asks for no particular result
    (Dovecot 2.3 answers C{RETURN (CONTEXT)} with ALL too).  RFC 5267
    section 4.4: at most one of PARTIAL and ALL.
    """
    partial: list[tuple[int, int]] = []
    atts: list[FetchAttr] = []

    def option(b: bytes, p: int) -> tuple[str, int]:
        atom, end = parse_atom(b, p)
        name = atom.upper().decode("ascii", "replace")
        if name not in RETURN_OPTIONS:
            raise NotParseable("Unknown RETURN option %s" % name[:32], p)
        if name == "PARTIAL":
            window, end = _partial_range(b, parse_space(b, end)[1])
            partial.append(window)
        elif name == "UPDATE" and b[end:end + 2] == b" (":
            found, end = parse_paren_list(b, end + 1, parse_fetch_att, empty=False)
            atts.extend(found)
        return name, end

    opts, pos = parse_paren_list(buf, pos, option)
    names = tuple(dict.fromkeys(opts))
    if len(partial) > 1 or ("PARTIAL" in names and "ALL" in names):
        raise NotParseable("RETURN may have only one of PARTIAL and ALL", pos)
    if not set(names) - {"CONTEXT"}:
        names += ("ALL",)
    return ReturnOptions(names, partial[0] if partial else None, tuple(atts)), pos


def parse_cancelupdate(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """RFC 5267 section 4.3.5: CANCELUPDATE 1*(SP quoted)."""
    tags = []
    while True:
        pos = parse_space(buf, pos)[1]
        value, pos = parse_quoted(buf, pos)
        tags.append(value.decode("utf-8", "replace"))
        if at_end(buf, pos):
            break
    parse_end(buf, pos)
    return CancelUpdate(tag, tuple(tags))
