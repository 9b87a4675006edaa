# -*- test-case-name: tests.imapd.message.test_message_decode -*-
"""
Tests for decoded access to a message: decoded headers, the sent date,
and the decoded text of every text part (SEARCH BODY/TEXT).
"""

from datetime import datetime, timedelta, timezone

import pytest

from imapd.message import Message
from imapd.message._decode import normalize_cte, transfer_decode


def test_decoded_header():
    """Header values come back with encoded words and 8-bit bytes decoded."""
    m = Message(b"Subject: =?utf-8?q?caf=C3=A9?= ok\r\nSubject: caf\xe9\r\n\r\n")
    assert m.decoded_header("Subject") == ["café ok", "café"]
    assert m.decoded_header("from") == []


@pytest.mark.parametrize("value, expected", [
    (b"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
     datetime(1996, 7, 17, 2, 23, 25, tzinfo=timezone(timedelta(hours=-7)))),
    (b"17 Jul 96 02:23:25 GMT", datetime(1996, 7, 17, 2, 23, 25, tzinfo=timezone.utc)),
    (b"Mon, 2 Sep 2002 09:53:39 EDT",
     datetime(2002, 9, 2, 9, 53, 39, tzinfo=timezone(timedelta(hours=-4)))),
    (b"Thu, 22 Aug 2002 18:26:25 +0700",
     datetime(2002, 8, 22, 18, 26, 25, tzinfo=timezone(timedelta(hours=7)))),
    (b"Tue, 10 Sep 2002 12:00", datetime(2002, 9, 10, 12, 0, tzinfo=timezone.utc)),
    (b"not a date", None),
    (b"", None),
    (b"Mon, 99 Foo 2002 99:99:99 +0000", None),
])
def test_sent_date(value, expected):
    """The Date field parses tolerantly (RFC 5322 section 3.3 and 4.3); garbage gives None."""
    m = Message(b"Date: " + value + b"\r\n\r\n")
    assert m.sent_date() == expected


def test_sent_date_missing():
    """Without a Date field there is no sent date."""
    assert Message(b"Subject: x\r\n\r\n").sent_date() is None


@pytest.mark.parametrize("value, cte", [
    (None, b"7bit"), (b"7bit", b"7bit"), (b"7-bit", b"7bit"), (b"plain", b"7bit"),
    (b"8bits", b"8bit"), (b"BASE64", b"base64"), (b"quoted-printable;", b"quoted-printable"),
    (b"quoted printable", b"quoted-printable"), (b"x-uuencode", None), (b"garbage", None),
])
def test_normalize_cte(value, cte):
    """Content-Transfer-Encoding values from the mail-gem corpus map to what they mean."""
    assert normalize_cte(value) == cte


def test_transfer_decode_tolerant():
    """Broken base64 decodes what it can; quoted-printable soft breaks are joined."""
    assert transfer_decode(b"aGVs\r\nbG8\r\n", b"base64") == b"hello"
    assert transfer_decode(b"aGVsbG8=!!junk", b"base64") == b"hello"
    assert transfer_decode(b"a=\r\nb=3D", b"quoted-printable") == b"ab="
    assert transfer_decode(b"as is", None) == b"as is"


def test_quoted_printable_deletes_transport_white_space():
    """RFC 2045 section 6.7 rule (3): trailing white space goes, also before a soft break; =20 stays."""
    assert transfer_decode(b"a  \r\nb=20\r\nc= \t\r\nd\t", b"quoted-printable") == b"a\r\nb \r\ncd"
    # A malformed escape is kept as it is (section 6.7, note (2)).
    assert transfer_decode(b"x =ZZ y=4", b"quoted-printable") == b"x =ZZ y=4"


def test_decoded_text():
    """Every text part, nested or encapsulated, is transfer- and charset-decoded."""
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n"
           b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
           b"Subject: in\r\nContent-Type: text/html; charset=koi8-r\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n0NLJ18XU\r\n"
           b"--b\r\nContent-Type: text/plain; charset=default\r\n"
           b"Content-Transfer-Encoding: 8bits\r\n\r\nna\xc3\xafve\r\n--b--\r\n")
    assert list(Message(raw).decoded_text()) == ["café", "привет", "naïve"]


def test_decoded_text_plain_message():
    """A message without MIME headers is one text/plain part."""
    assert list(Message(b"Subject: x\r\n\r\nhello\r\n").decoded_text()) == ["hello\r\n"]


def test_decoded_header_fallback():
    """8-bit header bytes that are not UTF-8 decode with the given fallback charset."""
    m = Message(b"Subject: \xcf\xf0\xe8\xe2\xe5\xf2\r\n\r\n")
    assert m.decoded_header("subject", fallback="windows-1251") == ["Привет"]
    assert m.decoded_header("subject") == ["Ïðèâåò"]
