# -*- test-case-name: tests.storage.maildir.test_maildir_save -*-
"""
Line endings of message files.

MTAs deliver with LF line endings and Dovecot stores APPENDed messages the
same way; IMAP clients see CRLF (RFC 3501 section 2.3.4: RFC822.SIZE is
the size in CRLF form).  Conversion happens here and nowhere else, so that
the size we record (C{,W=}) always equals the length of what we serve.
"""

from __future__ import annotations

__all__ = ["to_crlf", "to_lf", "crlf_size"]


def to_crlf(data: bytes) -> bytes:
    """
    Turn every bare LF into CRLF; existing CRLFs are left alone.

    Two C{bytes.replace} passes instead of a regular expression: CRLFs
    cannot overlap, so folding them to LF first and then expanding every
    LF gives the same bytes (a lone CR, or the CR of C{"\\r\\r\\n"}, is
    kept), five to ten times faster on large messages.
    """
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def to_lf(data: bytes) -> bytes:
    """
    Turn CRLF into LF, the way message files are stored, when that can be
    undone exactly by L{to_crlf}.  A CR just before a CRLF (C{"\\r\\r\\n"},
    seen in real spam) would come back one CR short, so such a message is
    kept as it is: BODY[] must return the bytes that were appended.
    """
    if b"\r\r\n" in data:
        return data
    return data.replace(b"\r\n", b"\n")


def crlf_size(data: bytes) -> int:
    """C{len(to_crlf(data))}, without building the copy."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")
