"""
CRLF conversion for both stores.  Message files keep LF line endings (as
MTAs write them); IMAP clients see CRLF (RFC 3501 section 2.3.4, and
RFC822.SIZE counts the CRLF form).
"""

from __future__ import annotations

from typing import BinaryIO, Iterable, Iterator

__all__ = ["to_crlf", "crlf_size", "header_length", "lf_chunks", "crlf_chunks", "cut_chunks"]

#: Octets read at a time by L{lf_chunks}.
CHUNK = 1 << 20


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


def crlf_size(data: bytes) -> int:
    """C{len(to_crlf(data))}, without building the copy."""
    if b"\r" not in data:
        # Nearly every stored message: one scan for CR (memchr) spares
        # the two-byte count, which is the slower half.
        return len(data) + data.count(b"\n")
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def header_length(data: bytes) -> int | None:
    """
    The length of the header block at the start of C{data} (LF, CRLF or
    mixed line endings), including the empty line that ends it (RFC 5322
    section 2.1); C{None} when C{data} has no empty line, as in the first
    bytes of a message read so far.

    After L{to_crlf}, C{data[:n]} is exactly the header block the protocol
    layer's parser finds in the whole converted message: its first empty
    line, whichever ending it has.
    """
    if data.startswith(b"\r\n"):
        return 2
    if data.startswith(b"\n"):
        return 1
    lf = data.find(b"\n\n")
    crlf = data.find(b"\n\r\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 3
    if lf >= 0:
        return lf + 2
    return None


def lf_chunks(file: BinaryIO) -> Iterator[bytes]:
    """
    What C{file} holds from where it stands with CRLF turned into LF, as
    the stores keep messages (L{storage.maildir.content.to_lf}), in chunks
    of about L{CHUNK} octets, never the whole content at once.  The file is
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


def crlf_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """
    L{to_crlf} of the concatenation of C{chunks}, piece by piece: a CR
    that ends a piece waits for the next one, so that no CRLF is split and
    converted twice.
    """
    carry = b""
    for chunk in chunks:
        chunk = carry + chunk
        carry = b""
        if chunk.endswith(b"\r"):
            chunk, carry = chunk[:-1], b"\r"
        if chunk:
            yield to_crlf(chunk)
    if carry:
        yield carry


def cut_chunks(chunks: Iterable[bytes], offset: int = 0,
               length: int | None = None) -> Iterator[bytes]:
    """The octets C{[offset, offset + length)} of the concatenation of C{chunks}."""
    pos = 0
    end = None if length is None else offset + length
    for chunk in chunks:
        start, pos = pos, pos + len(chunk)
        if pos <= offset:
            continue
        if end is not None and start >= end:
            break
        piece = chunk[max(offset - start, 0):None if end is None else end - start]
        if piece:
            yield piece
