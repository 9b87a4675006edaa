# -*- test-case-name: tests.storage.test_storage_mutf7 -*-
"""
Modified UTF-7 (RFC 3501 section 5.1.3), the encoding Dovecot uses for
folder names on disk (C{.&ANw-n&AO8-code} is "Ünïcode") and in the
C{subscriptions} file.

Kept in C{storage} because the on-disk names are a store concern; the wire
encoding of mailbox names is the protocol layer's business (DESIGN.md
"Protocol scope"), even though the two happen to be the same codec.
"""

from __future__ import annotations

import base64
import re

__all__ = ["encode", "decode"]


def _b64(chunk: str) -> str:
    raw = chunk.encode("utf-16-be")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    """
    Encode a Unicode name as modified UTF-7.

    @param name: the name.
    @return: printable US-ASCII, with C{&} written as C{&-} and every
        other character outside 0x20..0x7e in a C{&...-} base64 run.
    """
    out: list[str] = []
    pending: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out.append("&" + _b64("".join(pending)) + "-")
                pending = []
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    if pending:
        out.append("&" + _b64("".join(pending)) + "-")
    return "".join(out)


_RUN = re.compile(r"&([^-]*)-")


def decode(text: str) -> str:
    """
    Decode modified UTF-7.

    @raises ValueError: C{text} is not valid modified UTF-7 (bad base64,
        an unterminated C{&} run, or a non-printable character).
    """
    out: list[str] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise ValueError(f"not modified UTF-7: {text!r}")
        if ch != "&":
            out.append(ch)
            pos += 1
            continue
        m = _RUN.match(text, pos)
        if m is None:
            raise ValueError(f"unterminated '&' run in {text!r}")
        run = m.group(1)
        if run == "":
            out.append("&")
        else:
            if not re.fullmatch(r"[A-Za-z0-9+,]+", run):
                raise ValueError(f"bad base64 in {text!r}")
            b64 = run.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                raw = base64.b64decode(b64, validate=True)
                decoded = raw.decode("utf-16-be")
            except (ValueError, UnicodeDecodeError) as e:
                raise ValueError(f"bad modified UTF-7 in {text!r}: {e}") from None
            # RFC 3501: printable ASCII must not be base64-encoded; reject it
            # so that every name has exactly one encoding on disk.
            if any(0x20 <= ord(c) <= 0x7E for c in decoded):
                raise ValueError(f"non-canonical modified UTF-7 in {text!r}")
            out.append(decoded)
        pos = m.end()
    return "".join(out)
