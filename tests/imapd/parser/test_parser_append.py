"""
Tests for APPEND (RFC 3501 section 6.3.11), RFC 3502 MULTIAPPEND,
RFC 3516 literal8 and RFC 7888 non-synchronizing literals.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from imapd.parser import (
    Append, AppendMessage, CatenatePart, ContinuationNeeded, Noop, ParseError,
    Parser,
)

MSG = b"From: a@b\r\nSubject: hi\r\n\r\nbody\r\n"
DT = datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(-timedelta(hours=8)))


def lit(data: bytes, plus: bool = True) -> bytes:
    """A literal announcement and its octets."""
    return b"{%d%s}\r\n" % (len(data), b"+" if plus else b"") + data


VALID = [
    (b"a APPEND INBOX " + lit(MSG) + b"\r\n",
     Append("a", b"INBOX", (AppendMessage((), None, MSG),))),
    (b"a APPEND saved-messages (\\Seen) " + lit(MSG) + b"\r\n",
     Append("a", b"saved-messages", (AppendMessage(("\\Seen",), None, MSG),))),
    (b'a APPEND x (\\Seen $Label) "07-Feb-1994 21:52:25 -0800" '
     + lit(MSG) + b"\r\n",
     Append("a", b"x", (AppendMessage(("\\Seen", "$Label"), DT, MSG),))),
    (b'a APPEND x " 7-Feb-1994 21:52:25 -0800" ' + lit(MSG) + b"\r\n",
     Append("a", b"x", (AppendMessage((), DT, MSG),))),
    (b"a APPEND x () " + lit(b"") + b"\r\n",
     Append("a", b"x", (AppendMessage((), None, b""),))),
    (b"a APPEND x ~{3}\r\na\x00b\r\n",
     Append("a", b"x", (AppendMessage((), None, b"a\x00b", binary=True),))),
    (b"a APPEND x ~{3+}\r\na\x00b\r\n",
     Append("a", b"x", (AppendMessage((), None, b"a\x00b", binary=True),))),
    # RFC 4469 section 5: CATENATE with TEXT and URL parts, any case.
    (b'a APPEND x (\\Seen) CATENATE (URL "/x;UIDVALIDITY=5/;UID=2/;section=1" TEXT '
     + lit(b"ab") + b" url /x/;UID=3)\r\n",
     Append("a", b"x", (AppendMessage(("\\Seen",), None, catenate=(
         CatenatePart(url=b"/x;UIDVALIDITY=5/;UID=2/;section=1"),
         CatenatePart(text=b"ab"),
         CatenatePart(url=b"/x/;UID=3"))),))),
    # ... inside MULTIAPPEND, next to a plain literal; TEXT may be literal8.
    (b"a APPEND x " + lit(b"one") + b" catenate (TEXT ~{2+}\r\n\x00b)\r\n",
     Append("a", b"x", (AppendMessage((), None, b"one"), AppendMessage(
         (), None, binary=True,
         catenate=(CatenatePart(text=b"\x00b", binary=True),))))),
    (b"a APPEND x " + lit(b"one") + b" (\\Draft) " + lit(b"two")
     + b' "07-Feb-1994 21:52:25 -0800" ' + lit(b"three") + b"\r\n",
     Append("a", b"x", (AppendMessage((), None, b"one"),
                        AppendMessage(("\\Draft",), None, b"two"),
                        AppendMessage((), DT, b"three")))),
]


@pytest.mark.parametrize("raw,expected", VALID)
def test_valid(one, raw, expected):
    """APPEND with flags, date-time, literal8 and several messages."""
    assert one(raw) == expected


INVALID = [
    (b"a APPEND x\r\n", "Expected space, found end of line"),
    (b"a APPEND x (\\Seen)\r\n", "Expected space, found end of line"),
    (b"a APPEND x foo\r\n", "Expected message literal, found 'f'"),
    (b'a APPEND x "bad date" {1+}\r\nx\r\n',
     "Invalid date-time, found '\"'"),
    (b"a APPEND x {1+}\r\nx junk\r\n", "Expected message literal, found 'j'"),
    (b"a APPEND x \"msg\"\r\n", "Invalid date-time, found '\"'"),
    (b"a APPEND x CATENATE ()\r\n", "Empty list"),
    (b"a APPEND x CATENATE (TEXT \"abc\")\r\n", "Expected TEXT literal, found '\"'"),
    (b"a APPEND x CATENATE (FOO x)\r\n", "Expected TEXT or URL, found 'F'"),
    (b"a APPEND x CATENATE (URL)\r\n", "Expected TEXT or URL, found 'U'"),
]


@pytest.mark.parametrize("raw,reason", INVALID)
def test_invalid(one, raw, reason):
    """Malformed APPEND commands are refused with a precise reason."""
    assert one(raw) == ParseError("a", reason)


def test_synchronizing_dialogue():
    """
    A synchronizing literal asks for one continuation, then the message
    arrives in pieces and the command completes with the last line.
    """
    p = Parser()
    assert p.feed(b"a APPEND INBOX (\\Seen) {%d}\r\n" % len(MSG)) == [
        ContinuationNeeded(len(MSG))]
    assert p.feed(MSG[:5]) == []
    assert p.feed(MSG[5:]) == []
    assert p.feed(b"\r\n") == [
        Append("a", b"INBOX", (AppendMessage(("\\Seen",), None, MSG),))]


def test_multiappend_dialogue():
    """MULTIAPPEND: each synchronizing literal gets its own continuation."""
    p = Parser()
    assert p.feed(b"a APPEND x {3}\r\n") == [ContinuationNeeded(3)]
    assert p.feed(b"one {3}\r\n") == [ContinuationNeeded(3)]
    assert p.feed(b"two\r\n") == [Append("a", b"x", (
        AppendMessage((), None, b"one"), AppendMessage((), None, b"two")))]


def test_bad_mailbox_before_literal():
    """
    A command already invalid before its first literal is refused without
    a continuation, so the client does not upload the message.
    """
    p = Parser()
    assert p.feed(b"a APPEND (x) {100}\r\n") == [
        ParseError("a", "Expected string, found '('")]
    assert p.feed(b"b NOOP\r\n")[0].tag == "b"


def test_catenate_urls_come_with_the_continuation():
    """
    RFC 4469 Appendix A: the URLs received since the last literal travel
    with the next continuation request, so the server can check them
    first, with the target mailbox (checked before them, for TRYCREATE);
    after refuse_literal the next line is a new command.
    """
    p = Parser()
    assert p.feed(b'a APPEND x CATENATE (URL "/x/;UID=1" TEXT {2}\r\n') == [
        ContinuationNeeded(2, (b"/x/;UID=1",), "a", b"x")]
    assert p.feed(b'ab URL /y/;UID=2 url "/z/;UID=3" TEXT {1}\r\n') == [
        ContinuationNeeded(1, (b"/y/;UID=2", b"/z/;UID=3"), "a", b"x")]
    p.refuse_literal()
    assert p.feed(b"b NOOP\r\n") == [Noop("b")]


def test_no_urls_no_check():
    """A mailbox called URL, or URLs already reported, add nothing to the continuation."""
    p = Parser()
    assert p.feed(b"a APPEND URL {3}\r\n") == [ContinuationNeeded(3)]
    assert p.feed(b"abc CATENATE (URL /x/;UID=1 TEXT {1+}\r\nx TEXT {2}\r\n") == [
        ContinuationNeeded(2, (b"/x/;UID=1",), "a", b"URL")]
    assert p.feed(b"xy TEXT {1}\r\n") == [ContinuationNeeded(1)]
