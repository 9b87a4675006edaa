"""
Tests for STORE, COPY, MOVE, EXPUNGE and their UID forms (RFC 3501
sections 6.4.3, 6.4.6-6.4.8; RFC 4315 UID EXPUNGE; RFC 6851 MOVE;
RFC 7162 UNCHANGEDSINCE).
"""

from __future__ import annotations

import pytest

from imapd.parser import (
    Copy, Expunge, Move, ParseError, SequenceSet, Store, StoreAction,
)

S1 = SequenceSet(((1, 1),))
R = SequenceSet(((2, 4),))

VALID = [
    (b"a STORE 1 FLAGS (\\Seen)\r\n",
     Store("a", S1, StoreAction("", False, ("\\Seen",)))),
    (b"a STORE 2:4 +FLAGS (\\Deleted $Junk)\r\n",
     Store("a", R, StoreAction("+", False, ("\\Deleted", "$Junk")))),
    (b"a store 2:4 -flags.silent \\Seen \\Flagged\r\n",
     Store("a", R, StoreAction("-", True, ("\\Seen", "\\Flagged")))),
    (b"a STORE 1 FLAGS ()\r\n", Store("a", S1, StoreAction("", False, ()))),
    (b"a STORE 1 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)\r\n",
     Store("a", S1, StoreAction("+", True, ("\\Deleted",), 12121230045))),
    (b"a STORE 1 (UNCHANGEDSINCE 0) FLAGS ()\r\n",
     Store("a", S1, StoreAction("", False, (), 0))),
    (b"a UID STORE 2:4 +FLAGS (\\Answered)\r\n",
     Store("a", R, StoreAction("+", False, ("\\Answered",)), uid=True)),
    (b"a COPY 2:4 MEETING\r\n", Copy("a", R, b"MEETING")),
    (b"a COPY 1 inbox\r\n", Copy("a", S1, b"INBOX")),
    (b'a UID COPY 2:4 "Sent Items"\r\n', Copy("a", R, b"Sent Items", True)),
    (b"a MOVE 2:4 Trash\r\n", Move("a", R, b"Trash")),
    (b"a UID MOVE 1 {5}\r\nTrash\r\n", Move("a", S1, b"Trash", True)),
    (b"a EXPUNGE\r\n", Expunge("a")),
    (b"a UID EXPUNGE 2:4\r\n", Expunge("a", R)),
    (b"a uid expunge 1\r\n", Expunge("a", S1)),
]


@pytest.mark.parametrize("raw,expected", VALID)
def test_valid(one, raw, expected):
    """Valid commands parse to the expected dataclasses."""
    assert one(raw) == expected


INVALID = [
    (b"a STORE 1 FLAGS\r\n", "Expected space, found end of line"),
    (b"a STORE 1 LABELS (x)\r\n", "Invalid STORE item"),
    (b"a STORE 1 *FLAGS (x)\r\n", "Expected atom, found '*'"),
    (b"a STORE 1 FLAGS (\\*)\r\n", "\\* is not a flag"),
    (b"a STORE 1 FLAGS (\\Seen\r\n", "Expected ')', found end of line"),
    (b"a STORE 1 (FOO 1) FLAGS ()\r\n", "Unknown STORE modifier"),
    (b"a STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS ()\r\n",
     "Number too large"),
    (b"a COPY 1\r\n", "Expected space, found end of line"),
    (b"a COPY 0 x\r\n", "Invalid sequence set: 0 is not allowed"),
    (b"a MOVE 1 x y\r\n", "Unexpected arguments"),
    (b"a EXPUNGE 1\r\n", "Unexpected arguments"),
    (b"a UID EXPUNGE\r\n", "Expected space, found end of line"),
]


@pytest.mark.parametrize("raw,reason", INVALID)
def test_invalid(one, raw, reason):
    """Malformed commands are refused with a precise reason."""
    assert one(raw) == ParseError("a", reason)
