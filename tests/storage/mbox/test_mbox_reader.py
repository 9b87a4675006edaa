# -*- test-case-name: tests.storage.mbox.test_mbox_reader -*-
"""
Splitting mbox bytes into messages (L{storage.mbox.reader}) and reading
separator lines (L{storage.mbox.fromline}): the variants met in practice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from storage.mbox.fromline import is_from_line, make_from_line, parse_from_line
from storage.mbox.headers import client_bytes, read_meta
from storage.mbox.reader import split


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Dates without a zone are local time: pin it."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _texts(data: bytes) -> list[bytes]:
    parts = split(data)
    return [client_bytes(data, m, read_meta(data, m)) for m in parts.messages]


@pytest.mark.parametrize("line, expected", [
    (b"From a@b Tue Nov 14 22:13:20 2023", (2023, 11, 14, 22, 13, 20, 0)),
    (b"From mboxu@vm  Tue Nov 14 22:13:20 2023", (2023, 11, 14, 22, 13, 20, 0)),
    (b"From MAILER-DAEMON Tue Nov  4 22:13 2023", (2023, 11, 4, 22, 13, 0, 0)),
    (b"From a@b Tue Nov 14 22:13:20 2023 +0100", (2023, 11, 14, 22, 13, 20, 3600)),
    (b"From a@b Tue Nov 14 22:13:20 +0100 2023", (2023, 11, 14, 22, 13, 20, 3600)),
    (b"From a@b Tue Nov 14 22:13:20 MET DST 2023", (2023, 11, 14, 22, 13, 20, 0)),
    (b"From  Tue Nov 14 22:13:20 2023", (2023, 11, 14, 22, 13, 20, 0)),
    (b"From Tue Nov 14 22:13:20 2023", (2023, 11, 14, 22, 13, 20, 0)),
    (b"From a@b Tue, Nov 14 22:13:20 98", (1998, 11, 14, 22, 13, 20, 0)),
])
def test_from_line_dates(line, expected):
    """Separator lines with and without sender, seconds, zones."""
    y, mo, d, h, mi, s, offset = expected
    want = datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc).timestamp() - offset
    assert parse_from_line(line).timestamp() == want


@pytest.mark.parametrize("line", [
    b"From here on we talk about it", b"From: a@b", b"Fromage Tue Nov 14 22:13:20 2023",
    b"From a@b", b"",
])
def test_not_from_lines(line):
    """Body lines that start like a separator but carry no date."""
    assert parse_from_line(line) is None


def test_make_from_line_round_trip():
    """What we write reads back with the same date."""
    date = datetime(2024, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    line = make_from_line("user@example.org", date)
    assert line == b"From user@example.org  Sat Feb  3 04:05:06 2024"
    assert parse_from_line(line) == date


def test_plain_lf_file():
    """Two messages, blank line before the separator, LF endings."""
    data = (b"From a@b Tue Nov 14 22:13:20 2023\nSubject: one\n\nbody 1\n\n"
            b"From a@b Tue Nov 14 22:13:21 2023\nSubject: two\n\nbody 2\n\n")
    assert _texts(data) == [b"Subject: one\r\n\r\nbody 1\r\n",
                            b"Subject: two\r\n\r\nbody 2\r\n"]


def test_crlf_file():
    """CRLF files read like LF ones."""
    data = (b"From a@b Tue Nov 14 22:13:20 2023\r\nSubject: one\r\n\r\nbody 1\r\n\r\n"
            b"From a@b Tue Nov 14 22:13:21 2023\r\nSubject: two\r\n\r\nbody 2\r\n")
    assert _texts(data) == [b"Subject: one\r\n\r\nbody 1\r\n",
                            b"Subject: two\r\n\r\nbody 2\r\n"]


def test_no_blank_line_before_separator_and_no_final_newline():
    """A separator without the blank line; a last message without newline."""
    data = (b"From a@b Tue Nov 14 22:13:20 2023\nSubject: one\n\nbody 1\n"
            b"From a@b Tue Nov 14 22:13:21 2023\nSubject: two\n\nno newline")
    assert _texts(data) == [b"Subject: one\r\n\r\nbody 1\r\n",
                            b"Subject: two\r\n\r\nno newline"]


def test_empty_file_and_garbage():
    """Nothing in an empty file; bytes before the first separator are garbage."""
    assert split(b"").messages == ()
    data = b"junk line\nmore\nFrom a@b Tue Nov 14 22:13:20 2023\nSubject: x\n\nb\n"
    parts = split(data)
    assert parts.garbage == (0, 15)
    assert len(parts.messages) == 1
    assert split(b"only garbage\n").garbage == (0, 13)
    assert split(b"only garbage\n").messages == ()


def test_body_from_line_without_date_is_body():
    """An unquoted 'From ' body line without a date does not split."""
    data = (b"From a@b Tue Nov 14 22:13:20 2023\nSubject: x\n\n"
            b"line\n\nFrom here on, it is body\n\n")
    assert _texts(data) == [b"Subject: x\r\n\r\nline\r\n\r\nFrom here on, it is body\r\n"]


def test_mboxrd_and_mboxo_unquoting():
    """>From loses one > (mboxrd and mboxo), >>From becomes >From."""
    data = (b"From a@b Tue Nov 14 22:13:20 2023\nSubject: x\n\n"
            b">From me Tue Nov 14 22:13:20 2023\n>>From you\n> From not quoted\n\n")
    assert _texts(data) == [b"Subject: x\r\n\r\nFrom me Tue Nov 14 22:13:20 2023\r\n"
                            b">From you\r\n> From not quoted\r\n"]


def test_content_length_trusted_only_when_it_points_at_a_separator():
    """
    A right Content-Length keeps a dated unquoted From line in the body; a
    wrong one is ignored and the separator scan decides.
    """
    body = b"a\n\nFrom x Tue Nov 14 22:13:20 2023\nb\n"
    good = (b"From a@b Tue Nov 14 22:13:20 2023\nContent-Length: %d\n\n" % len(body)
            + body + b"\nFrom a@b Tue Nov 14 22:13:21 2023\nSubject: 2\n\n2\n")
    assert _texts(good) == [b"\r\n" + body.replace(b"\n", b"\r\n"),
                            b"Subject: 2\r\n\r\n2\r\n"]
    bad = good.replace(b"Content-Length: %d" % len(body), b"Content-Length: 3")
    assert len(_texts(bad)) == 3


def test_message_without_blank_line():
    """A header-only message followed by another message."""
    data = (b"From a@b Tue Nov 14 22:13:20 2023\nSubject: 1\n"
            b"From a@b Tue Nov 14 22:13:21 2023\nSubject: 2\n\nbody\n")
    assert _texts(data) == [b"Subject: 1\r\n", b"Subject: 2\r\n\r\nbody\r\n"]


def test_metadata_hidden_and_flags_read():
    """Our fields are hidden, folded ones too; flags come from them."""
    data = (b"From a@b Tue Nov 14 22:13:20 2023\nSubject: x\nX-UID: 7\n"
            b"Status: RO\nX-Status: AFTD\nX-Keywords: $Junk\n  other\n"
            b"Content-Length: 5\nX-Other: kept\n\nbody\n")
    msg = split(data).messages[0]
    meta = read_meta(data, msg)
    assert meta.uid == 7 and meta.old
    assert meta.flags == {"\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted",
                          "$Junk", "other"}
    assert client_bytes(data, msg, meta) == b"Subject: x\r\nX-Other: kept\r\n\r\nbody\r\n"


def _corpus_mboxes():
    """Every real message of the shared corpus, as mbox bytes (mboxrd files as they are)."""
    import glob
    import os

    from storage.mbox.headers import quote_body

    root = "/work/shared/corpus"
    for path in sorted(glob.glob(f"{root}/*/*.mbox")):
        with open(path, "rb") as f:
            yield path, f.read()
    files = sorted(glob.glob(f"{root}/*/**/cur/*", recursive=True))
    assert len(files) > 6000
    chunk = []
    for i, path in enumerate(files):
        with open(path, "rb") as f:
            chunk.append(b"From x@y Mon Nov 23 10:00:00 2026\n" + quote_body(f.read()) + b"\n")
        if len(chunk) == 500 or i == len(files) - 1:
            yield path, b"".join(chunk)
            chunk = []
    assert os.path.isdir(root)


AWKWARD = [
    b"From a@b Mon Nov 23 10:00:00 2026\nSubject: x\n\n>From quoted\n>>From twice\nFrom-ish\n",
    b"From a@b Mon Nov 23 10:00:00 2026\r\nSubject: crlf\r\n\r\nbody\r\n\r\nmore\r\n",
    b"From a@b Mon Nov 23 10:00:00 2026\nSubject: mixed\r\n\nbare\nand\r\ncrlf\r\r\n",
    b"From a@b Mon Nov 23 10:00:00 2026\nX-IMAPD-Orig-Status: RO\nSubject: esc\n\n\n",
    b"From a@b Mon Nov 23 10:00:00 2026\n>From header line\nSubject: no body\n",
    b"From a@b Mon Nov 23 10:00:00 2026\n\n>From only body, empty header",
]


def test_client_size_equals_client_bytes_length():
    """
    RFC822.SIZE counted without the CRLF copy equals the length of what
    FETCH BODY[] sends, for every real message of the corpus and odd cases.
    """
    from storage.mbox.headers import client_size

    checked = 0
    for name, data in [("awkward", a) for a in AWKWARD] + list(_corpus_mboxes()):
        for msg in split(data).messages:
            meta = read_meta(data, msg)
            assert client_size(data, msg, meta) == len(client_bytes(data, msg, meta)), name
            checked += 1
    assert checked > 7000


def test_a_from_line_asked_again_is_not_converted_again(monkeypatch, utc):
    """
    An append asks for its own From line and the one before it twice each
    (separator? date?): the conversion through the C library's mktime,
    which re-reads /etc/localtime every time, runs once per line -- and
    again when the zone changes (a tzset), so a cached date is never of
    another zone.
    """
    import time

    from storage.mbox import fromline

    calls = []
    real = time.mktime

    def counting(fields):
        calls.append(fields)
        return real(fields)

    monkeypatch.setattr(fromline.time, "mktime", counting)
    fromline._parse_date.cache_clear()
    line = b"From cache@example.org  Thu Nov 16 12:00:00 2023"
    first = parse_from_line(line)
    assert parse_from_line(line) == first and is_from_line(line)
    assert len(calls) == 1
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    assert parse_from_line(line) == first + timedelta(hours=5)
    assert len(calls) == 2
