# -*- test-case-name: tests.imapd.parser.test_parser_notify -*-
"""
NOTIFY command parsing (RFC 5465 section 8), and its typed result.
Registered in L{imapd.parser.commands}.

    notify          = "NOTIFY" SP (notify-set / notify-none)
    notify-set      = "SET" [SP "STATUS"] SP event-groups
    event-groups    = event-group *(SP event-group)
    event-group     = "(" filter-mailboxes SP events ")"
    filter-mailboxes = "selected" / "selected-delayed" / "inboxes" /
                      "personal" / "subscribed" /
                      ("subtree" / "mailboxes") SP one-or-more-mailbox
    one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"
    events          = ("(" event *(SP event) ")") / "NONE"
    event           = "MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]
                      / "MessageExpunge" / "FlagChange" / "AnnotationChange"
                      / "MailboxName" / "SubscriptionChange"
                      / "MailboxMetadataChange" / "ServerMetadataChange"
                      / event-ext

The composition rules of sections 5 and 6.1 are grammar here (BAD):
MessageNew and MessageExpunge come together, FlagChange and
AnnotationChange need both, only message events go with SELECTED or
SELECTED-DELAYED, and only one of those two may appear.  Whether an event
is I{supported} is the handler's business (a NO with BADEVENT, not BAD:
section 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from imapd.parser.fetchatt import parse_fetch_att
from imapd.parser.primitives import (
    NotParseable, describe, parse_atom, parse_end, parse_mailbox,
    parse_paren_list, parse_space,
)
from imapd.parser.types import Command, FetchAttr

__all__ = ["Notify", "NotifyGroup", "parse_notify", "EVENTS", "MESSAGE_EVENTS",
           "FILTERS"]

#: RFC 5465 section 5: event names, by their upper-case spelling.
EVENTS = {e.upper(): e for e in (
    "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange",
    "MailboxName", "SubscriptionChange", "MailboxMetadataChange",
    "ServerMetadataChange",
)}
#: Section 5: the events about messages (the only ones SELECTED takes).
MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange",
                            "AnnotationChange"})
#: Section 6: mailbox filters; SUBTREE and MAILBOXES take mailbox names.
FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL",
                     "SUBSCRIBED", "SUBTREE", "MAILBOXES"})


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """
    One event group: C{(filter [mailboxes] events)}.

    @ivar filter: the upper-case filter name (L{FILTERS}).
    @ivar mailboxes: the names of SUBTREE/MAILBOXES, as sent (modified
        UTF-7, INBOX normalised).
    @ivar events: event names in their RFC spelling (unknown extension
        events as sent); empty for C{NONE}.
    @ivar fetch_atts: MessageNew's FETCH attributes, or C{()}.
    """

    filter: str
    mailboxes: tuple[bytes, ...] = ()
    events: tuple[str, ...] = ()
    fetch_atts: tuple[FetchAttr, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """
    RFC 5465 section 3.1: NOTIFY SET (C{groups}) or NOTIFY NONE
    (C{groups} is None).  C{status}: the STATUS indicator.
    """

    groups: Optional[tuple[NotifyGroup, ...]] = None
    status: bool = False
    name = "NOTIFY"


def _sp(buf: bytes, pos: int) -> int:
    return parse_space(buf, pos)[1]


def _word(buf: bytes, pos: int) -> tuple[str, int]:
    atom, end = parse_atom(buf, pos)
    return atom.decode("ascii", "replace"), end


def _mailboxes(buf: bytes, pos: int) -> tuple[tuple[bytes, ...], int]:
    if buf[pos:pos + 1] == b"(":
        names, pos = parse_paren_list(buf, pos, parse_mailbox, empty=False)
        return tuple(names), pos
    name, pos = parse_mailbox(buf, pos)
    return (name,), pos


def _events(buf: bytes, pos: int) -> tuple[tuple[str, ...], tuple[FetchAttr, ...], int]:
    if buf[pos:pos + 4].upper() == b"NONE":
        return (), (), pos + 4
    if buf[pos:pos + 1] != b"(":
        raise NotParseable("Expected an event list or NONE, found %s" % describe(buf, pos), pos)
    events: list[str] = []
    atts: tuple[FetchAttr, ...] = ()
    pos += 1
    while True:
        word, pos = _word(buf, pos)
        event = EVENTS.get(word.upper(), word)
        if event == "MessageNew" and buf[pos:pos + 2] == b" (":
            found, pos = parse_paren_list(buf, pos + 1, parse_fetch_att, empty=False)
            atts = tuple(found)
        if event in events:
            raise NotParseable("Event %s given twice" % event, pos)
        events.append(event)
        if buf[pos:pos + 1] == b")":
            return tuple(events), atts, pos + 1
        pos = _sp(buf, pos)


def _group(buf: bytes, pos: int) -> tuple[NotifyGroup, int]:
    if buf[pos:pos + 1] != b"(":
        raise NotParseable("Expected '(', found %s" % describe(buf, pos), pos)
    start = pos + 1
    word, pos = _word(buf, start)
    name = word.upper()
    if name not in FILTERS:
        raise NotParseable("Unknown NOTIFY mailbox filter %s" % word[:32], start)
    mailboxes: tuple[bytes, ...] = ()
    if name in ("SUBTREE", "MAILBOXES"):
        mailboxes, pos = _mailboxes(buf, _sp(buf, pos))
    events, atts, pos = _events(buf, _sp(buf, pos))
    if buf[pos:pos + 1] != b")":
        raise NotParseable("Expected ')', found %s" % describe(buf, pos), pos)
    _check(name, events, start)
    return NotifyGroup(name, mailboxes, events, atts), pos + 1


def _check(name: str, events: tuple[str, ...], pos: int) -> None:
    """RFC 5465 sections 5 and 6.1: the rules whose breach is BAD."""
    have = set(events)
    if ("MessageNew" in have) != ("MessageExpunge" in have):
        raise NotParseable("MessageNew and MessageExpunge must be given together", pos)
    if have & {"FlagChange", "AnnotationChange"} and "MessageNew" not in have:
        raise NotParseable("FlagChange and AnnotationChange need MessageNew and "
                           "MessageExpunge", pos)
    if name.startswith("SELECTED") and have - MESSAGE_EVENTS:
        raise NotParseable("Only message events may be given for %s" % name, pos)


def parse_notify(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """RFC 5465 section 8: NOTIFY SET [STATUS] event-groups / NOTIFY NONE."""
    word, pos = _word(buf, _sp(buf, pos))
    if word.upper() == "NONE":
        parse_end(buf, pos)
        return Notify(tag, None)
    if word.upper() != "SET":
        raise NotParseable("Expected SET or NONE", pos)
    pos = _sp(buf, pos)
    status = False
    if buf[pos:pos + 7].upper() == b"STATUS ":
        status, pos = True, pos + 7
    groups = []
    while True:
        group, pos = _group(buf, pos)
        groups.append(group)
        if buf[pos:pos + 1] != b" ":
            break
        pos += 1
    parse_end(buf, pos)
    if sum(g.filter.startswith("SELECTED") for g in groups) > 1:
        raise NotParseable("Only one of SELECTED and SELECTED-DELAYED may be given", pos)
    return Notify(tag, tuple(groups), status)
