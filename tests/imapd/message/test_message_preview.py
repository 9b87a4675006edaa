"""
RFC 8970 PREVIEW text (L{imapd.message._preview}): which part, how it is
cleaned, how long it is.  Expected strings are written out by hand from
the rules in the module docstring.
"""

import pytest

from imapd.message import Message

CASES = [
    # Plain text: white space collapsed, quoted lines and the signature dropped.
    (b"Subject: p\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
     b"Hello   there,\r\n\r\n> quoted line\r\n  >> deeper\r\nCaf\xc3\xa9 time.\r\n-- \r\nsig\r\n",
     "Hello there, Café time."),
    # HTML: head (title, style), script and comments go; tags are spaces; entities decoded.
    (b"Content-Type: text/html\r\n\r\n<html><head><title>T</title><style>p{}</style></head>"
     b"<body><!-- note --><p>Hi &amp; <b>bold</b>&nbsp;text</p><script>x()</script><br>next</body></html>\r\n",
     "Hi & bold text next"),
    # multipart/alternative: the plain version even when HTML comes first.
    (b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n"
     b"<p>html part</p>\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
     b"plain=20part =C3=A9\r\n--b--\r\n",
     "plain part é"),
    # The first text part of a mixed message; an attached text file and a
    # forwarded message are not the message's own text.
    (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
     b"Content-Disposition: attachment; filename=a.txt\r\n\r\nattached\r\n"
     b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: fwd\r\n\r\nforwarded\r\n"
     b"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
     b"Q2Fm6SBsaXN0\r\n--b--\r\n",
     "Café list"),
    # No text at all: the empty preview (RFC 8970 section 3), not NIL.
    (b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n", ""),
    (b"Subject: empty\r\n\r\n", ""),
]


@pytest.mark.parametrize("raw, expected", CASES)
def test_preview(raw, expected):
    """Each message's preview, as the module docstring's rules give it."""
    assert Message(raw).preview() == expected


def test_length_limit_counts_characters():
    """At most 200 characters (not octets), cut without trailing space."""
    text = Message(("Subject: l\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                    + "é" * 150 + " " + "word " * 100 + "\r\n").encode()).preview()
    assert len(text) <= 200 and text.startswith("é" * 150 + " word") and not text.endswith(" ")
    assert len(text.encode()) > 200
