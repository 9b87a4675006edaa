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


@pytest.mark.parametrize(
    "wire, name",
    [
        ("Été/日本語".encode("utf-8"), "Été/日本語"),
        (b"&AOk-", "&AOk-"),      # no modified UTF-7 for IMAP4rev2 clients
        (b"a&-b", "a&-b"),
        (b"inbox/Sub", "INBOX/Sub"),
    ],
)
def test_from_wire_utf8(wire, name):
    """RFC 9051 section 5.1: with utf8, names are UTF-8 and only that; INBOX still folds."""
    assert mailboxname.from_wire(wire, utf8=True) == name


def test_utf8_not_nfc_refused_only_when_creating():
    """A non-NFC name cannot be created, but an existing one can still be named."""
    decomposed = "e\u0301".encode("utf-8")
    assert mailboxname.from_wire(decomposed, utf8=True) == "e\u0301"
    with pytest.raises(CommandFailed) as e:
        mailboxname.from_wire(decomposed, utf8=True, creating=True)
    assert e.value.code == "CANNOT"
    with pytest.raises(CommandFailed):
        mailboxname.from_wire("a\u0085".encode("utf-8"), utf8=True, creating=True)
    assert mailboxname.from_wire("\u00e9".encode("utf-8"), utf8=True, creating=True) == "\u00e9"


def test_utf8_invalid_is_bad_and_escapes_refused():
    """Bytes that are not UTF-8 are BAD; path escapes are refused as for IMAP4rev1."""
    with pytest.raises(BadCommand):
        mailboxname.from_wire(b"caf\xe9", utf8=True)
    for wire in (b"../x", b"/abs", b"a\x01"):
        with pytest.raises(CommandFailed):
            mailboxname.from_wire(wire, utf8=True)


def test_astring_forms():
    """Atoms stay atoms; UTF-8 names are quoted for IMAP4rev2, mUTF-7 atoms otherwise."""
    assert mailboxname.astring("INBOX", utf8=True) == b"INBOX"
    assert mailboxname.astring("a&b", utf8=True) == b"a&b"
    assert mailboxname.astring("a&b") == b"a&-b"
    assert mailboxname.astring("Entwürfe", utf8=True) == '"Entwürfe"'.encode("utf-8")
    assert mailboxname.astring("Entwürfe") == b"Entw&APw-rfe"
    assert mailboxname.astring('Ä "q"', utf8=True) == '"Ä \\"q\\""'.encode("utf-8")
    assert mailboxname.astring("two words", utf8=True) == b'"two words"'
