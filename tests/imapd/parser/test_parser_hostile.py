"""
Hostile input: the parser answers with ParseError (or nothing yet), and
never raises, never buffers beyond its limits.
"""

from __future__ import annotations

import random

import pytest

from imapd.parser import Command, ContinuationNeeded, ParseError, Parser, ParserLimits

HOSTILE = [
    b"\x00\x00\x00\r\n",
    b"a\x00 NOOP\r\n",
    b"a NOOP\x00\r\n",
    b"a LOGIN \x00 \x00\r\n",
    b"a LOGIN \"\x00\" x\r\n",
    b"a FETCH 99999999999999999999999999999999 FLAGS\r\n",
    b"a FETCH 1:" + b"9" * 10000 + b" FLAGS\r\n",
    b"a SEARCH LARGER " + b"9" * 10000 + b"\r\n",
    b"a STORE 1 (UNCHANGEDSINCE " + b"9" * 10000 + b") FLAGS ()\r\n",
    b"a SEARCH " + b"(" * 5000 + b"\r\n",
    b"a SEARCH " + b")" * 50 + b"\r\n",
    b"a SEARCH " + b"OR " * 5000 + b"ALL\r\n",
    b"a SELECT x (" + b"(" * 5000 + b"\r\n",
    b"a FETCH 1 (" * 100 + b"\r\n",
    b"a FETCH 1 BODY[" + b"1." * 5000 + b"]\r\n",
    b"a LOGIN {999999999999}\r\n",
    b"a LOGIN {999999999999+}\r\n",
    b"a LOGIN {-1}\r\n",
    b"a LOGIN {}\r\n",
    b"a LOGIN {1x}\r\n",
    b"a LOGIN ~{5}\r\nabcde x\r\n",
    b"a LOGIN {5} x\r\n",
    b"a APPEND x ((((\r\n",
    b"a APPEND x ~{1+}\r\n\x00\r\n",
    b"a ID (" + b'"k" "v" ' * 1000 + b")\r\n",
    b"(((((((((\r\n",
    b")))))\r\n",
    b"{5}\r\n",
    b"\xff\xfe\xfd\r\n",
    b"a \xff\r\n",
    b"a UID\r\n",
    b"a UID \r\n",
    b"a SEARCH CHARSET \xff\xff ALL\r\n",
    bytes(range(256)) + b"\r\n",
]


@pytest.mark.parametrize("data", HOSTILE)
def test_hostile(data):
    """Malicious or broken input yields events, never an exception."""
    events = Parser().feed(data)
    for event in events:
        assert isinstance(event, (Command, ParseError, ContinuationNeeded))
        if isinstance(event, ParseError):
            assert event.reason != "Unparseable command"


def test_binary_garbage():
    """Random binary garbage in random chunks never raises."""
    rnd = random.Random(3501)
    p = Parser(ParserLimits(max_line=4096, max_literal=4096))
    for _ in range(300):
        chunk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
        for event in p.feed(chunk):
            assert isinstance(event, (Command, ParseError, ContinuationNeeded))
            if isinstance(event, ParseError) and event.fatal:
                p.reset()


def test_garbage_never_buffers_beyond_limit():
    """Without a line end, a stream of garbage stops at max_line."""
    p = Parser(ParserLimits(max_line=1000))
    events = []
    for _ in range(100):
        events += p.feed(b"x" * 100)
    assert events == [ParseError(None, "Line too long", fatal=True)]
    assert len(p._buf) == 0


def test_many_tiny_literals():
    """A flood of empty literals is bounded by max_literals_per_command."""
    data = b"a ID (" + b'{0+}\r\n "v" ' * 2000 + b")\r\n"
    events = Parser().feed(data)
    assert events == [ParseError("a", "Too many literals", code="LIMIT",
                                 fatal=True)]
