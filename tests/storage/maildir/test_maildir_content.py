"""
Tests for L{storage.maildir.content}: line-ending conversion gives the
bytes the RFC 3501 rules need, on every mix of CR and LF.
"""

from __future__ import annotations

import itertools
import random
import re

from storage.maildir.content import crlf_size, to_crlf, to_lf

_REFERENCE = re.compile(rb"\r?\n")


def reference(data: bytes) -> bytes:
    """The definition: each LF, with at most one CR before it, becomes CRLF."""
    return _REFERENCE.sub(b"\r\n", data)


def test_every_short_mix():
    for n in range(7):
        for parts in itertools.product([b"\r", b"\n", b"a"], repeat=n):
            data = b"".join(parts)
            assert to_crlf(data) == reference(data), data
            assert crlf_size(data) == len(reference(data)), data


def test_random_messages_round_trip():
    rng = random.Random(5)
    for _ in range(300):
        data = bytes(rng.choice(b"\r\n\nab ") for _ in range(rng.randrange(200)))
        assert to_crlf(data) == reference(data)
        crlf = to_crlf(data)
        # What we store (LF, or the bytes as sent) always comes back as sent.
        assert to_crlf(to_lf(crlf)) == crlf


def test_examples():
    assert to_crlf(b"a\nb\r\nc\r\r\nd\re") == b"a\r\nb\r\nc\r\r\nd\re"
    assert to_crlf(b"") == b""
    assert to_crlf(b"no newline") == b"no newline"
