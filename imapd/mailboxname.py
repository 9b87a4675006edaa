# -*- test-case-name: tests.imapd.test_mailboxname -*-
"""
Mailbox names from the wire: modified UTF-7 (RFC 3501 section 5.1.3, the
codec shared with the stores' on-disk names, L{storage.mutf7}) to the
stores' Unicode names, with the checks that keep a client inside its
own mail root (mission: "no path escapes ... through mailbox names").  The
stores check again on their side; this is the protocol's own line.
"""

from __future__ import annotations

from imapd.errors import BadCommand, CommandFailed
from storage import mutf7

__all__ = ["DELIMITER", "from_wire", "to_wire", "MAX_NAME"]

#: The hierarchy delimiter we show clients.
DELIMITER = "/"
#: Longest mailbox name accepted, in characters (RFC 3501 sets no limit;
#: file systems do).
MAX_NAME = 1024


def from_wire(raw: bytes) -> str:
    """
    Decode and validate a mailbox name.  C{INBOX} is case-insensitive
    (RFC 3501 section 5.1) and comes back as C{"INBOX"}.

    @raises BadCommand: not valid modified UTF-7.
    @raises CommandFailed: C{[CANNOT]} for names that are not allowed.
    """
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


def to_wire(name: str) -> bytes:
    """Encode a store name for the wire."""
    return mutf7.encode(name).encode("ascii")
