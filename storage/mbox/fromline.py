# -*- test-case-name: tests.storage.mbox.test_mbox_reader -*-
"""
The C{From } separator line of an mbox::

    From sender@example.org Tue Nov 14 22:13:20 2023
    From mboxu@vm  Tue Nov 14 22:13:20 2023          (Dovecot, two spaces)
    From MAILER-DAEMON Tue Nov 14 22:13 2023         (no seconds)
    From a@b Tue Nov 14 22:13:20 2023 +0100          (numeric zone after)
    From a@b Tue Nov 14 22:13:20 MET DST 2023        (zone name before year)
    From  Tue Nov 14 22:13:20 2023                   (no sender)

A line is only a separator if it carries such a date: a body line
starting with C{From } that a careless writer did not quote is then still
body, as Dovecot and UW-IMAP judge it.  The date is the message's
INTERNALDATE; without a zone it is local time (what C{ctime()} wrote).
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from datetime import datetime, timezone

__all__ = ["parse_from_line", "is_from_line", "make_from_line"]

_MONTHS = {m.encode(): i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_DATE = re.compile(
    rb"(?:^|\s)(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+"
    rb"(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\s+"
    rb"(?P<day>\d{1,2})\s+(?P<h>\d{1,2}):(?P<m>\d\d)(?::(?P<s>\d\d))?"
    rb"(?:\s+(?P<tz1>[+-]\d{4}|[a-z]{1,5}(?:\s+dst)?))?"
    rb"\s+(?P<year>\d{2,4})"
    rb"(?:\s+(?P<tz2>[+-]\d{4}))?\s*$",
    re.IGNORECASE,
)


def _offset(tz: bytes | None) -> int | None:
    if tz and tz[:1] in (b"+", b"-") and tz[1:].isdigit():
        minutes = int(tz[1:3]) * 60 + int(tz[3:5])
        return minutes * 60 if tz[:1] == b"+" else -minutes * 60
    if tz and tz.upper() in (b"UT", b"UTC", b"GMT", b"Z"):
        return 0
    return None


def parse_from_line(line: bytes) -> datetime | None:
    """
    The date of a C{From } line (C{line} without its end of line), or
    C{None} if it is not a separator line.
    """
    if not line.startswith(b"From "):
        return None
    # Local time is the zone's as of the last tzset (what mktime uses).
    return _parse_date(line, time.tzname, time.timezone, time.altzone)


# A few recent lines: an append parses its From line and that of the
# message before it, and asks each twice (is it a separator, what date),
# each time through the C library's mktime, which looks at /etc/localtime
# again on every call.  The zone is part of the key.
@functools.lru_cache(maxsize=64)
def _parse_date(line: bytes, _names: tuple, _zone: int, _alt: int) -> datetime | None:
    m = _DATE.search(line, 4)
    if m is None:
        return None
    year = int(m["year"])
    if year < 100:
        year += 2000 if year < 70 else 1900
    fields = (year, _MONTHS[m["mon"][:3].lower()], int(m["day"]),
              int(m["h"]), int(m["m"]), int(m["s"] or 0))
    try:
        offset = _offset(m["tz2"]) if m["tz2"] else _offset(m["tz1"])
        if offset is not None:
            stamp = calendar.timegm(fields + (0, 0, 0)) - offset
        else:
            stamp = time.mktime(fields + (0, 0, -1))
        return datetime.fromtimestamp(stamp, timezone.utc)
    except (ValueError, OverflowError):
        return None


def is_from_line(line: bytes) -> bool:
    """Whether C{line} (without end of line) is an mbox separator."""
    return parse_from_line(line) is not None


def make_from_line(sender: str, date: datetime) -> bytes:
    """
    A separator line in Dovecot's spelling (local time, C{ctime} format,
    two spaces after the sender), without end of line.
    """
    sender = "".join(c for c in sender if c > " " and c != "\x7f") or "MAILER-DAEMON"
    stamp = time.localtime(date.timestamp())
    return f"From {sender}  {time.strftime('%a %b %e %H:%M:%S %Y', stamp)}".encode(
        "utf-8", "replace")
