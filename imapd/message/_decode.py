# -*- test-case-name: tests.imapd.message.test_message_decode -*-
"""
Content-Transfer-Encoding decoding (RFC 2045 section 6) and Date parsing
(RFC 5322 section 3.3), both tolerant of what real mail contains.
"""

from __future__ import annotations

import binascii
import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_tz

__all__ = ["normalize_cte", "transfer_decode", "parse_date"]

# Values seen in the wild (see the mail-gem corpus) mapped onto what they
# mean.  Anything not listed is unknown: FETCH BINARY answers UNKNOWN-CTE
# (RFC 3516 section 4.3) and SEARCH reads the bytes as they are.
_CTE = {
    b"7bit": b"7bit", b"7-bit": b"7bit", b"plain": b"7bit", b"text/plain": b"7bit",
    b"8bit": b"8bit", b"8-bit": b"8bit", b"8bits": b"8bit",
    b"binary": b"binary",
    b"base64": b"base64",
    b"quoted-printable": b"quoted-printable",
    b"quoted printable": b"quoted-printable",
    b"quotedprintable": b"quoted-printable",
}


def normalize_cte(value: bytes | None) -> bytes | None:
    """
    Map a Content-Transfer-Encoding value to C{7bit}, C{8bit}, C{binary},
    C{base64} or C{quoted-printable}; C{None} when it is not recognized.
    An absent header means 7bit (RFC 2045 section 6.1).
    """
    if value is None:
        return b"7bit"
    key = b" ".join(value.replace(b";", b" ").split()).lower()
    if not key:
        return b"7bit"
    return _CTE.get(key)


def _base64(data: bytes) -> bytes:
    # The data ends at the padding; drop everything else outside the
    # alphabet (line breaks, junk) and decode in whole quanta, as
    # Dovecot's decoder does rather than failing the part.
    pad = data.find(b"=")
    if pad >= 0:
        data = data[:pad]
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return b""


# RFC 2045 section 6.7 rule (3): white space at the end of an encoded
# line was added in transport and is deleted; rule (5): an "=" ending a
# line (after that deletion) is a soft line break, joined away.
_QP_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r?\n|\Z)")
_QP_SOFT_BREAK = re.compile(rb"=\r?\n|=\Z")


def _quoted_printable(data: bytes) -> bytes:
    # binascii.a2b_qp keeps trailing white space and a soft break followed
    # by white space ("= \r\n"), so BINARY[] and BINARY.SIZE (RFC 3516)
    # would count octets RFC 2045 says are not there; Dovecot deletes
    # them too.  What is left is "=XX" escapes, which a2b_qp decodes,
    # keeping a malformed "=" as it is (section 6.7, note (2)).
    data = _QP_SOFT_BREAK.sub(b"", _QP_TRAILING_SPACE.sub(b"", data))
    try:
        return binascii.a2b_qp(data)
    except binascii.Error:
        return data


def transfer_decode(data: bytes, cte: bytes | None) -> bytes:
    """Decode C{data} for the normalized C{cte}; unknown ones pass as is."""
    if cte == b"base64":
        return _base64(data)
    if cte == b"quoted-printable":
        return _quoted_printable(data)
    return data



def parse_date(value: bytes | None) -> datetime | None:
    """
    Parse an RFC 5322 date-time (with the obsolete forms of section 4.3:
    two-digit years, named zones) into an aware datetime; a missing or
    unknown zone is taken as UTC.  C{None} when no date can be found.
    """
    if not value:
        return None
    text = value.decode("latin-1")
    # Comments such as "(PDT)" confuse parsedate_tz; drop them.
    text = re.sub(r"\([^)]*\)", " ", text).strip()
    try:
        t = parsedate_tz(text)
    except Exception:
        t = None
    if t is None:
        return None
    year, month, day, hour, minute, second = t[:6]
    offset = t[9] or 0
    try:
        if not 1 <= year <= 9999 or abs(offset) >= 86400:
            return None
        return datetime(year, month, day, hour, minute, min(second, 59),
                        tzinfo=timezone(timedelta(seconds=offset)))
    except (ValueError, OverflowError, TypeError):
        return None
