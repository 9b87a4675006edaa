# -*- test-case-name: tests.imapd.commands.test_listext -*-
"""
LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and SPECIAL-USE
(RFC 6154), and CREATE-SPECIAL-USE's C{CREATE name (USE (...))}
(RFC 6154 section 3, RFC 4466 create-param).

    list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
           [SP list-return-opts]
    list-select-opts = "(" [ *(list-select-mod-opt SP) list-select-base-opt
                             *(SP list-select-opt) /
                             list-select-independent-opt
                             *(SP list-select-independent-opt) ] ")"
    mbox-or-pat      = list-mailbox / patterns
    patterns         = "(" list-mailbox *(SP list-mailbox) ")"
    list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
    status-option    = "STATUS" SP "(" status-att *(SP status-att) ")"

A LIST without any of the extended parts stays a plain L{List}, so the
RFC 3501 answer (and its C{LIST "" ""} special case) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from imapd.parser.primitives import (
    NotParseable, at_end, describe, parse_atom, parse_end, parse_flag,
    parse_list_mailbox, parse_mailbox, parse_paren_list, parse_space,
)
from imapd.parser.types import Command, Create, List

__all__ = ["ListExtended", "CreateSpecialUse", "parse_list", "parse_create",
           "SELECT_OPTIONS", "RETURN_OPTIONS"]

#: RFC 5258 section 3.1 (SUBSCRIBED, REMOTE, RECURSIVEMATCH) and RFC 6154
#: section 5.1 (SPECIAL-USE).  Unknown ones are a BAD (section 3.1).
SELECT_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
#: RECURSIVEMATCH only modifies one of these (RFC 5258 section 3.1).
_BASE_OPTIONS = frozenset({"SUBSCRIBED", "SPECIAL-USE"})
#: RFC 5258 section 3.2, RFC 5819 (STATUS), RFC 6154 section 5.2.
RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE"})


@dataclass(frozen=True, slots=True)
class ListExtended(Command):
    """
    RFC 5258 LIST with selection options, several patterns or return
    options.  Option names are upper case, in client order, without
    duplicates; C{status_items} are the RFC 5819 C{STATUS (...)} items
    (upper case), empty when STATUS was not asked for.
    """
    select_opts: tuple[str, ...] = ()
    reference: bytes = b""
    patterns: tuple[bytes, ...] = ()
    return_opts: tuple[str, ...] = ()
    status_items: tuple[str, ...] = ()
    name = "LIST"


@dataclass(frozen=True, slots=True)
class CreateSpecialUse(Command):
    """
    RFC 6154 section 3: C{CREATE mailbox (USE (\\Sent ...))}; C{use} holds
    the special-use attributes as sent.
    """
    mailbox: bytes = b""
    use: tuple[str, ...] = ()
    name = "CREATE"


def _sp(buf: bytes, pos: int) -> int:
    return parse_space(buf, pos)[1]


def _option(allowed: frozenset[str], what: str):
    def item(buf: bytes, pos: int) -> tuple[str, int]:
        atom, end = parse_atom(buf, pos)
        name = atom.upper().decode("ascii")
        if name not in allowed:
            raise NotParseable("Unknown LIST %s option %s" % (what, name[:32]), pos)
        return name, end
    return item


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _parse_return(buf: bytes, pos: int) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    from imapd.parser.commands import STATUS_ITEMS

    status: list[str] = []
    plain = _option(RETURN_OPTIONS, "return")

    def item(b: bytes, p: int) -> tuple[str, int]:
        name, p = plain(b, p)
        if name == "STATUS":
            def att(b2: bytes, p2: int) -> tuple[str, int]:
                a, e = parse_atom(b2, p2)
                s = a.upper().decode("ascii")
                if s not in STATUS_ITEMS:
                    raise NotParseable("Unknown STATUS item %s" % s[:32], p2)
                return s, e
            if status:
                raise NotParseable("STATUS given twice", p)
            items, p = parse_paren_list(b, _sp(b, p), att, empty=False)
            status.extend(items)
        return name, p

    opts, pos = parse_paren_list(buf, pos, item)
    return _unique(opts), _unique(status), pos


def parse_list(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """RFC 5258 section 6 (the grammar above); plain LIST stays L{List}."""
    pos = _sp(buf, pos)
    extended = False
    select: tuple[str, ...] = ()
    if buf[pos:pos + 1] == b"(":
        opts, pos = parse_paren_list(buf, pos, _option(SELECT_OPTIONS, "selection"))
        select = _unique(opts)
        if "RECURSIVEMATCH" in select and not _BASE_OPTIONS & set(select):
            # RFC 5258 section 3.1: RECURSIVEMATCH alone is a BAD.
            raise NotParseable("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE", pos)
        extended = True
        pos = _sp(buf, pos)
    reference, pos = parse_mailbox(buf, pos)
    pos = _sp(buf, pos)
    if buf[pos:pos + 1] == b"(":
        patterns, pos = parse_paren_list(buf, pos, parse_list_mailbox, empty=False)
        extended = True
    else:
        one, pos = parse_list_mailbox(buf, pos)
        patterns = [one]
    ret: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    if not at_end(buf, pos):
        pos = _sp(buf, pos)
        word, after = parse_atom(buf, pos)
        if word.upper() != b"RETURN":
            raise NotParseable("Expected RETURN, found %s" % describe(buf, pos), pos)
        ret, status, pos = _parse_return(buf, _sp(buf, after))
        extended = True
    parse_end(buf, pos)
    if not extended:
        return List(tag, reference, patterns[0])
    return ListExtended(tag, select, reference, tuple(patterns), ret, status)


def parse_create(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """
    RFC 3501 6.3.3 CREATE SP mailbox, with RFC 4466/6154
    C{[SP "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")"]}.
    """
    mailbox, pos = parse_mailbox(buf, _sp(buf, pos))
    if at_end(buf, pos):
        parse_end(buf, pos)
        return Create(tag, mailbox)
    pos = _sp(buf, pos)
    use: list[str] = []

    def param(b: bytes, p: int) -> tuple[None, int]:
        word, p2 = parse_atom(b, p)
        if word.upper() != b"USE":
            raise NotParseable("Unknown CREATE parameter %s"
                               % word[:32].decode("ascii", "replace"), p)
        flags, p2 = parse_paren_list(b, _sp(b, p2), parse_flag)
        use.extend(flags)
        return None, p2

    _, pos = parse_paren_list(buf, pos, param, empty=False)
    parse_end(buf, pos)
    return CreateSpecialUse(tag, mailbox, _unique(use))
