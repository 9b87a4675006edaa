"""Tests for L{imapd.parser.datetime_}: SEARCH dates and APPEND date-times."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from imapd.parser.datetime_ import parse_date, parse_date_time
from imapd.parser.primitives import NotParseable


@pytest.mark.parametrize("raw,expected", [
    (b"1-Feb-2020", date(2020, 2, 1)),
    (b"01-feb-2020", date(2020, 2, 1)),
    (b'"29-Feb-2024"', date(2024, 2, 29)),
    (b"31-DEC-1999", date(1999, 12, 31)),
])
def test_date(raw, expected):
    """Dates may be bare or quoted; month names ignore case."""
    assert parse_date(raw + b" ", 0) == (expected, len(raw))


@pytest.mark.parametrize("raw", [
    b"30-Feb-2020", b"1-Foo-2020", b"1-Feb-20", b'"1-Feb-2020', b"x",
])
def test_bad_date(raw):
    """Impossible or malformed dates are refused."""
    with pytest.raises(NotParseable):
        parse_date(raw + b"\r\n", 0)


@pytest.mark.parametrize("raw,expected", [
    (b'"17-Jul-1996 02:44:25 -0700"',
     datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7)))),
    (b'" 1-Jan-2020 00:00:00 +0000"',
     datetime(2020, 1, 1, tzinfo=timezone.utc)),
    (b'"1-jan-2020 23:59:59 +0530"',
     datetime(2020, 1, 1, 23, 59, 59,
              tzinfo=timezone(timedelta(hours=5, minutes=30)))),
])
def test_date_time(raw, expected):
    """RFC 3501 date-time parses to an aware datetime in the given zone."""
    value, end = parse_date_time(raw + b" ", 0)
    assert value == expected and value.utcoffset() == expected.utcoffset()
    assert end == len(raw)


@pytest.mark.parametrize("raw", [
    b'"17-Jul-1996 02:44:25"', b'"17-Jul-1996 25:00:00 +0000"',
    b'"17-Jul-1996 02:44:25 +0099"', b"17-Jul-1996 02:44:25 -0700",
    b'"31-Apr-1996 02:44:25 -0700"',
])
def test_bad_date_time(raw):
    """Malformed date-times are refused."""
    with pytest.raises(NotParseable):
        parse_date_time(raw + b"\r\n", 0)
