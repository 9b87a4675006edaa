"""
Tests for L{imapd.parser.commands}: the commands of any state,
not-authenticated and authenticated state, as tables of
(raw bytes, expected dataclass), like Stalwart's C{parser/create.rs}.
"""

from __future__ import annotations

import pytest

from imapd.parser import (
    Authenticate, Capability, Check, Close, Create, Delete, Enable, Id, Idle,
    List, Login, Logout, Lsub, Namespace, Noop, ParseError, Rename, Select,
    StartTLS, Status, Subscribe, Unselect, Unsubscribe,
)

VALID = [
    (b"a CAPABILITY\r\n", Capability("a")),
    (b"a capability\r\n", Capability("a")),
    (b"A001 NOOP\r\n", Noop("A001")),
    (b"x.1 LOGOUT\r\n", Logout("x.1")),
    (b"t STARTTLS\r\n", StartTLS("t")),
    (b"t CHECK\r\n", Check("t")),
    (b"t CLOSE\r\n", Close("t")),
    (b"t UNSELECT\r\n", Unselect("t")),
    (b"t IDLE\r\n", Idle("t")),
    (b"t NAMESPACE\r\n", Namespace("t")),
    (b"a AUTHENTICATE PLAIN\r\n", Authenticate("a", "PLAIN")),
    (b"a authenticate plain dGVzdAB0ZXN0AHRlc3Q=\r\n",
     Authenticate("a", "PLAIN", b"dGVzdAB0ZXN0AHRlc3Q=")),
    (b"a AUTHENTICATE EXTERNAL =\r\n", Authenticate("a", "EXTERNAL", b"=")),
    (b"a AUTHENTICATE SCRAM-SHA-256\r\n", Authenticate("a", "SCRAM-SHA-256")),
    (b"a LOGIN fred secret\r\n", Login("a", b"fred", b"secret")),
    (b'a LOGIN "fred smith" "p\\"w"\r\n', Login("a", b"fred smith", b'p"w')),
    (b"a LOGIN {4+}\r\nfred {2+}\r\npw\r\n", Login("a", b"fred", b"pw")),
    (b"a ID NIL\r\n", Id("a", None)),
    (b'a ID ("name" "mutt" "version" NIL)\r\n',
     Id("a", ((b"name", b"mutt"), (b"version", None)))),
    (b"a ID ()\r\n", Id("a", ())),
    (b"a ENABLE CONDSTORE utf8=accept\r\n",
     Enable("a", ("CONDSTORE", "UTF8=ACCEPT"))),
    (b"a SELECT INBOX\r\n", Select("a", b"INBOX")),
    (b"a select inbox\r\n", Select("a", b"INBOX")),
    (b'a SELECT "Sent Items"\r\n', Select("a", b"Sent Items")),
    (b"a EXAMINE foo\r\n", Select("a", b"foo", readonly=True)),
    (b"a SELECT INBOX (CONDSTORE)\r\n",
     Select("a", b"INBOX", params=(("CONDSTORE", None),))),
    (b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211))\r\n",
     Select("a", b"INBOX", params=(
         ("QRESYNC", b"(67890007 20050715194045000 41,43:211)"),))),
    (b"a CREATE foo/bar\r\n", Create("a", b"foo/bar")),
    (b"a CREATE &AOk-t&AOk-\r\n", Create("a", b"&AOk-t&AOk-")),
    (b"a DELETE {3}\r\nfoo\r\n", Delete("a", b"foo")),
    (b"a RENAME old new\r\n", Rename("a", b"old", b"new")),
    (b"a RENAME inbox old-inbox\r\n", Rename("a", b"INBOX", b"old-inbox")),
    (b"a SUBSCRIBE foo\r\n", Subscribe("a", b"foo")),
    (b"a UNSUBSCRIBE foo\r\n", Unsubscribe("a", b"foo")),
    (b'a LIST "" *\r\n', List("a", b"", b"*")),
    (b"a LIST ~/Mail/ %\r\n", List("a", b"~/Mail/", b"%")),
    (b'a LIST "" [Gmail]/%\r\n', List("a", b"", b"[Gmail]/%")),
    (b'a LIST "#news." "comp.mail.*"\r\n', List("a", b"#news.", b"comp.mail.*")),
    (b'a LSUB "" foo*\r\n', Lsub("a", b"", b"foo*")),
    (b"a STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
     Status("a", b"blurdybloop", ("UIDNEXT", "MESSAGES"))),
    (b"a status inbox (unseen uidvalidity recent highestmodseq)\r\n",
     Status("a", b"INBOX", ("UNSEEN", "UIDVALIDITY", "RECENT",
                             "HIGHESTMODSEQ"))),
]


@pytest.mark.parametrize("raw,expected", VALID)
def test_valid(one, raw, expected):
    """Each valid command line parses to exactly the expected dataclass."""
    assert one(raw) == expected


INVALID = [
    (b"a FOO\r\n", ParseError("a", "Unknown command FOO")),
    (b"a UID FOO 1\r\n", ParseError("a", "Unknown command UID FOO")),
    (b"a\r\n", ParseError("a", "Missing space after tag")),
    (b"a  NOOP\r\n", ParseError("a", "Missing command")),
    (b"* NOOP\r\n", ParseError(None, "Invalid tag")),
    (b"+ NOOP\r\n", ParseError(None, "Invalid tag")),
    (b"a(b NOOP\r\n", ParseError(None, "Invalid tag")),
    (b"a NOOP x\r\n", ParseError("a", "Unexpected arguments")),
    (b"a LOGIN fred\r\n", ParseError("a", "Expected space, found end of line")),
    (b"a LOGIN fred secret extra\r\n", ParseError("a", "Unexpected arguments")),
    (b"a LOGIN (fred) x\r\n", ParseError("a", "Expected string, found '('")),
    (b"a AUTHENTICATE PLAIN !!!\r\n",
     ParseError("a", "Invalid base64 initial response")),
    (b"a SELECT\r\n", ParseError("a", "Expected space, found end of line")),
    (b"a SELECT INBOX (CONDSTORE\r\n",
     ParseError("a", "Expected ')', found end of line")),
    # RFC 5258 LIST-EXTENDED (imapd.parser.listext).
    (b"a LIST (BOGUS) \"\" *\r\n",
     ParseError("a", "Unknown LIST selection option BOGUS")),
    (b"a LIST \"\" * RETURN (BOGUS)\r\n",
     ParseError("a", "Unknown LIST return option BOGUS")),
    (b"a LIST \"\" * EXTRA (CHILDREN)\r\n",
     ParseError("a", "Expected RETURN, found 'E'")),
    (b"a STATUS INBOX (FOO)\r\n", ParseError("a", "Unknown STATUS item FOO")),
    (b"a STATUS INBOX ()\r\n", ParseError("a", "Empty list")),
    (b"a ENABLE\r\n", ParseError("a", "Expected space, found end of line")),
    (b"a ID (\"name\")\r\n", ParseError("a", "Expected space, found ')'")),
    (b"a NOOP\x00\r\n", ParseError("a", "Invalid command name")),
]


@pytest.mark.parametrize("raw,expected", INVALID)
def test_invalid(one, raw, expected):
    """Malformed commands give a ParseError with the tag and a precise reason."""
    assert one(raw) == expected


def test_command_name_class_attribute(one):
    """The dataclass's C{name} tells the dispatcher which handler to run."""
    assert one(b"a EXAMINE x\r\n").name == "SELECT"
    assert one(b"a LOGIN a b\r\n").name == "LOGIN"


def test_table_covers_every_command():
    """Every command dataclass of the contract has an entry in the table."""
    from imapd.parser import types
    from imapd.parser.commands import COMMANDS

    names = {cls.name for cls in vars(types).values()
             if isinstance(cls, type) and issubclass(cls, types.Command)
             and cls is not types.Command}
    assert names <= {n.decode() for n in COMMANDS}


def test_package_exports():
    """The package re-exports Parser, ParserLimits and the whole contract."""
    import imapd.parser
    from imapd.parser import types

    for name in ["Parser", "ParserLimits", *types.__all__]:
        assert name in imapd.parser.__all__
        assert getattr(imapd.parser, name) is not None
