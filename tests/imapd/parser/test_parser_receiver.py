"""
Tests for L{imapd.parser.receiver}: fragmentation, pipelining, literals
and their limits, raw lines and reset.
"""

from __future__ import annotations

import pytest

from imapd.parser import (
    Append, AppendMessage, ContinuationNeeded, Login, Noop, ParseError,
    Parser, ParserLimits, RawLine, Search, SearchKey, Select,
)


def feed_bytewise(p: Parser, data: bytes) -> list[object]:
    """Feed C{data} one byte at a time, collecting every event."""
    events: list[object] = []
    for i in range(len(data)):
        events.extend(p.feed(data[i:i + 1]))
    return events


STREAMS = [
    b"a1 NOOP\r\n",
    b"a1 LOGIN {4}\r\nfred {6}\r\nsecret\r\n",
    b"a1 LOGIN {4+}\r\nfred secret\r\na2 SELECT INBOX (CONDSTORE)\r\n",
    b"a1 APPEND x (\\Seen) {5}\r\nhello {0}\r\n\r\na2 NOOP\r\n",
    b"a1 FOO\r\na2 NOOP\r\n\r\na3 FETCH 1 (FLAGS\r\na4 LOGOUT\r\n",
    b"a1 SEARCH SUBJECT {3}\r\n\r\n\r\r\n",
    b"a1 NOOP\na2 NOOP\r\n",
]


@pytest.mark.parametrize("data", STREAMS)
def test_fragmentation(data):
    """
    Feeding a stream byte by byte, in one chunk, or split at every
    possible point gives the same events.
    """
    whole = Parser().feed(data)
    assert feed_bytewise(Parser(), data) == whole
    for cut in range(len(data) + 1):
        p = Parser()
        assert p.feed(data[:cut]) + p.feed(data[cut:]) == whole


def test_pipelining():
    """Several commands in one chunk all come back, in order."""
    events = Parser().feed(b"a NOOP\r\nb LOGIN u p\r\nc NOOP\r\n")
    assert events == [Noop("a"), Login("b", b"u", b"p"), Noop("c")]


def test_partial_command_waits():
    """Nothing is returned until the CRLF arrives."""
    p = Parser()
    assert p.feed(b"a NO") == []
    assert p.feed(b"OP\r") == []
    assert p.feed(b"\n") == [Noop("a")]


def test_bare_lf():
    """A bare LF ends a line (lenient, as most servers are)."""
    assert Parser().feed(b"a NOOP\n") == [Noop("a")]


def test_empty_lines_ignored():
    """Empty lines between commands are ignored."""
    assert Parser().feed(b"\r\n\r\na NOOP\r\n") == [Noop("a")]


def test_sync_literal_continuation_once():
    """A synchronizing literal yields exactly one ContinuationNeeded."""
    p = Parser()
    events = feed_bytewise(p, b"a LOGIN {4}\r\n")
    assert events == [ContinuationNeeded(4)]
    assert p.feed(b"fr") == []
    assert p.feed(b"ed x\r\n") == [Login("a", b"fred", b"x")]


def test_literal_holds_crlf_and_braces():
    """Literal octets are opaque: CRLF and C{{n}} inside are not lines."""
    p = Parser()
    p.feed(b"a LOGIN {8}\r\n")
    assert p.feed(b"a\r\n{2}\r\n x\r\n") == [Login("a", b"a\r\n{2}\r\n", b"x")]


def test_nonsync_literal_no_continuation():
    """RFC 7888 C{{n+}} yields no ContinuationNeeded."""
    assert Parser().feed(b"a LOGIN {1+}\r\nu p\r\n") == [Login("a", b"u", b"p")]


def test_zero_literal():
    """C{{0}} still asks for a continuation (RFC 3501 section 7.5)."""
    p = Parser()
    assert p.feed(b"a LOGIN {0}\r\n") == [ContinuationNeeded(0)]
    assert p.feed(b" p\r\n") == [Login("a", b"", b"p")]


def test_sync_literal_too_big():
    """
    A synchronizing literal over max_literal: TOOBIG, no continuation, and
    the parser carries on with the next command.
    """
    p = Parser(ParserLimits(max_literal=10))
    assert p.feed(b"a APPEND x {11}\r\n") == [
        ParseError("a", "Literal too big", code="TOOBIG")]
    assert p.feed(b"b NOOP\r\n") == [Noop("b")]


def test_nonsync_literal_too_big_fatal():
    """A non-synchronizing literal over the limit is fatal: bytes are coming."""
    p = Parser(ParserLimits(max_literal=10))
    assert p.feed(b"a APPEND x {11+}\r\n0123456789A\r\nb NOOP\r\n") == [
        ParseError("a", "Literal too big", code="TOOBIG", fatal=True)]
    assert p.feed(b"c NOOP\r\n") == []


def test_literal_minus():
    """With LITERAL-, C{{n+}} is limited to 4096 octets (RFC 7888 section 4)."""
    limits = ParserLimits(literal_minus=True)
    data = b"x" * 4096
    assert Parser(limits).feed(
        b"a LOGIN {4096+}\r\n" + data + b" p\r\n") == [Login("a", data, b"p")]
    assert Parser(limits).feed(b"a LOGIN {4097+}\r\n") == [
        ParseError("a", "Literal too big", code="TOOBIG", fatal=True)]
    assert Parser(limits).feed(b"a LOGIN {4097}\r\n") == [
        ContinuationNeeded(4097)]


def test_huge_literal_size():
    """An absurd size is TOOBIG without converting the digits."""
    assert Parser().feed(b"a LOGIN {999999999999}\r\n") == [
        ParseError("a", "Literal too big", code="TOOBIG")]
    assert Parser().feed(b"a LOGIN {" + b"9" * 5000 + b"}\r\n") == [
        ParseError("a", "Literal too big", code="TOOBIG")]


def test_limits_replaceable():
    """Raising max_literal after login applies to the next literal."""
    p = Parser(ParserLimits(max_literal=8))
    assert p.feed(b"a LOGIN {9}\r\n")[0].code == "TOOBIG"
    p.limits = ParserLimits(max_literal=100)
    assert p.feed(b"b LOGIN {9}\r\n") == [ContinuationNeeded(9)]


def test_too_many_literals():
    """More literals than max_literals_per_command: refused with LIMIT."""
    p = Parser(ParserLimits(max_literals_per_command=2))
    assert p.feed(b"a APPEND x {1+}\r\na {1+}\r\nb {1}\r\n") == [
        ParseError("a", "Too many literals", code="LIMIT")]
    p = Parser(ParserLimits(max_literals_per_command=2))
    assert p.feed(b"a APPEND x {1+}\r\na {1+}\r\nb {1+}\r\n")[-1].fatal


def test_unknown_command_before_literal():
    """An unknown command is refused before its literal is requested."""
    p = Parser()
    assert p.feed(b"a FOO {5}\r\n") == [ParseError("a", "Unknown command FOO")]
    assert p.feed(b"b NOOP\r\n") == [Noop("b")]


def test_literal8_refused_outside_append():
    """RFC 3516 C{~{n}} is only for APPEND: refused before the continuation."""
    p = Parser()
    assert p.feed(b"a LOGIN ~{5}\r\n") == [
        ParseError("a", "literal8 not allowed here")]


def test_literal8_in_append_asks_continuation():
    """A synchronizing literal8 in APPEND gets its continuation."""
    p = Parser()
    assert p.feed(b"a APPEND x ~{2}\r\n") == [ContinuationNeeded(2)]
    assert p.feed(b"\x00\x01\r\n") == [
        Append("a", b"x", (AppendMessage((), None, b"\x00\x01", binary=True),))]


def test_line_too_long_without_crlf():
    """A line longer than max_line is fatal as soon as it is too long."""
    p = Parser(ParserLimits(max_line=20))
    assert p.feed(b"a1 LOGIN " + b"x" * 11) == []
    assert p.feed(b"x") == [ParseError("a1", "Line too long", fatal=True)]
    assert p.feed(b"\r\nb NOOP\r\n") == []


def test_line_too_long_with_crlf():
    """The same verdict when the long line arrives with its CRLF."""
    p = Parser(ParserLimits(max_line=20))
    assert p.feed(b"a1 LOGIN " + b"x" * 12 + b"\r\n") == [
        ParseError("a1", "Line too long", fatal=True)]


def test_line_at_limit():
    """A line of exactly max_line octets is accepted, CR or not yet."""
    line = b"a LOGIN " + b"x" * 10 + b" y"
    p = Parser(ParserLimits(max_line=len(line)))
    assert p.feed(line + b"\r") == []
    assert p.feed(b"\n") == [Login("a", b"x" * 10, b"y")]


def test_line_limit_spans_literals():
    """max_line counts all the text of a command, not the literal octets."""
    p = Parser(ParserLimits(max_line=30))
    big = b"y" * 100
    assert p.feed(b"a LOGIN {100+}\r\n" + big + b" pw\r\n") == [
        Login("a", big, b"pw")]
    events = p.feed(b"a LOGIN {1+}\r\nx " + b"p" * 30 + b"\r\n")
    assert events == [ParseError("a", "Line too long", fatal=True)]


def test_tag_too_long():
    """Tags longer than max_tag are refused, without a tag in the error."""
    p = Parser(ParserLimits(max_tag=4))
    assert p.feed(b"abcde NOOP\r\nabcd NOOP\r\n") == [
        ParseError(None, "Tag too long"), Noop("abcd")]


def test_raw_line():
    """expect_raw_line returns the next line verbatim, once."""
    p = Parser()
    assert p.feed(b"a AUTHENTICATE PLAIN\r\n")[0].name == "AUTHENTICATE"
    p.expect_raw_line()
    assert p.feed(b"AGZyZWQAc2VjcmV0\r\n") == [RawLine(b"AGZyZWQAc2VjcmV0")]
    assert p.feed(b"b NOOP\r\n") == [Noop("b")]


def test_raw_line_empty_and_fragmented():
    """An empty SASL response and a fragmented DONE are raw lines too."""
    p = Parser()
    p.expect_raw_line()
    assert p.feed(b"\r\n") == [RawLine(b"")]
    p.expect_raw_line()
    assert feed_bytewise(p, b"DONE\r\nb NOOP\r\n") == [
        RawLine(b"DONE"), Noop("b")]


def test_raw_line_not_parsed_as_literal():
    """A raw line ending in C{{5}} is not a literal announcement."""
    p = Parser()
    p.expect_raw_line()
    assert p.feed(b"abc{5}\r\n") == [RawLine(b"abc{5}")]


def test_reset_discards_pipelined_plaintext():
    """
    RFC 3501 6.2.1: after STARTTLS, plaintext the client pipelined behind
    it is dropped by reset().
    """
    p = Parser()
    events = p.feed(b"a STARTTLS\r\nb LOGIN u p\r\nc NO")
    assert [e.tag for e in events] == ["a", "b"]
    p.reset()
    assert p.feed(b"OP\r\nd NOOP\r\n") == [
        ParseError("OP", "Missing space after tag"), Noop("d")]


def test_reset_mid_literal():
    """reset() also forgets a half-received literal."""
    p = Parser()
    p.feed(b"a LOGIN {10}\r\nabc")
    p.reset()
    assert p.feed(b"b NOOP\r\n") == [Noop("b")]


def test_reset_revives_after_fatal():
    """A parser stopped by a fatal error works again after reset()."""
    p = Parser(ParserLimits(max_line=10))
    assert p.feed(b"a" * 20)[0].fatal
    p.reset()
    assert p.feed(b"b NOOP\r\n") == [Noop("b")]


def test_multiappend_large():
    """A MULTIAPPEND of many messages with non-synchronizing literals."""
    msgs = [b"m%d\r\n" % i for i in range(50)]
    data = b"a APPEND x" + b"".join(
        b" {%d+}\r\n" % len(m) + m for m in msgs) + b"\r\n"
    assert Parser().feed(data) == [Append("a", b"x", tuple(
        AppendMessage((), None, m) for m in msgs))]


def test_select_and_search_after_literal():
    """Parsing continues on the same command line after a literal."""
    p = Parser()
    assert p.feed(b"a SELECT {5+}\r\ninbox (CONDSTORE)\r\n") == [
        Select("a", b"INBOX", params=(("CONDSTORE", None),))]
    assert p.feed(b"b SEARCH TEXT {1+}\r\nx SEEN\r\n") == [
        Search("b", key=SearchKey("AND", children=(
            SearchKey("TEXT", b"x"), SearchKey("SEEN"))))]
