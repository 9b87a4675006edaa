"""Tests for L{imapd.parser.sequence}: RFC 3501 sequence sets and RFC 5182 C{$}."""

from __future__ import annotations

import pytest

from imapd.parser.primitives import NotParseable
from imapd.parser.sequence import parse_sequence_set
from imapd.parser.types import SequenceSet


@pytest.mark.parametrize("raw,expected", [
    (b"1", SequenceSet(((1, 1),))),
    (b"*", SequenceSet(((None, None),))),
    (b"1:*", SequenceSet(((1, None),))),
    (b"5:2", SequenceSet(((5, 2),))),
    (b"1,3:5,7:*,*:9", SequenceSet(((1, 1), (3, 5), (7, None), (None, 9)))),
    (b"4294967295", SequenceSet(((4294967295, 4294967295),))),
    (b"$", SequenceSet((), saved=True)),
])
def test_valid(raw, expected):
    """Valid sets parse to ranges in client order, C{*} as None."""
    assert parse_sequence_set(raw + b" ", 0) == (expected, len(raw))


@pytest.mark.parametrize("raw,reason", [
    (b"0", "Invalid sequence set: 0 is not allowed"),
    (b"1:0", "Invalid sequence set: 0 is not allowed"),
    (b"4294967296", "Invalid sequence set: number too large"),
    (b"99999999999999999999999999", "Invalid sequence set: number too large"),
    (b"1,", "Invalid sequence set"),
    (b"1:", "Invalid sequence set"),
    (b",1", "Invalid sequence set"),
    (b"a", "Invalid sequence set"),
    (b"-1", "Invalid sequence set"),
])
def test_invalid(raw, reason):
    """Invalid sets are refused with a reason naming the problem."""
    with pytest.raises(NotParseable) as e:
        parse_sequence_set(raw + b"\r\n", 0)
    assert e.value.reason == reason


def test_stops_at_space():
    """Parsing stops at the first byte that cannot continue the set."""
    assert parse_sequence_set(b"1:3 FLAGS", 0)[1] == 3


def test_dollar_then_comma():
    """C{$} stands alone: what follows it is left to the caller."""
    assert parse_sequence_set(b"$,1", 0) == (SequenceSet((), saved=True), 1)
