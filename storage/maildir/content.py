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

from storage.crlf import crlf_size, to_crlf

from typing import BinaryIO, Iterator

__all__ = ["to_crlf", "to_lf", "crlf_size", "lf_chunks"]

#: Octets read at a time by L{lf_chunks}.
CHUNK = 1 << 20


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


def lf_chunks(file: BinaryIO) -> Iterator[bytes]:
    """
    L{to_lf} of what C{file} holds from where it stands, in chunks of
    about L{CHUNK} octets, never the whole content at once.  The file is
    read twice: once for C{"\\r\\r\\n"}, which keeps the content as it is.
    A chunk never ends in a CR but the last, so no CRLF is split between
    two and L{crlf_size} of each chunk adds up to that of the whole.
    """
    start = file.tell()
    keep = False
    tail = b""
    while not keep:
        chunk = file.read(CHUNK)
        if not chunk:
            break
        keep = b"\r\r\n" in tail + chunk
        tail = (tail + chunk)[-2:]
    file.seek(start)
    carry = b""
    while True:
        chunk = file.read(CHUNK)
        if not chunk:
            break
        chunk = carry + chunk
        carry = b""
        if chunk.endswith(b"\r"):
            chunk, carry = chunk[:-1], b"\r"
        yield chunk if keep else chunk.replace(b"\r\n", b"\n")
    if carry:
        yield carry
