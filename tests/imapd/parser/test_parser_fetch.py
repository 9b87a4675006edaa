"""
Tests for FETCH and UID FETCH (L{imapd.parser.fetchatt} and the FETCH
entry of L{imapd.parser.commands}): RFC 3501 section 6.4.5, RFC 3516
BINARY, RFC 7162 CHANGEDSINCE.
"""

from __future__ import annotations

import pytest

from imapd.parser import Fetch, FetchAttr, ParseError, Section, SequenceSet
from imapd.parser.fetchatt import MACROS

S1 = SequenceSet(((1, 1),))
ALL = SequenceSet(((1, None),))


def F(seq, *attrs, uid=False, changedsince=None, vanished=False):
    """Shorthand for an expected L{Fetch}."""
    return Fetch("a", seq, attrs, uid, changedsince, vanished)


VALID = [
    (b"a FETCH 1 FLAGS\r\n", F(S1, FetchAttr("FLAGS"))),
    (b"a fetch 1:* (flags uid)\r\n",
     F(ALL, FetchAttr("FLAGS"), FetchAttr("UID"))),
    (b"a FETCH 1 ALL\r\n", F(S1, *MACROS[b"ALL"])),
    (b"a FETCH 1 fast\r\n", F(S1, *MACROS[b"FAST"])),
    (b"a FETCH 1 FULL\r\n", F(S1, *MACROS[b"FULL"])),
    (b"a FETCH 1 (ENVELOPE INTERNALDATE RFC822.SIZE BODYSTRUCTURE BODY)\r\n",
     F(S1, FetchAttr("ENVELOPE"), FetchAttr("INTERNALDATE"),
       FetchAttr("RFC822.SIZE"), FetchAttr("BODYSTRUCTURE"),
       FetchAttr("BODY"))),
    (b"a FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT)\r\n",
     F(S1, FetchAttr("RFC822"), FetchAttr("RFC822.HEADER"),
       FetchAttr("RFC822.TEXT"))),
    (b"a FETCH 1 BODY[]\r\n", F(S1, FetchAttr("BODY", Section()))),
    (b"a FETCH 1 BODY.PEEK[]\r\n",
     F(S1, FetchAttr("BODY", Section(), peek=True))),
    (b"a FETCH 1 BODY[]<0.1024>\r\n",
     F(S1, FetchAttr("BODY", Section(), (0, 1024)))),
    (b"a FETCH 1 BODY[HEADER]\r\n",
     F(S1, FetchAttr("BODY", Section((), "HEADER")))),
    (b"a FETCH 1 body[text]\r\n",
     F(S1, FetchAttr("BODY", Section((), "TEXT")))),
    (b"a FETCH 1 BODY[1.2.3]\r\n",
     F(S1, FetchAttr("BODY", Section((1, 2, 3))))),
    (b"a FETCH 1 BODY[1.2.MIME]\r\n",
     F(S1, FetchAttr("BODY", Section((1, 2), "MIME")))),
    (b"a FETCH 1 BODY[2.HEADER]\r\n",
     F(S1, FetchAttr("BODY", Section((2,), "HEADER")))),
    (b"a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To Subject)])\r\n",
     F(S1, FetchAttr("BODY", Section((), "HEADER.FIELDS",
                                     (b"From", b"To", b"Subject")),
                     peek=True))),
    (b'a FETCH 1 BODY[1.HEADER.FIELDS.NOT ("X-Spam" {4}\r\nDate)]<5.10>\r\n',
     F(S1, FetchAttr("BODY", Section((1,), "HEADER.FIELDS.NOT",
                                     (b"X-Spam", b"Date")), (5, 10)))),
    (b"a FETCH 1 BINARY[]\r\n", F(S1, FetchAttr("BINARY", Section()))),
    (b"a FETCH 1 BINARY.PEEK[1.2]<0.10>\r\n",
     F(S1, FetchAttr("BINARY", Section((1, 2)), (0, 10), peek=True))),
    (b"a FETCH 1 BINARY.SIZE[1]\r\n",
     F(S1, FetchAttr("BINARY.SIZE", Section((1,))))),
    (b"a FETCH 1 (FLAGS MODSEQ) (CHANGEDSINCE 12345)\r\n",
     F(S1, FetchAttr("FLAGS"), FetchAttr("MODSEQ"), changedsince=12345)),
    (b"a FETCH 1 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
     F(S1, FetchAttr("FLAGS"), changedsince=12345, vanished=True)),
    (b"a FETCH 1 (FLAGS) (vanished changedsince 7)\r\n",
     F(S1, FetchAttr("FLAGS"), changedsince=7, vanished=True)),
    # RFC 8514 SAVEDATE; RFC 8970 PREVIEW and PREVIEW (LAZY), also bare
    # and before FETCH modifiers.
    (b"a FETCH 1 (UID SAVEDATE preview (lazy) PREVIEW)\r\n",
     F(S1, FetchAttr("UID"), FetchAttr("SAVEDATE"), FetchAttr("PREVIEW", lazy=True),
       FetchAttr("PREVIEW"))),
    (b"a FETCH 1 PREVIEW (LAZY)\r\n", F(S1, FetchAttr("PREVIEW", lazy=True))),
    (b"a FETCH 1 PREVIEW (CHANGEDSINCE 5)\r\n",
     F(S1, FetchAttr("PREVIEW"), changedsince=5)),
    (b"a UID FETCH 1:* FLAGS\r\n", F(ALL, FetchAttr("FLAGS"), uid=True)),
    (b"a uid fetch $ UID\r\n",
     F(SequenceSet((), saved=True), FetchAttr("UID"), uid=True)),
]


@pytest.mark.parametrize("raw,expected", VALID)
def test_valid(one, raw, expected):
    """Valid FETCH commands parse to the expected attributes."""
    assert one(raw) == expected


INVALID = [
    (b"a FETCH 1\r\n", "Expected space, found end of line"),
    (b"a FETCH 0 FLAGS\r\n", "Invalid sequence set: 0 is not allowed"),
    (b"a FETCH x FLAGS\r\n", "Invalid sequence set"),
    (b"a FETCH 1 FOO\r\n", "Unknown FETCH item FOO"),
    (b"a FETCH 1 (FLAGS ALL)\r\n", "Unknown FETCH item ALL"),
    (b"a FETCH 1 ()\r\n", "Empty list"),
    (b"a FETCH 1 (FLAGS\r\n", "Expected ')', found end of line"),
    (b"a FETCH 1 BODY[\r\n", "Invalid section"),
    (b"a FETCH 1 BODY[FOO]\r\n", "Invalid section"),
    (b"a FETCH 1 BODY[MIME]\r\n", "Invalid section"),
    (b"a FETCH 1 BODY[0]\r\n", "Invalid section part number"),
    (b"a FETCH 1 BODY[1.]\r\n", "Invalid section"),
    (b"a FETCH 1 BODY[HEADER.FIELDS]\r\n", "Expected header list"),
    (b"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", "Empty list"),
    (b"a FETCH 1 BODY[]<0.0>\r\n", "Invalid partial"),
    (b"a FETCH 1 BODY[]<1>\r\n", "Invalid partial"),
    (b"a FETCH 1 BODY.PEEK\r\n", "Expected '[' after BODY.PEEK"),
    (b"a FETCH 1 BINARY[HEADER]\r\n", "Invalid BINARY section"),
    (b"a FETCH 1 (PREVIEW (FUZZY))\r\n", "Expected FETCH item, found '('"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 0)\r\n", "Expected non-zero number"),
    (b"a FETCH 1 FLAGS (VANISHED)\r\n", "VANISHED requires CHANGEDSINCE"),
    (b"a FETCH 1 FLAGS (FOO 1)\r\n", "Unknown FETCH modifier"),
    (b"a FETCH 1 FLAGS (VANISHED VANISHED)\r\n", "Unknown FETCH modifier"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 1\r\n", "Expected ')', found end of line"),
]


@pytest.mark.parametrize("raw,reason", INVALID)
def test_invalid(one, raw, reason):
    """Malformed FETCH commands are refused with a precise reason."""
    assert one(raw) == ParseError("a", reason)
