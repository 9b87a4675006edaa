"""Mailbox names from and to the wire (RFC 3501 section 5.1.3, 5.1)."""

import pytest

from imapd import mailboxname
from imapd.errors import BadCommand, CommandFailed


@pytest.mark.parametrize(
    "wire, name",
    [
        (b"INBOX", "INBOX"),
        (b"inbox", "INBOX"),
        (b"InBox/Sub", "INBOX/Sub"),
        (b"&ANw-n&AO8-code", "Ünïcode"),
        (b"~peter/mail/&U,BTFw-/&ZeVnLIqe-".replace(b"~peter/", b""), "mail/台北/日本語"),
        (b"a&-b", "a&b"),
        ("Été".encode("utf-8"), "Été"),  # UTF-8 from clients that skip mUTF-7
    ],
)
def test_from_wire(wire, name):
    """Modified UTF-7 decodes; INBOX is case-insensitive; raw UTF-8 is tolerated."""
    assert mailboxname.from_wire(wire) == name


@pytest.mark.parametrize("wire", [b"../etc", b"a/../b", b"/abs", b"~root", b"a\x01b", b"./x"])
def test_escapes_refused(wire):
    """Names that could leave the mail root, or hold control characters, get NO [CANNOT]."""
    with pytest.raises(CommandFailed) as e:
        mailboxname.from_wire(wire)
    assert e.value.code == "CANNOT"


def test_invalid_bytes_are_bad():
    """Bytes that are neither mUTF-7 nor UTF-8 are a syntax error (BAD)."""
    with pytest.raises(BadCommand):
        mailboxname.from_wire(b"\xff\xfe")


def test_to_wire_roundtrip():
    """Names go back to the wire in modified UTF-7."""
    assert mailboxname.to_wire("Ünïcode") == b"&ANw-n&AO8-code"
