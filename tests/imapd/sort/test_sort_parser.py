"""
SORT and THREAD command parsing (RFC 5256 section 5, RFC 5957): raw
lines to typed commands, and the malformed ones refused.
"""

import pytest

from imapd.parser.commands import Context, parse_command_args
from imapd.parser.primitives import NotParseable
from imapd.parser.sort import Sort, Thread
from imapd.parser.types import SearchKey


def parse(line: bytes):
    """Parse one command line after its tag."""
    tag, _, rest = line.partition(b" ")
    return parse_command_args(tag.decode(), line + b"\r\n", len(tag) + 1, Context())


@pytest.mark.parametrize("line, expected", [
    (b"a SORT (DATE) UTF-8 ALL",
     Sort("a", (("DATE", False),), "UTF-8", SearchKey("AND", children=(SearchKey("ALL"),)))),
    (b"a sort (reverse date Subject displayfrom) iso-8859-1 ALL",
     Sort("a", (("DATE", True), ("SUBJECT", False), ("DISPLAYFROM", False)), "iso-8859-1",
          SearchKey("AND", children=(SearchKey("ALL"),)))),
    (b"a UID SORT (ARRIVAL) US-ASCII UNSEEN",
     Sort("a", (("ARRIVAL", False),), "US-ASCII",
          SearchKey("AND", children=(SearchKey("UNSEEN"),)), uid=True)),
    (b'a SORT (SIZE) "UTF-8" SUBJECT "x y"',
     Sort("a", (("SIZE", False),), "UTF-8",
          SearchKey("AND", children=(SearchKey("SUBJECT", b"x y"),)))),
    (b"a THREAD REFERENCES UTF-8 ALL",
     Thread("a", "REFERENCES", "UTF-8", SearchKey("AND", children=(SearchKey("ALL"),)))),
    (b"a UID THREAD refs UTF-8 1:5",
     Thread("a", "REFS", "UTF-8", SearchKey("AND", children=(parse(b"a SEARCH 1:5").key.children)),
            uid=True)),
])
def test_parse(line, expected):
    """Well-formed SORT/THREAD lines give the expected typed command."""
    assert parse(line) == expected


@pytest.mark.parametrize("line, opts", [
    (b"a SORT (DATE) UTF-8 ALL", None),
    (b"a SORT RETURN (MIN max Count ALL SAVE) (DATE) UTF-8 ALL",
     ("MIN", "MAX", "COUNT", "ALL", "SAVE")),
    # RFC 4731 section 3.1: RETURN () is RETURN (ALL).
    (b"a UID SORT RETURN () (DATE) UTF-8 ALL", ("ALL",)),
    (b"a sort return (MIN MIN) (DATE) UTF-8 ALL", ("MIN",)),
])
def test_parse_esort_return(line, opts):
    """RFC 5267 section 3: RETURN options before the sort criteria, upper case, once each."""
    cmd = parse(line)
    assert cmd.return_opts == opts
    assert cmd.criteria == (("DATE", False),)
    assert cmd.key == SearchKey("AND", children=(SearchKey("ALL"),))


def test_parse_literal_search_string():
    """A latin-1 search string arrives as a literal, bytes unchanged (SquirrelMail)."""
    cmd = parse(b"a SORT (DATE) ISO-8859-1 SUBJECT {4}\r\ncaf\xe9")
    assert cmd.key.children == (SearchKey("SUBJECT", b"caf\xe9"),)


@pytest.mark.parametrize("line", [
    b"a SORT DATE UTF-8 ALL",
    b"a SORT () UTF-8 ALL",
    b"a SORT (FOO) UTF-8 ALL",
    b"a SORT (REVERSE) UTF-8 ALL",
    b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
    b"a SORT (DATE) UTF-8",
    b"a SORT (DATE)",
    b"a SORT (DATE) ALL",
    b"a THREAD REFERENCES",
    b"a THREAD REFERENCES UTF-8",
    b"a THREAD",
    b"a SORT RETURN (PARTIAL 1:5 ALL) (DATE) UTF-8 ALL",
    b"a SORT RETURN (PARTIAL 0:5) (DATE) UTF-8 ALL",
    b"a SORT RETURN (PARTIAL 1:*) (DATE) UTF-8 ALL",
    b"a SORT RETURN (MIN (DATE) UTF-8 ALL",
    b"a SORT RETURN MIN (DATE) UTF-8 ALL",
    b"a SORT RETURN (MIN) UTF-8 ALL",
    b"a SORT RETURN (MIN)",
    b"a THREAD RETURN (MIN) REFERENCES UTF-8 ALL",
])
def test_parse_errors(line):
    """Malformed lines are refused (BAD), never half-parsed."""
    with pytest.raises(NotParseable):
        parse(line)
