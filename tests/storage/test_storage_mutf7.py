# -*- test-case-name: tests.storage.test_storage_mutf7 -*-
"""Tests for L{storage.mutf7}, RFC 3501 section 5.1.3."""

from __future__ import annotations

import pytest

from storage import mutf7


@pytest.mark.parametrize(
    "text, encoded",
    [
        ("Ünïcode", "&ANw-n&AO8-code"),
        ("INBOX", "INBOX"),
        ("a&b", "a&-b"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("😀", "&2D3eAA-"),
        ("", ""),
    ],
)
def test_roundtrip(text, encoded):
    """Known encodings, including RFC 3501's own example, both ways."""
    assert mutf7.encode(text) == encoded
    assert mutf7.decode(encoded) == text


@pytest.mark.parametrize("bad", ["&Jjo", "&AGE-", "&!!-", "a\tb", "&ANw"])
def test_invalid(bad):
    """Unterminated runs, encoded ASCII, bad base64 and controls are refused."""
    with pytest.raises(ValueError):
        mutf7.decode(bad)
