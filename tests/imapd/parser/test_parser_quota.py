"""
Tests for L{imapd.parser.quota}: GETQUOTA, GETQUOTAROOT and SETQUOTA
(RFC 9208 formal syntax), as tables of (raw bytes, expected dataclass).
"""

from __future__ import annotations

import pytest

from imapd.parser import ParseError, Status
from imapd.parser.quota import GetQuota, GetQuotaRoot, SetQuota

VALID = [
    (b'a GETQUOTA ""\r\n', GetQuota("a", b"")),
    (b'a getquota "!partition/sda4"\r\n', GetQuota("a", b"!partition/sda4")),
    (b"a GETQUOTA {11+}\r\n#user/alice\r\n", GetQuota("a", b"#user/alice")),
    (b"a GETQUOTAROOT inbox\r\n", GetQuotaRoot("a", b"INBOX")),
    (b'a GETQUOTAROOT "Sent Items"\r\n', GetQuotaRoot("a", b"Sent Items")),
    (b'a SETQUOTA "" (STORAGE 512)\r\n', SetQuota("a", b"", (("STORAGE", 512),))),
    (b'a SETQUOTA "" (storage 512 Message 1000)\r\n',
     SetQuota("a", b"", (("STORAGE", 512), ("MESSAGE", 1000)))),
    (b'a SETQUOTA "" ()\r\n', SetQuota("a", b"", ())),
    (b'a SETQUOTA x (STORAGE 9223372036854775807)\r\n',
     SetQuota("a", b"x", (("STORAGE", 2 ** 63 - 1),))),
    (b"a STATUS INBOX (DELETED DELETED-STORAGE)\r\n",
     Status("a", b"INBOX", ("DELETED", "DELETED-STORAGE"))),
]


@pytest.mark.parametrize("raw,expected", VALID)
def test_valid(one, raw, expected):
    """Each valid command line parses to exactly the expected dataclass."""
    assert one(raw) == expected


INVALID = [
    (b"a GETQUOTA\r\n", "Expected space, found end of line"),
    (b'a GETQUOTA "" x\r\n', "Unexpected arguments"),
    (b"a GETQUOTAROOT\r\n", "Expected space, found end of line"),
    (b'a SETQUOTA ""\r\n', "Expected space, found end of line"),
    (b'a SETQUOTA "" (STORAGE)\r\n', "Expected space, found ')'"),
    (b'a SETQUOTA "" (STORAGE x)\r\n', "Expected number, found 'x'"),
    (b'a SETQUOTA "" (STORAGE 9223372036854775808)\r\n', "Number too large"),
    (b'a SETQUOTA "" STORAGE 1\r\n', "Expected '(', found 'S'"),
]


@pytest.mark.parametrize("raw,reason", INVALID)
def test_invalid(one, raw, reason):
    """Malformed quota commands give a ParseError with the tag and a precise reason."""
    assert one(raw) == ParseError("a", reason)
