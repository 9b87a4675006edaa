"""
Tests for L{imapd.search} with the real L{imapd.message.Message}: RFC 2047
headers, charset-decoded bodies and the Date header.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from imapd.parser.searchkey import parse_search_keys
from imapd.parser.types import SearchKey
from imapd.search import SearchItem, compile_search
from storage.interfaces import MessageRecord

import imapd.message as message

RAW = (b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.de>\r\n"
       b"To: Bob <bob@example.org>\r\n"
       b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
       b"Date: Tue, 2 Jan 2024 23:30:00 -0500\r\n"
       b"X-Tag: alpha\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: multipart/alternative; boundary=XX\r\n"
       b"\r\n"
       b"--XX\r\n"
       b"Content-Type: text/plain; charset=iso-8859-1\r\n"
       b"Content-Transfer-Encoding: quoted-printable\r\n"
       b"\r\n"
       b"Stra=DFe und Caf=E9\r\n"
       b"--XX\r\n"
       b"Content-Type: text/html; charset=utf-8\r\n"
       b"Content-Transfer-Encoding: base64\r\n"
       b"\r\n"
       b"PGI+Ym9sZDwvYj4=\r\n"
       b"--XX--\r\n")

NO_DATE = b"Subject: plain\r\n\r\nbody\r\n"


def matches(program: bytes, raw: bytes = RAW,
            charset: str | None = None) -> bool:
    """Parse C{program} as SEARCH keys and evaluate it on C{raw}."""
    keys, _ = parse_search_keys(program, 0, max_depth=50)
    matcher = compile_search(SearchKey("AND", children=keys), charset)
    record = MessageRecord(1, frozenset(),
                           datetime(2024, 2, 1, 12, 0, tzinfo=timezone.utc),
                           len(raw))
    item = SearchItem(1, record, frozenset(), 1, 1,
                      lambda: message.Message(raw))
    return matcher(item)


@pytest.mark.parametrize("program,charset,expected", [
    ("SUBJECT grüße".encode(), "UTF-8", True),
    ("SUBJECT \"AUS KÖLN\"".encode(), "UTF-8", True),
    ("SUBJECT k\xf6ln".encode("latin-1"), "ISO-8859-1", True),
    (b"SUBJECT utf-8", None, False),
    ("FROM jürgen".encode(), "UTF-8", True),
    (b"FROM j@example.de", None, True),
    (b"TO bob", None, True),
    (b"CC bob", None, False),
    (b"HEADER X-Tag ALPHA", None, True),
    (b'HEADER X-Tag ""', None, True),
    (b'HEADER X-Other ""', None, False),
    (b"BODY strasse", None, True),
    ("BODY café".encode(), "UTF-8", True),
    (b"BODY bold", None, True),
    (b"BODY =DF", None, False),
    (b"TEXT bob@example", None, True),
    ("TEXT köln".encode(), "UTF-8", True),
    (b"TEXT STRASSE", None, True),
    # 23:30 on 2 Jan in its own zone, although 3 Jan in UTC.
    (b"SENTON 2-Jan-2024", None, True),
    (b"SENTBEFORE 3-Jan-2024", None, True),
    (b"SENTSINCE 3-Jan-2024", None, False),
    (b"OR SEEN SUBJECT grusse", None, False),
    (b"NOT (SUBJECT nope BODY nope)", None, True),
])
def test_real_message(program: bytes, charset, expected: bool) -> None:
    """
    Each key on a real MIME message: decoded headers, decoded text parts,
    Unicode case folding, the Date header's own calendar date.
    """
    assert matches(program, charset=charset) is expected


ATTACHED = (b"From: a@example.org\r\n"
            b"Subject: files\r\n"
            b"Content-Type: multipart/mixed; boundary=B\r\n"
            b"\r\n"
            b"--B\r\n"
            b"Content-Type: text/plain\r\n"
            b"\r\n"
            b"see attached\r\n"
            b"--B\r\n"
            b"Content-Type: message/rfc822\r\n"
            b"\r\n"
            b"Subject: =?utf-8?q?inner_K=C3=B6ln?=\r\n"
            b"Content-Type: multipart/mixed; boundary=C\r\n"
            b"\r\n"
            b"--C\r\n"
            b"Content-Type: application/pdf; name=\"report.pdf\"\r\n"
            b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"\r\n"
            b"JVBERi0=\r\n"
            b"--C--\r\n"
            b"--B--\r\n")


@pytest.mark.parametrize("program,charset,expected", [
    (b"TEXT report.pdf", None, True),
    (b'TEXT "disposition: attachment"', None, True),
    ("TEXT \"inner köln\"".encode(), "UTF-8", True),
    (b"TEXT see", None, True),
    (b"TEXT JVBERi0", None, False),
    (b"BODY report.pdf", None, False),
])
def test_text_searches_the_body_headers(program: bytes, charset, expected: bool) -> None:
    """
    TEXT (RFC 3501 section 6.4.4: "in the header or body") finds the
    headers inside the body, MIME part headers and those of an attached
    message, decoded (a file name, as Dovecot does); BODY stays on the
    decoded text, and a non-text part's content is not searched.
    """
    assert matches(program, ATTACHED, charset=charset) is expected


def test_sent_date_falls_back_to_internaldate() -> None:
    """Without a Date header, SENT* keys use INTERNALDATE (1 Feb 2024)."""
    assert matches(b"SENTON 1-Feb-2024", NO_DATE)
    assert not matches(b"SENTON 2-Jan-2024", NO_DATE)
    assert matches(b"SENTON 1-Feb-2024", b"Date: garbage\r\n\r\n")
