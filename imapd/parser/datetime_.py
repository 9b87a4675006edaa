# -*- test-case-name: tests.imapd.parser.test_parser_datetime -*-
"""
RFC 3501 dates (SEARCH) and date-times (APPEND), section 9:

    date        = date-text / DQUOTE date-text DQUOTE
    date-text   = date-day "-" date-month "-" date-year
    date-time   = DQUOTE date-day-fixed "-" date-month "-" date-year
                  SP time SP zone DQUOTE
    date-day-fixed = (SP DIGIT) / 2DIGIT
    zone        = ("+" / "-") 4DIGIT

Month names are case-insensitive (they are atoms in the grammar).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from imapd.parser.primitives import NotParseable, describe

__all__ = ["parse_date", "parse_date_time", "MONTHS"]

MONTHS = {m: i + 1 for i, m in enumerate(
    b"JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}

_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'"([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"')


def _make_date(day: bytes, month: bytes, year: bytes, pos: int) -> date:
    try:
        return date(int(year), MONTHS[month.upper()], int(day))
    except (KeyError, ValueError):
        raise NotParseable("Invalid date", pos) from None


def parse_date(buf: bytes, pos: int) -> tuple[date, int]:
    """RFC 3501 C{date} (SEARCH BEFORE/ON/SINCE...), bare or quoted."""
    quoted = buf[pos:pos + 1] == b'"'
    m = _DATE.match(buf, pos + 1 if quoted else pos)
    if m is None:
        raise NotParseable(
            "Expected date, found %s" % describe(buf, pos), pos)
    end = m.end()
    if quoted:
        if buf[end:end + 1] != b'"':
            raise NotParseable("Invalid date", pos)
        end += 1
    return _make_date(m.group(1), m.group(2), m.group(3), pos), end


def parse_date_time(buf: bytes, pos: int) -> tuple[datetime, int]:
    """
    RFC 3501 C{date-time} (APPEND), returned as an aware datetime in the
    zone the client gave.  The day may be space-padded (C{" 1-Jan-2020"})
    as the grammar's date-day-fixed says; a bare single digit is accepted
    too because some clients send it.
    """
    m = _DATE_TIME.match(buf, pos)
    if m is None:
        raise NotParseable(
            "Invalid date-time, found %s" % describe(buf, pos), pos)
    return _date_time(m, pos), m.end()


def _date_time(m: re.Match[bytes], pos: int) -> datetime:
    day, month, year, hh, mm, ss, sign, zh, zm = m.groups()
    d = _make_date(day.strip(), month, year, pos)
    hours, minutes, seconds = int(hh), int(mm), int(ss)
    if hours > 23 or minutes > 59 or seconds > 60 or int(zm) > 59:
        raise NotParseable("Invalid date-time", pos)
    # A leap second (:60) is legal in RFC 5322 times; clamp it.
    seconds = min(seconds, 59)
    offset = timedelta(hours=int(zh), minutes=int(zm))
    if sign == b"-":
        offset = -offset
    try:
        tz = timezone(offset)
    except ValueError:
        raise NotParseable("Invalid date-time zone", pos) from None
    return datetime(d.year, d.month, d.day, hours, minutes, seconds,
                    tzinfo=tz)
