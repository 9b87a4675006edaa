# -*- test-case-name: tests.fuzz.test_fuzz_targets -*-
"""
Fuzz targets: one function per component that takes arbitrary bytes and
checks the component's contract, raising AssertionError (or anything
unexpected) on a bug.  Shared by the short Hypothesis run in CI
(test_fuzz_targets.py) and the long coverage-guided run with atheris
(run_atheris.py), so both check exactly the same properties.

 - L{parser}: the command parser gives only commands, parse errors and
   continuation requests, never raises, and fragmentation never changes
   the outcome.
 - L{message}: the MIME/header parser answers every FETCH item without
   raising and stays self-consistent (tests/imapd/message/test_message_fuzz.py).
 - L{mbox}: the mbox writer and reader round trip: any message appended
   (after one already there, in one file with one after it) reads back as
   the client's bytes (CRLF form), with its UID and exactly its flags, and
   the neighbours are untouched; both the full-rewrite and the in-place
   append path.
 - L{charset}: the charset layer decodes any bytes under any label.
 - L{sasl}: the SASL decoders give a challenge, credentials or SaslError.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "imapd",
                                "message"))

__all__ = ["TARGETS", "SEEDS", "parser", "message", "mbox", "charset", "sasl"]


# -- command parser -----------------------------------------------------

def parser(data: bytes) -> None:
    from imapd.parser import Command, ContinuationNeeded, ParseError, Parser, ParserLimits

    limits = ParserLimits(max_line=512, max_literal=64, max_depth=8,
                          max_literals_per_command=4)
    data = data + b"\r\nz NOOP\r\n"
    whole = Parser(limits).feed(data)
    for event in whole:
        assert isinstance(event, (Command, ParseError, ContinuationNeeded)), event
    # The same bytes in fragments whose sizes come from the data itself.
    p = Parser(limits)
    pieces: list[object] = []
    i = 0
    step = (data[0] % 7) + 1 if data else 1
    while i < len(data):
        pieces += p.feed(data[i:i + step])
        i += step
    assert pieces == whole, data


# -- MIME / header parser ---------------------------------------------------

def message(data: bytes) -> None:
    from test_message_fuzz import _exercise

    _exercise(data)


# -- mbox writer and reader ---------------------------------------------------

_NEIGHBOUR = b"From: n@example.org\r\nSubject: neighbour\r\n\r\nFrom here on\r\n>From there\r\n"
_FLAG_CHOICES = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Forged", "$a")
_DATE = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def _served(data: bytes) -> bytes:
    """What a store serves for APPENDed C{data} (storage.interfaces.IMailbox.read)."""
    from storage.crlf import to_crlf
    from storage.mbox.syntax import split_header

    header, body = split_header(data)
    if data and body is None and not data.endswith(b"\n"):
        # A header whose last line has no line end gets one (RFC 5322 2.2).
        data += b"\r\n"
    return to_crlf(data)


def _check_file(content: bytes, expected: list[tuple[bytes, frozenset]]) -> None:
    from storage.mbox.headers import client_bytes, read_meta
    from storage.mbox.state import parse

    state = parse(content, 1234)
    got = [(e.uid, e.flags) for e in state.entries]
    assert got == [(uid, flags) for uid, (_d, flags) in enumerate(expected, 1)], got
    for e, (data, _f) in zip(state.entries, expected):
        served = client_bytes(content, e.raw, read_meta(content, e.raw))
        assert served == _served(data), (data, served)
        assert e.size == len(served)


def mbox(data: bytes) -> None:
    from storage.mbox.rewrite import Changes, prepare_new, render_all, write_changes
    from storage.mbox.state import parse

    flags = frozenset(f for i, f in enumerate(_FLAG_CHOICES) if data[-1:] and data[-1] >> i & 1)
    if not data:
        return  # APPEND refuses an empty message
    first = prepare_new(_NEIGHBOUR, frozenset({"\\Seen"}), _DATE, "a@example.org")
    fuzzed = prepare_new(data, flags, _DATE, "fuzz@example.org")
    last = prepare_new(_NEIGHBOUR, frozenset(), _DATE, "b@example.org")
    expected = [(_NEIGHBOUR, frozenset({"\\Seen"})), (data, flags), (_NEIGHBOUR, frozenset())]
    # A full rewrite of all three.
    empty = parse(b"", 1234)
    content = render_all(b"", empty, Changes(appends=[first, fuzzed, last]), {}, (1, 2, 3), 3)
    _check_file(content, expected)
    # In place: the first message there, the others appended (an MDA's way).
    fd = os.memfd_create("fuzz-mbox")
    try:
        one = render_all(b"", empty, Changes(appends=[first]), {}, (1,), 1)
        os.write(fd, one)
        state = parse(one, 1234)
        outcome = write_changes(fd, "/nonexistent/fuzz", state,
                                Changes(appends=[fuzzed, last]), fsync=False)
        assert outcome.appended == (2, 3) and not outcome.rewritten
        content = os.pread(fd, 1 << 24, 0)
    finally:
        os.close(fd)
    _check_file(content, expected)


# -- charset layer --------------------------------------------------------

_LABELS = ("utf-8", "iso-8859-1", "us-ascii", "gb2312", "big5", "ks_c_5601-1987",
           "iso-2022-jp", "shift_jis", "utf-7", "unicode-1-1-utf-7", "utf-16", "koi8-r",
           "windows-1252", "x-unknown", "default", "unknown-8bit", "", "bogus\x00")


def charset(data: bytes) -> None:
    from imapd import charset as cs

    label = _LABELS[data[0] % len(_LABELS)] if data else None
    assert isinstance(cs.decode(data, label), str)
    assert isinstance(cs.decode_words(data), str)
    assert isinstance(cs.decode_words(data.decode("latin-1")), str)
    assert isinstance(cs.decode_param(data), str)
    cs.lookup(data)
    cs.lookup(data.decode("latin-1"))


# -- SASL decoders --------------------------------------------------------

def sasl(data: bytes) -> None:
    from imapd.auth.sasl import MECHANISMS, Challenge, Credentials, SaslError

    parts = data.split(b"\n")
    for factory in MECHANISMS.values():
        mech = factory()
        responses = [None] + parts if data[:1] == b"\x00" else parts
        for response in responses:
            try:
                step = mech.step(response)
            except SaslError as e:
                assert isinstance(e.reason, str)
                break
            assert isinstance(step, (Challenge, Credentials)), step
            if isinstance(step, Credentials):
                assert isinstance(step.authcid, (str, bytes))
                break


TARGETS = {"parser": parser, "message": message, "mbox": mbox, "charset": charset,
           "sasl": sasl}

#: A few valid inputs per target to start mutating from.
SEEDS: dict[str, list[bytes]] = {
    "parser": [
        b"a1 LOGIN fred {6+}\r\nsecret",
        b"a9 FETCH 1:*,4 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BINARY[1])",
        b'b9 APPEND Drafts (\\Draft) CATENATE (URL "/Drafts;UIDVALIDITY=5/;UID=2" TEXT {4+}\r\nab\r\n)',
        b"b1 UID SEARCH RETURN (MIN MAX) CHARSET UTF-8 OR (SEEN FROM x) NOT (UID 1:4)",
        b"a5 SELECT INBOX (QRESYNC (1 2 1:5 (1:3 4:6)))",
        b"t THREAD REFERENCES UTF-8 ALL",
    ],
    "message": [
        b"From: \"A, B\" <a@b.example>\r\nSubject: =?utf-8?b?w6k=?=\r\n"
        b"Content-Type: multipart/mixed; boundary=xx\r\n\r\n--xx\r\n"
        b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nx\r\n--xx--\r\n",
    ],
    "mbox": [
        b"Subject: a\r\n\r\nbody\r\n",
        b"X-UID: 1\r\nStatus: RO\r\n\x0bX-Keywords: $Forged\r\n\r\nFrom me\r\n",
        b"Subject: a\r\r\nX-A: b\n\nX-UID: 2\r\n",
        b"Content-Length: 0\r\n\r\n\r\nFrom a Tue Nov 14 22:13:20 2023\r\n",
        b"X-IMAPD-Orig-X-UID: 9\n>From x Tue Nov 14 22:13:20 2023\n\nb",
    ],
    "charset": [b"=?utf-8?q?caf=C3=A9?= =?iso-8859-1?b?6Q==?=", b"utf-8''%C3%A9",
                b"\x1b$B$3\x1b(B"],
    "sasl": [b"\x00fred\x00secret", b"fred\nsecret", b"\x00\nfred\nsecret", b"a\x00b\x00c"],
}
