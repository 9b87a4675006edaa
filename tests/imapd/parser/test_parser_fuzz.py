"""
A deterministic fuzz test (as mox's C{fuzz_test.go}): mutate a corpus of
valid command lines and check that every event is a command, a
ParseError or a ContinuationNeeded, that nothing raises, and that
fragmentation never changes the outcome.
"""

from __future__ import annotations

import random

from imapd.parser import (
    Command, ContinuationNeeded, ParseError, Parser, ParserLimits,
)

CORPUS = [
    b"a1 CAPABILITY\r\n",
    b"a2 LOGIN fred {6+}\r\nsecret\r\n",
    b'a3 LOGIN "fred" "se\\"cret"\r\n',
    b"a4 AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0\r\n",
    b"a5 SELECT INBOX (QRESYNC (1 2 1:5 (1:3 4:6)))\r\n",
    b'a6 LIST "" "%/*"\r\n',
    b"a7 STATUS INBOX (MESSAGES UIDNEXT UNSEEN)\r\n",
    b'a8 APPEND INBOX (\\Seen) " 1-Jan-2020 10:00:00 +0100" {5+}\r\nhello'
    b" ~{3+}\r\na\x00b\r\n",
    b"a9 FETCH 1:*,4 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100>"
    b" BINARY[1] MODSEQ) (CHANGEDSINCE 5)\r\n",
    b"b1 UID SEARCH RETURN (MIN MAX) CHARSET UTF-8 OR (SEEN FROM x)"
    b" NOT (UID 1:4 SINCE 1-Feb-2020) HEADER X-A {2+}\r\nhi\r\n",
    b"b2 STORE 1:3 (UNCHANGEDSINCE 7) +FLAGS.SILENT (\\Deleted $x)\r\n",
    b"b3 UID MOVE $ Trash\r\n",
    b'b4 ID ("name" "x" "version" NIL)\r\n',
    b"b5 ENABLE CONDSTORE QRESYNC\r\n",
    b"b6 UID EXPUNGE 1:5,7\r\n",
    b"b7 RENAME a b\r\n",
    b"b8 SEARCH LARGER 10 SMALLER 20 KEYWORD $a BEFORE \"1-Feb-2020\"\r\n",
    b'b9 APPEND Drafts (\\Draft) CATENATE (URL "/Drafts;UIDVALIDITY=5/;UID=2/;section=1.MIME"'
    b" TEXT {4+}\r\nab\r\n url INBOX/;UID=3 TEXT ~{2+}\r\n\x00x) {3+}\r\nabc\r\n",
]

ALPHABET = b' ()[]<>{}~+-*%$:,."\\\r\n\x000123456789AZaz\xff'


def mutate(rnd: random.Random, data: bytes) -> bytes:
    """Apply a few random byte-level mutations to C{data}."""
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(5)
        i = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:  # delete a run
            del buf[i:i + rnd.randint(1, 4)]
        elif op == 1:  # insert a special byte
            buf[i:i] = bytes([rnd.choice(ALPHABET)])
        elif op == 2 and buf:  # replace a byte
            buf[min(i, len(buf) - 1)] = rnd.randrange(256)
        elif op == 3:  # duplicate a slice
            j = rnd.randrange(len(buf) + 1)
            buf[i:i] = buf[min(i, j):max(i, j)][:50]
        else:  # splice in a piece of another command
            other = rnd.choice(CORPUS)
            k = rnd.randrange(len(other))
            buf[i:i] = other[k:k + rnd.randint(1, 20)]
    return bytes(buf)


def check(events: list[object]) -> None:
    """Every event is of an allowed type, and no grammar bug showed up."""
    for event in events:
        assert isinstance(event, (Command, ParseError, ContinuationNeeded)), \
            event
        if isinstance(event, ParseError):
            assert event.reason != "Unparseable command"


def test_corpus_valid():
    """The unmutated corpus parses to commands only."""
    for line in CORPUS:
        events = Parser().feed(line)
        assert all(isinstance(e, Command) for e in events), (line, events)


def test_fuzz():
    """
    Thousands of mutated lines, fed whole and in random fragments, never
    raise and give the same events either way.
    """
    rnd = random.Random(20261123)
    limits = ParserLimits(max_line=512, max_literal=64, max_depth=8,
                          max_literals_per_command=4)
    for _ in range(4000):
        data = mutate(rnd, rnd.choice(CORPUS)) + b"a NOOP\r\n"
        whole = Parser(limits).feed(data)
        check(whole)
        p = Parser(limits)
        pieces: list[object] = []
        i = 0
        while i < len(data):
            n = rnd.randint(1, 16)
            pieces += p.feed(data[i:i + n])
            i += n
        assert pieces == whole, data
