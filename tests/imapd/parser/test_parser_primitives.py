"""
Tests for L{imapd.parser.primitives}: each parser on raw bytes, checking
the value and the position it stops at (pymap's style), and the reason
it gives when it refuses.
"""

from __future__ import annotations

import pytest

from imapd.parser.primitives import (
    Incomplete, NotParseable, parse_astring, parse_atom, parse_end,
    parse_flag, parse_flag_list, parse_list_mailbox, parse_literal,
    parse_mailbox, parse_modseq, parse_nstring, parse_number,
    parse_nz_number, parse_quoted, parse_raw_value, parse_string,
)


@pytest.mark.parametrize("fn,raw,value,pos", [
    (parse_atom, b"abc def", b"abc", 3),
    (parse_atom, b"FLAGS)", b"FLAGS", 5),
    (parse_number, b"0 ", 0, 1),
    (parse_number, b"4294967295\r\n", 4294967295, 10),
    (parse_nz_number, b"17:", 17, 2),
    (parse_modseq, b"9223372036854775807)", 2 ** 63 - 1, 19),
    (parse_quoted, b'"a b" x', b"a b", 5),
    (parse_quoted, b'"a\\"b\\\\c"', b'a"b\\c', 9),
    (parse_quoted, b'""', b"", 2),
    (parse_quoted, "\"caf\u00e9\"".encode(), "caf\u00e9".encode(), 7),
    (parse_literal, b"{3}\r\nabc\r\n", b"abc", 8),
    (parse_literal, b"{0}\r\n\r\n", b"", 5),
    (parse_literal, b"{2+}\r\n\r\n\r\n", b"\r\n", 8),
    (parse_string, b'"x"', b"x", 3),
    (parse_string, b"{1}\r\nx", b"x", 6),
    (parse_astring, b"foo bar", b"foo", 3),
    (parse_astring, b"[Gmail]/All ", b"[Gmail]/All", 11),
    (parse_astring, b'"with space"', b"with space", 12),
    (parse_nstring, b"NIL)", None, 3),
    (parse_nstring, b"nil ", None, 3),
    (parse_nstring, b'"NIL"', b"NIL", 5),
    (parse_mailbox, b"iNbOx ", b"INBOX", 5),
    (parse_mailbox, b'"inbox"', b"INBOX", 7),
    (parse_mailbox, b"INBOX.Sent ", b"INBOX.Sent", 10),
    (parse_list_mailbox, b"foo/%/* ", b"foo/%/*", 7),
    (parse_flag, b"\\Seen ", "\\Seen", 5),
    (parse_flag, b"$Forwarded)", "$Forwarded", 10),
    (parse_flag_list, b"(\\Seen \\Deleted)", ("\\Seen", "\\Deleted"), 16),
    (parse_flag_list, b"()", (), 2),
    (parse_end, b"\r\n", None, 2),
])
def test_parse_values(fn, raw, value, pos):
    """Each primitive returns the value and the position after it."""
    assert fn(raw, 0) == (value, pos)


@pytest.mark.parametrize("fn,raw,reason", [
    (parse_atom, b"(x", "Expected atom, found '('"),
    (parse_atom, b"\r\n", "Expected atom, found end of line"),
    (parse_number, b"4294967296 ", "Number too large"),
    (parse_number, b"9" * 5000, "Number too large"),
    (parse_number, b"x", "Expected number, found 'x'"),
    (parse_nz_number, b"0", "Expected non-zero number"),
    (parse_nz_number, b"01", "Expected non-zero number"),
    (parse_modseq, b"9223372036854775808", "Number too large"),
    (parse_quoted, b'"abc', "Unterminated quoted string"),
    (parse_quoted, b'"a\\x"', "Invalid escape in quoted string"),
    (parse_quoted, b'"a\r\n"', "Invalid character in quoted string"),
    (parse_quoted, b'"a\x00"', "Invalid character in quoted string"),
    (parse_literal, b"{3}abc", "Invalid literal"),
    (parse_literal, b"~{3}\r\nabc", "literal8 not allowed here"),
    (parse_string, b"abc", "Expected string, found 'a'"),
    (parse_astring, b")", "Expected string, found ')'"),
    (parse_flag, b"\\*", "\\* is not a flag"),
    (parse_flag_list, b"(\\Seen", "Expected ')', found end of line"),
    (parse_flag_list, b"\\Seen", "Expected '(', found '\\\\'"),
    (parse_end, b" x\r\n", "Unexpected arguments"),
    (parse_end, b"x\r\n", "Expected end of line, found 'x'"),
])
def test_parse_errors(fn, raw, reason):
    """Invalid input raises NotParseable with a precise reason."""
    with pytest.raises(NotParseable) as e:
        fn(raw, 0)
    assert e.value.reason == reason


def test_literal_incomplete():
    """A literal whose octets have not arrived raises Incomplete."""
    with pytest.raises(Incomplete):
        parse_literal(b"{5}\r\nab", 0)


def test_literal8_allowed_when_binary():
    """RFC 3516 literal8 is accepted where the caller allows it."""
    assert parse_literal(b"~{3}\r\na\x00b", 0, binary=True) == (b"a\x00b", 9)


def test_raw_value_nested():
    """RFC 4466 values are kept raw, nested lists included."""
    raw = b"(1 2 (1:3 5) \"x\")"
    assert parse_raw_value(raw + b"\r\n", 0, 32) == (raw, len(raw))


def test_raw_value_depth():
    """Raw values obey the nesting limit."""
    with pytest.raises(NotParseable):
        parse_raw_value(b"(" * 5 + b")" * 5, 0, 3)


def test_position_argument():
    """Parsers start where they are told, not at the start of the buffer."""
    assert parse_atom(b"xx abc ", 3) == (b"abc", 6)
