"""
Tests for L{imapd.fetch} with the real L{imapd.message.Message}: the
seams between rendering and MIME parsing (part numbers, BINARY decoding,
unknown transfer encodings).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from imapd.fetch import UnknownCTE, render_fetch
from imapd.parser.fetchatt import parse_fetch_atts
from storage.interfaces import MessageRecord

import imapd.message as message

RAW = (b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.de>\r\n"
       b"To: Bob <bob@example.org>\r\n"
       b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
       b"Date: Tue, 2 Jan 2024 10:00:00 +0100\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=XX\r\n"
       b"\r\n"
       b"--XX\r\n"
       b"Content-Type: text/plain; charset=iso-8859-1\r\n"
       b"Content-Transfer-Encoding: quoted-printable\r\n"
       b"\r\n"
       b"Stra=DFe\r\n"
       b"--XX\r\n"
       b"Content-Type: application/octet-stream\r\n"
       b"Content-Transfer-Encoding: base64\r\n"
       b"\r\n"
       b"AAECAw==\r\n"
       b"--XX\r\n"
       b"Content-Type: application/x-foo\r\n"
       b"Content-Transfer-Encoding: x-uuencode\r\n"
       b"\r\n"
       b"begin 644 f\r\n"
       b"--XX--\r\n")

RECORD = MessageRecord(7, frozenset({"\\Seen"}),
                       datetime(2024, 1, 2, 9, 0, tzinfo=timezone.utc),
                       len(RAW))


def fetch(spec: bytes, uid: bool = False) -> bytes:
    """Parse C{spec} as a FETCH argument and render it for RAW."""
    attrs, _ = parse_fetch_atts(spec, 0)
    return render_fetch(1, attrs, RECORD, RECORD.flags,
                        message.Message(RAW), include_uid=uid)


def test_body_part() -> None:
    """C{BODY[1]} is the part's content, still transfer-encoded."""
    assert fetch(b"BODY.PEEK[1]") == b"* 1 FETCH (BODY[1] {8}\r\nStra=DFe)\r\n"


def test_header_fields() -> None:
    """HEADER.FIELDS selects from the real header, echoing the list."""
    assert fetch(b"BODY.PEEK[HEADER.FIELDS (to)]", uid=True) == (
        b"* 1 FETCH (UID 7 BODY[HEADER.FIELDS (to)] {29}\r\n"
        b"To: Bob <bob@example.org>\r\n\r\n)\r\n")


def test_binary_decodes() -> None:
    """
    BINARY decodes quoted-printable and base64; binary data with NUL is a
    literal8.
    """
    assert fetch(b"BINARY.PEEK[1]") == \
        b"* 1 FETCH (BINARY[1] {6}\r\nStra\xdfe)\r\n"
    assert fetch(b"(BINARY[2] BINARY.SIZE[2])") == \
        b"* 1 FETCH (BINARY[2] ~{4}\r\n\x00\x01\x02\x03 BINARY.SIZE[2] 4)\r\n"


def test_binary_unknown_cte() -> None:
    """An x-uuencode part cannot be decoded: UNKNOWN-CTE."""
    with pytest.raises(UnknownCTE):
        fetch(b"BINARY[3]")


def test_binary_missing_part() -> None:
    """A part beyond the last is NIL, not UNKNOWN-CTE."""
    assert fetch(b"BINARY[4]") == b"* 1 FETCH (BINARY[4] NIL)\r\n"
    assert fetch(b"BODY[4]") == b"* 1 FETCH (BODY[4] NIL)\r\n"


def test_structures_pass_through() -> None:
    """ENVELOPE and BODYSTRUCTURE are the Message's encodings, unchanged."""
    m = message.Message(RAW)
    out = fetch(b"(ENVELOPE BODYSTRUCTURE)")
    assert out == (b"* 1 FETCH (ENVELOPE " + m.envelope() + b" BODYSTRUCTURE "
                   + m.bodystructure(True) + b")\r\n")
