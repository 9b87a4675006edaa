"""
Tests for SEARCH and UID SEARCH (L{imapd.parser.searchkey} and the
SEARCH entry of L{imapd.parser.commands}): every RFC 3501 section 6.4.4
key, nesting, CHARSET, and RFC 4731 RETURN.
"""

from __future__ import annotations

from datetime import date

import pytest

from imapd.parser import ParseError, ParserLimits, Search, SearchKey, SequenceSet


def K(name, value=None, *children):
    """Shorthand for a L{SearchKey}."""
    return SearchKey(name, value, children)


def S(*keys, charset=None, uid=False, ret=None):
    """Shorthand for an expected L{Search}."""
    return Search("a", charset, SearchKey("AND", children=keys), uid, ret)


FLAG_KEYS = ["ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD",
             "RECENT", "SEEN", "UNANSWERED", "UNDELETED", "UNDRAFT",
             "UNFLAGGED", "UNSEEN"]


@pytest.mark.parametrize("key", FLAG_KEYS)
def test_flag_keys(one, key):
    """Keys without arguments, in any case."""
    assert one(b"a SEARCH " + key.lower().encode() + b"\r\n") == S(K(key))


STRING_KEYS = ["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"]


@pytest.mark.parametrize("key", STRING_KEYS)
def test_string_keys(one, key):
    """String keys take an astring: atom, quoted or literal."""
    k = key.encode()
    assert one(b"a SEARCH " + k + b" foo\r\n") == S(K(key, b"foo"))
    assert one(b"a SEARCH " + k + b' "a b"\r\n') == S(K(key, b"a b"))
    assert one(b"a SEARCH " + k + b" {3}\r\nx y\r\n") == S(K(key, b"x y"))


DATE_KEYS = ["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"]


@pytest.mark.parametrize("key", DATE_KEYS)
def test_date_keys(one, key):
    """Date keys take an RFC 3501 date, bare or quoted."""
    k = key.encode()
    assert one(b"a SEARCH " + k + b" 1-Feb-1994\r\n") == \
        S(K(key, date(1994, 2, 1)))
    assert one(b"a SEARCH " + k + b' "01-Feb-1994"\r\n') == \
        S(K(key, date(1994, 2, 1)))


VALID = [
    (b"a SEARCH KEYWORD $Forwarded UNKEYWORD foo\r\n",
     S(K("KEYWORD", b"$Forwarded"), K("UNKEYWORD", b"foo"))),
    (b"a SEARCH LARGER 1024 SMALLER 4294967295\r\n",
     S(K("LARGER", 1024), K("SMALLER", 4294967295))),
    (b"a SEARCH HEADER Message-ID <x@y>\r\n",
     S(K("HEADER", (b"Message-ID", b"<x@y>")))),
    (b'a SEARCH HEADER "X-A" ""\r\n', S(K("HEADER", (b"X-A", b"")))),
    (b"a SEARCH UID 1:5,7\r\n",
     S(K("UID", SequenceSet(((1, 5), (7, 7)))))),
    (b"a SEARCH 1:3 *\r\n",
     S(K("SEQSET", SequenceSet(((1, 3),))),
       K("SEQSET", SequenceSet(((None, None),))))),
    (b"a SEARCH $\r\n", S(K("SEQSET", SequenceSet((), saved=True)))),
    (b"a SEARCH NOT SEEN\r\n", S(K("NOT", None, K("SEEN")))),
    (b"a SEARCH OR SEEN FLAGGED\r\n",
     S(K("OR", None, K("SEEN"), K("FLAGGED")))),
    (b"a SEARCH OR (SEEN FROM x) NOT (DELETED)\r\n",
     S(K("OR", None, K("AND", None, K("SEEN"), K("FROM", b"x")),
         K("NOT", None, K("AND", None, K("DELETED")))))),
    (b"a SEARCH ((ALL))\r\n", S(K("AND", None, K("AND", None, K("ALL"))))),
    (b"a SEARCH YOUNGER 3600 OLDER 60\r\n",
     S(K("YOUNGER", 3600), K("OLDER", 60))),
    (b"a SEARCH MODSEQ 620162338\r\n", S(K("MODSEQ", 620162338))),
    (b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338\r\n',
     S(K("MODSEQ", 620162338))),
    (b"a SEARCH MODSEQ 0\r\n", S(K("MODSEQ", 0))),
    # RFC 8514 section 4.3.
    (b"a SEARCH SAVEDBEFORE 1-Feb-1994 SAVEDON 2-Feb-1994 savedsince 3-Feb-1994 SAVEDATESUPPORTED\r\n",
     S(K("SAVEDBEFORE", date(1994, 2, 1)), K("SAVEDON", date(1994, 2, 2)),
       K("SAVEDSINCE", date(1994, 2, 3)), K("SAVEDATESUPPORTED"))),
    (b"a SEARCH CHARSET UTF-8 SUBJECT {4}\r\n\xc3\xa9t\xc3\r\n",
     S(K("SUBJECT", b"\xc3\xa9t\xc3"), charset="UTF-8")),
    (b"a SEARCH charset \"ISO-8859-1\" TEXT x\r\n",
     S(K("TEXT", b"x"), charset="ISO-8859-1")),
    (b"a SEARCH RETURN (MIN MAX COUNT) UNSEEN\r\n",
     S(K("UNSEEN"), ret=("MIN", "MAX", "COUNT"))),
    (b"a SEARCH RETURN () ALL\r\n", S(K("ALL"), ret=("ALL",))),
    (b"a SEARCH RETURN (SAVE) CHARSET US-ASCII ALL\r\n",
     S(K("ALL"), charset="US-ASCII", ret=("SAVE",))),
    (b"a UID SEARCH UID 1:*\r\n",
     S(K("UID", SequenceSet(((1, None),))), uid=True)),
]


@pytest.mark.parametrize("raw,expected", VALID)
def test_valid(one, raw, expected):
    """Complex search programs parse to the expected tree."""
    assert one(raw) == expected


INVALID = [
    (b"a SEARCH\r\n", "Expected space, found end of line"),
    (b"a SEARCH FOO\r\n", "Unknown search key FOO"),
    (b"a SEARCH FROM\r\n", "Missing argument to FROM"),
    (b"a SEARCH BEFORE 30-Feb-2020\r\n", "Invalid argument to BEFORE: Invalid date"),
    (b"a SEARCH LARGER x\r\n",
     "Invalid argument to LARGER: Expected number, found 'x'"),
    (b"a SEARCH LARGER 99999999999\r\n",
     "Invalid argument to LARGER: Number too large"),
    (b"a SEARCH UID 0\r\n",
     "Invalid argument to UID: Invalid sequence set: 0 is not allowed"),
    (b"a SEARCH (SEEN\r\n", "Expected ')', found end of line"),
    (b"a SEARCH SEEN)\r\n", "Expected end of line, found ')'"),
    (b"a SEARCH ()\r\n", "Expected atom, found ')'"),
    (b"a SEARCH OR SEEN\r\n", "Expected space, found end of line"),
    (b"a SEARCH NOT\r\n", "Expected space, found end of line"),
    (b"a SEARCH RETURN (FOO) ALL\r\n", "Unknown RETURN option FOO"),
    (b"a SEARCH CHARSET\r\n", "Unknown search key CHARSET"),
    (b"a SEARCH HEADER X\r\n",
     "Invalid argument to HEADER: Expected space, found end of line"),
    (b"a SEARCH SEEN  UNSEEN\r\n", "Expected atom, found ' '"),
    (b'a SEARCH MODSEQ "/x/y" all 1\r\n',
     "Invalid argument to MODSEQ: Invalid entry name"),
    (b'a SEARCH MODSEQ "/flags/x" mine 1\r\n',
     "Invalid argument to MODSEQ: Invalid entry type"),
    (b"a SEARCH MODSEQ 9223372036854775808\r\n",
     "Invalid argument to MODSEQ: Number too large"),
]


@pytest.mark.parametrize("raw,reason", INVALID)
def test_invalid(one, raw, reason):
    """Malformed search programs are refused with a precise reason."""
    assert one(raw) == ParseError("a", reason)


def test_depth_limit(one):
    """Nesting beyond max_depth is a ParseError, not a RecursionError."""
    limits = ParserLimits(max_depth=10)
    ok = b"a SEARCH " + b"(" * 10 + b"ALL" + b")" * 10 + b"\r\n"
    assert isinstance(one(ok, limits), Search)
    deep = b"a SEARCH " + b"(" * 11 + b"ALL" + b")" * 11 + b"\r\n"
    assert one(deep, limits) == ParseError(
        "a", "Search program too deeply nested")
    nots = b"a SEARCH " + b"NOT " * 11 + b"ALL\r\n"
    assert one(nots, limits) == ParseError(
        "a", "Search program too deeply nested")


def test_very_deep_default(one):
    """Ten thousand NOTs with default limits are refused cleanly."""
    event = one(b"a SEARCH " + b"NOT " * 10000 + b"ALL\r\n")
    assert event == ParseError("a", "Search program too deeply nested")
