"""
protect_binary_parts (RFC 3516 section 4.4): binary parts that the stores'
CRLF line ends would alter are re-encoded as base64, nothing else changes.
Checked with Python's email package as an independent decoder.
"""

import email

from imapd.message import Message, protect_binary_parts

BLOB = b"\x00\x01\n\xff\r\n\n"


def test_untouched_without_bare_lf():
    """A message with NUL and 8-bit octets but every LF after a CR is returned as it is."""
    raw = b"Content-Transfer-Encoding: binary\r\n\r\n\x00\xff\r\n"
    assert protect_binary_parts(raw) is raw


def test_top_level_binary_body():
    """A single-part binary message: folded CTE field replaced, body base64, decodes to the same octets."""
    raw = b"Subject: x\r\nContent-Transfer-Encoding:\r\n  binary\r\nX-Other: y\r\n\r\n" + BLOB
    out = protect_binary_parts(raw)
    assert out.startswith(b"Subject: x\r\nContent-Transfer-Encoding: base64\r\nX-Other: y\r\n\r\n")
    assert b"\n" not in out.replace(b"\r\n", b"")
    assert email.message_from_bytes(out).get_payload(decode=True) == BLOB
    assert Message(out).binary_section((1,)) == BLOB


def test_only_binary_parts_change():
    """In a multipart, the 8bit part with a bare LF and the text part stay; the binary one (nested too) is re-encoded."""
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Transfer-Encoding: 8bit\r\n\r\ntext\nmore\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\ncontent-transfer-encoding: BINARY\r\n\r\n" + BLOB + b"\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: inner\r\nContent-Transfer-Encoding: binary\r\n\r\n" + BLOB[::-1] + b"\r\n"
        b"--b--\r\n"
    )
    out = protect_binary_parts(raw)
    assert b"--b\r\nContent-Transfer-Encoding: 8bit\r\n\r\ntext\nmore\r\n" in out
    msg = Message(out)
    assert msg.binary_section((2,)) == BLOB
    assert msg.binary_section((3, 1)) == BLOB[::-1]
    assert msg.section((1,), None) == b"text\nmore"
    parts = [p for p in email.message_from_bytes(out).walk() if not p.is_multipart()]
    assert parts[1].get_payload(decode=True) == BLOB
