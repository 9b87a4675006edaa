# -*- test-case-name: tests.imapd.test_mailboxname -*-
"""
Mailbox names from the wire: modified UTF-7 (RFC 3501 section 5.1.3, the
codec shared with the stores' on-disk names, L{storage.mutf7}) to the
stores' Unicode names, with the checks that keep a client inside its
own mail root (mission: "no path escapes ... through mailbox names").  The
stores check again on their side; this is the protocol's own line.

A client that enabled IMAP4rev2 (RFC 9051 section 5.1) names mailboxes in
UTF-8 both ways instead; callers pass C{utf8=session.imap4rev2}.
"""

from __future__ import annotations

import unicodedata

from imapd import wire
from imapd.errors import BadCommand, CommandFailed
from storage import mutf7

__all__ = ["DELIMITER", "from_wire", "to_wire", "astring", "MAX_NAME"]

#: The hierarchy delimiter we show clients.
DELIMITER = "/"
#: Longest mailbox name accepted, in characters (RFC 3501 sets no limit;
#: file systems do).
MAX_NAME = 1024


def from_wire(raw: bytes, utf8: bool = False, creating: bool = False) -> str:
    """
    Decode and validate a mailbox name.  C{INBOX} is case-insensitive
    (RFC 3501 section 5.1) and comes back as C{"INBOX"}.

    @param utf8: the client enabled IMAP4rev2: the name is UTF-8 and
        nothing else, so C{&} is an ampersand (RFC 9051 section 5.1).
    @param creating: the name is about to be created (CREATE, RENAME's
        new name).  RFC 9051 section 5.1 has servers refuse to create
        8-bit names that are not Net-Unicode (RFC 5198: NFC); we refuse
        rather than normalize, so that the name a client sent is the name
        it gets and no LIST OLDNAME is ever owed (RFC 9051 section 6.3.4).
    @raises BadCommand: not valid modified UTF-7 (or, with C{utf8}, UTF-8).
    @raises CommandFailed: C{[CANNOT]} for names that are not allowed.
    """
    if utf8:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadCommand("Mailbox name is not valid UTF-8")
        if creating and not unicodedata.is_normalized("NFC", name):
            raise CommandFailed("Mailbox name is not in Unicode NFC (RFC 9051 section 5.1)",
                                "CANNOT")
        if creating and any(0x80 <= ord(c) < 0xA0 for c in name):
            # C1 controls: not Net-Unicode either (RFC 5198 section 2).
            raise CommandFailed("Mailbox name contains control characters", "CANNOT")
    else:
        try:
            name = mutf7.decode(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            # Some clients send UTF-8 names; accept them when they decode
            # cleanly, as Dovecot does, rather than refuse a real user's folder.
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadCommand("Mailbox name is not valid modified UTF-7")
    if len(name) > MAX_NAME:
        raise CommandFailed("Mailbox name is too long", "CANNOT")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise CommandFailed("Mailbox name contains control characters", "CANNOT")
    parts = name.split(DELIMITER)
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    if name.startswith(DELIMITER) or name.startswith("~"):
        raise CommandFailed("Mailbox name must be relative to your mail root", "CANNOT")
    if any(p in (".", "..") for p in parts):
        raise CommandFailed("Mailbox name may not contain '.' or '..' levels", "CANNOT")
    return DELIMITER.join(parts)


def to_wire(name: str, utf8: bool = False) -> bytes:
    """
    Encode a store name for the wire: modified UTF-7, or UTF-8 for a
    client that enabled IMAP4rev2 (RFC 9051 section 5.1).
    """
    if utf8:
        return name.encode("utf-8")
    return mutf7.encode(name).encode("ascii")


def astring(name: str, utf8: bool = False) -> bytes:
    """
    A mailbox name as a response item.  For IMAP4rev2 a UTF-8 name that
    is not an atom goes as a quoted string, which RFC 9051's grammar
    allows (C{QUOTED-CHAR} includes C{UTF8-2/3/4}, section 9), rather
    than as a literal; the checks in L{from_wire} keep CR, LF and NUL out
    of names, and anything else falls back to L{wire.astring}.
    """
    encoded = to_wire(name, utf8)
    if utf8 and not encoded.isascii() and b"\r" not in encoded and b"\n" not in encoded \
            and b"\0" not in encoded and len(encoded) <= MAX_NAME * 4:
        return wire.quoted(encoded)
    return wire.astring(encoded)
