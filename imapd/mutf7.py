# -*- test-case-name: tests.imapd.test_mutf7 -*-
"""
Modified UTF-7 for mailbox names on the wire (RFC 3501 section 5.1.3).

Printable US-ASCII stands for itself except C{&}, which is written C{&-};
everything else is UTF-16BE in a modified base64 (C{,} instead of C{/}, no
padding) between C{&} and C{-}.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["encode", "decode", "DecodeError"]


class DecodeError(ValueError):
    """The bytes are not valid modified UTF-7."""


def _b64(chars: str) -> bytes:
    raw = chars.encode("utf-16-be")
    return base64.b64encode(raw).rstrip(b"=").replace(b"/", b",")


def encode(name: str) -> bytes:
    """Encode a mailbox name for the wire."""
    out = bytearray()
    pending: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out += b"&" + _b64("".join(pending)) + b"-"
                pending = []
            out += b"&-" if ch == "&" else ch.encode("ascii")
        else:
            pending.append(ch)
    if pending:
        out += b"&" + _b64("".join(pending)) + b"-"
    return bytes(out)


def decode(data: bytes) -> str:
    """
    Decode a wire mailbox name.

    @raises DecodeError: for 8-bit bytes, an unterminated or malformed
        shift sequence, or a shift sequence that encodes only ASCII
        (RFC 3501 requires the shortest form; we accept it but not junk).
    """
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        c = data[i]
        if c > 0x7E or c < 0x20:
            raise DecodeError("mailbox name has a byte outside printable US-ASCII")
        if c != 0x26:  # '&'
            out.append(chr(c))
            i += 1
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise DecodeError("unterminated '&' sequence in mailbox name")
        chunk = data[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(b",", b"/")
            b64 += b"=" * (-len(b64) % 4)
            try:
                raw = base64.b64decode(b64, validate=True)
                out.append(raw.decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError) as e:
                raise DecodeError(f"bad modified UTF-7 in mailbox name: {e}") from e
        i = end + 1
    return "".join(out)
