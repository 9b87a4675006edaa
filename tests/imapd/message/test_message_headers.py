# -*- test-case-name: tests.imapd.message.test_message_headers -*-
"""
Tests for L{imapd.message._headers}: finding the end of a header,
indexing its fields, and MIME parameter lists.
"""

import pytest

from imapd.message._headers import Header, header_end, parse_content_type, parse_params


@pytest.mark.parametrize("raw, end", [
    (b"A: 1\r\n\r\nbody", 8),
    (b"A: 1\n\nbody", 6),
    (b"A: 1\r\nB: 2\n\nbody", 12),
    (b"A: 1\n\r\nbody", 7),
    (b"\r\nbody", 2),
    (b"\nbody", 1),
    (b"A: 1\r\nB: 2", 10),
    (b"", 0),
])
def test_header_end(raw, end):
    """The header ends after the first empty line (CRLF or LF); without one it is everything."""
    assert header_end(raw, 0, len(raw)) == end


def test_header_end_within_bounds():
    """The empty line must lie inside the entity's range."""
    raw = b"A: 1\r\n\r\nrest"
    assert header_end(raw, 0, 7) == 7


def test_fields_folding_and_odd_lines():
    """Continuation lines extend a field; lines without a colon are fields that match nothing."""
    raw = b"From x  Mon 11:02:00 2002\r\nSubject : a\r\n\tb\r\n broken line\r\nTo: t\r\n\r\n"
    h = Header(raw, 0, header_end(raw, 0, len(raw)))
    names = [f[0] for f in h.fields()]
    assert names == [b"from x  mon 11", b"subject", b"to"]
    assert h.values(b"subject") == [b" a\r\n\tb\r\n broken line\r\n"]
    assert h.first(b"subject") == b"a\tb broken line"
    assert h.first(b"none") is None


def test_continuation_before_any_field():
    """A header starting with whitespace keeps that line as a field of its own."""
    raw = b" odd\r\nA: 1\r\n\r\n"
    h = Header(raw, 0, header_end(raw, 0, len(raw)))
    assert h.first(b"a") == b"1"
    assert h.select((b"a",), exclude=True) == b" odd\r\n\r\n"


def test_select_normalizes_line_endings():
    """HEADER.FIELDS output uses CRLF even for LF-only fields."""
    raw = b"A: 1\nB: 2\n\n"
    h = Header(raw, 0, header_end(raw, 0, len(raw)))
    assert h.select((b"b", b"a"), exclude=False) == b"A: 1\r\nB: 2\r\n\r\n"


@pytest.mark.parametrize("value, expected", [
    (b"text/plain", (b"text", b"plain", [])),
    (b"Text/HTML; Charset=\"UTF-8\"", (b"Text", b"HTML", [(b"Charset", b"UTF-8")])),
    (b" (comment) text / plain ; a=1", (b"text", b"plain", [(b"a", b"1")])),
    (b"text", None),
    (b"", None),
    (b"/plain", None),
    (b"text/plain; ; junk; a=\"q\\\"uote\"; b", (b"text", b"plain", [(b"a", b'q"uote')])),
    (b"text/plain; a=\"unterminated", (b"text", b"plain", [(b"a", b"unterminated")])),
])
def test_parse_content_type(value, expected):
    """Content-Type parses per RFC 2045 section 5.1, skipping junk."""
    assert parse_content_type(value) == expected


def test_rfc2231_continuations_out_of_order():
    """RFC 2231 section 3 pieces are joined by their number, not their position."""
    assert parse_params(b"; x*1=b; x*0=a; y=c", 0) == [(b"x", b"ab"), (b"y", b"c")]


def test_rfc2231_mixed_pieces():
    """A plain piece among extended ones is percent-encoded into the extended value."""
    assert parse_params(b"; f*0*=utf-8''%C3%A9; f*1=100%", 0) == [
        (b"f*", b"utf-8''%C3%A9100%25")]


FIRST_CASES = [
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: x\r\n\r\nDate: body\r\n",
    b"Subject: x\r\nDATE :  folded\r\n\tover two\r\n  lines\r\nX: y\r\n\r\n",
    b"X-Date: no\r\nDate-Time: no\r\nDate\tX: no\r\n Date: continuation\r\n\r\n",
    b" Date: leading continuation\r\nDate: second\r\n\r\n",
    b"Date:\r\n\r\n",
    b"date: lf only\nsubject: s\n\n",
    b"Subject: cr\r\n\rodd: line\r\nDate: d\r\n\r\n",
    b"Subject: no blank line, all header\r\nDate: last",
    b"Subject: a\r\nSubject: b\r\n\r\n",
]


@pytest.mark.parametrize("raw", FIRST_CASES)
@pytest.mark.parametrize("name", [b"date", b"subject", b"x-date", b"odd", b"missing"])
def test_find_first_equals_the_index(raw, name):
    """
    find_first() on an unindexed header searches for the one field; it
    answers exactly what the full index answers.
    """
    end = header_end(raw, 0, len(raw))
    searched = Header(raw, 0, end)
    indexed = Header(raw, 0, end)
    indexed.fields()
    assert searched.find_first(name) == indexed.first(name)
    assert searched._fields is None  # nothing indexed for it
    assert searched.first(name) == searched.find_first(name) == indexed.first(name)


def test_find_first_on_real_mail():
    """Every field name of the corpus headers, searched, as the index answers."""
    from test_corpus_roundtrip import corpus_messages

    for raw in corpus_messages()[:300]:
        end = header_end(raw, 0, len(raw))
        names = {n for n, *_ in Header(raw, 0, end).fields()}
        for name in names | {b"date", b"nope"}:
            indexed = Header(raw, 0, end)
            indexed.fields()
            assert Header(raw, 0, end).find_first(name) == indexed.first(name), (name, raw[:200])
