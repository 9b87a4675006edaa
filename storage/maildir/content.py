# -*- test-case-name: tests.storage.maildir.test_maildir_save -*-
"""
Line endings of message files.

MTAs deliver with LF line endings and Dovecot stores APPENDed messages the
same way; IMAP clients see CRLF (RFC 3501 section 2.3.4: RFC822.SIZE is
the size in CRLF form).  Conversion happens here and nowhere else, so that
the size we record (C{,W=}) always equals the length of what we serve
(L{storage.crlf} does the CRLF side for both stores).
"""

from __future__ import annotations

from storage.crlf import crlf_size, lf_chunks, to_crlf

__all__ = ["to_crlf", "to_lf", "crlf_size", "lf_chunks"]


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

