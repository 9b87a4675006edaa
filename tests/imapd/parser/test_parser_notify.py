"""
Tests for L{imapd.parser.notify}: NOTIFY SET/NONE (RFC 5465 section 8)
as a table of raw bytes and the expected result, and the composition
rules of sections 5 and 6.1, which are syntax errors (BAD).
"""

from __future__ import annotations

import pytest

from imapd.parser import ParseError
from imapd.parser.notify import Notify, NotifyGroup
from imapd.parser.types import FetchAttr

NEW = ("MessageNew", "MessageExpunge")


@pytest.mark.parametrize("raw, expected", [
    (b"a NOTIFY NONE\r\n", Notify("a", None)),
    (b"a notify set (selected (messagenew messageexpunge flagchange))\r\n",
     Notify("a", (NotifyGroup("SELECTED", (), NEW + ("FlagChange",)),))),
    (b"a NOTIFY SET STATUS (SELECTED-DELAYED NONE) (PERSONAL (MailboxName))\r\n",
     Notify("a", (NotifyGroup("SELECTED-DELAYED"), NotifyGroup("PERSONAL", (), ("MailboxName",))),
            True)),
    (b'a NOTIFY SET (SUBTREE (Lists "My box") (MessageNew MessageExpunge)) '
     b"(MAILBOXES inbox (SubscriptionChange))\r\n",
     Notify("a", (NotifyGroup("SUBTREE", (b"Lists", b"My box"), NEW),
                  NotifyGroup("MAILBOXES", (b"INBOX",), ("SubscriptionChange",))))),
    (b"a NOTIFY SET (INBOXES (MessageNew (UID FLAGS) MessageExpunge))\r\n",
     Notify("a", (NotifyGroup("INBOXES", (), NEW, (FetchAttr("UID"), FetchAttr("FLAGS"))),))),
    # Unsupported and unknown events are the handler's (NO [BADEVENT]).
    (b"a NOTIFY SET (SUBSCRIBED (MailboxMetadataChange XFoo))\r\n",
     Notify("a", (NotifyGroup("SUBSCRIBED", (), ("MailboxMetadataChange", "XFoo")),))),
])
def test_notify(one, raw, expected):
    """Filters, mailbox lists, events in their RFC spelling, MessageNew's FETCH attributes."""
    assert one(raw) == expected


@pytest.mark.parametrize("raw", [
    b"a NOTIFY\r\n",
    b"a NOTIFY SET\r\n",
    b"a NOTIFY NONE (PERSONAL NONE)\r\n",
    b"a NOTIFY SET (PERSONAL (MessageNew))\r\n",
    b"a NOTIFY SET (PERSONAL (MessageExpunge))\r\n",
    b"a NOTIFY SET (PERSONAL (FlagChange))\r\n",
    b"a NOTIFY SET (PERSONAL (AnnotationChange MessageExpunge))\r\n",
    b"a NOTIFY SET (SELECTED (SubscriptionChange))\r\n",
    b"a NOTIFY SET (SELECTED NONE) (SELECTED-DELAYED NONE)\r\n",
    b"a NOTIFY SET (SUBTREE (MessageNew MessageExpunge))\r\n",
    b"a NOTIFY SET (MAILBOXES () (MessageNew MessageExpunge))\r\n",
    b"a NOTIFY SET (ELSEWHERE NONE)\r\n",
    b"a NOTIFY SET (PERSONAL (MailboxName MailboxName))\r\n",
    b"a NOTIFY SET (PERSONAL ())\r\n",
    b"a NOTIFY SET (PERSONAL NONE)(INBOXES NONE)\r\n",
])
def test_bad(one, raw):
    """Grammar and the section 5/6.1 rules: BAD."""
    assert isinstance(one(raw), ParseError)
