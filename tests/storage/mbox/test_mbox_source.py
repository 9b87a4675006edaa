# -*- test-case-name: tests.storage.mbox.test_mbox_source -*-
"""
A parse that reads the file a window at a time (L{storage.mbox.source},
L{storage.mbox.state.parse_file}) gives exactly what a parse of the same
bytes in memory gives, with windows of any size, and holds the headers and
one window in memory, not the bodies (issue 18).
"""

from __future__ import annotations

import os
import tracemalloc

import pytest
from hypothesis import given, settings, strategies as st

import storage.mbox.source as source
from storage.mbox.state import parse, parse_file

from test_mbox_reader import AWKWARD, _corpus_mboxes

FROM = b"From a@b Mon Nov 23 10:00:00 2026"

#: Odd files: lines longer than a window, separators across windows,
#: quoted lines whose '>' run crosses a window, a Content-Length that
#: points past the end, headers without a blank line.
ODD = AWKWARD + [
    FROM + b"\nSubject: long\n\n" + b">" * 50 + b"From x\n" + b"y" * 40 + b"\r\n"
    + b">>From z\r\n" + FROM + b"\n\nnext\n",
    FROM + b"\nContent-Length: 4\n\nabcd\n" + FROM + b"\nContent-Length: 99\n\nab\n",
    FROM + b"\nSubject: no blank\n" + FROM + b"\n\n" + b"x" * 30 + b"\nFrom nobody\n",
    b"garbage first\n" + FROM + b"\n\n\n\n" + FROM + b"\r\n\r\n",
    FROM + b"\n\n" + b"From " + b"z" * 2000 + b" Mon Nov 23 10:00:00 2026\n" + FROM + b"\n\n",
    FROM + b"\nX-IMAPbase: 17 0000000003 kw\nX-UID: 2\n\n" + b">" * 90 + b"\n",
]


def _parse_file(tmp_path, data: bytes, start: int = 0, previous=None):
    path = tmp_path / "box"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return parse_file(fd, start, len(data), 7, None, previous)
    finally:
        os.close(fd)


@pytest.mark.parametrize("window", [5, 16, 64, 1 << 20])
def test_file_parse_equals_memory_parse(tmp_path, monkeypatch, window):
    """
    Every real mbox and every odd case parses the same from the file, with
    windows down to a few octets (every boundary case of the windowed
    searches and counts is met), as from memory.
    """
    monkeypatch.setattr(source, "CHUNK", window)
    cases = ODD + ([data for _, data in _corpus_mboxes()] if window >= 64 else [])
    for data in cases:
        assert _parse_file(tmp_path, data) == parse(data, 7), data[:80]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    FROM + b"\n", b"From x\n", b">From y\n", b">>>From ", b"\r\n", b"\n", b"Subject: s\n",
    b"Content-Length: 3\n", b"X-UID: 4\n", b"abc", b"\r", b">", b"X-IMAPbase: 9 0000000009\n",
]), max_size=40), st.sampled_from([3, 5, 11]))
def test_file_parse_equals_memory_parse_fuzzed(tmp_path_factory, data, window):
    """The same for files made of the pieces separators and counts care about."""
    source.CHUNK, saved = window, source.CHUNK
    try:
        blob = b"".join(data)
        assert _parse_file(tmp_path_factory.mktemp("f"), blob) == parse(blob, 7)
    finally:
        source.CHUNK = saved


def test_incremental_file_parse(tmp_path):
    """A parse of the tail after an earlier state equals the memory parse of that tail."""
    first = FROM + b"\nX-IMAPbase: 17 0000000001\nX-UID: 1\n\none\n"
    data = first + b"\n" + FROM + b"\nSubject: two\n\n>From two\n"
    old = parse(first, 7)
    start = old.entries[-1].raw.start
    assert (_parse_file(tmp_path, data, start, old)
            == parse(data[start:], 7, base=start, previous=old))


def test_parse_of_a_large_body_holds_a_window(tmp_path):
    """
    Parsing a file with a 64 MB body allocates a few MB at most (one
    window and the headers), and counts the body right: its size as the
    client sees it has a CR more per LF and a '>' less per quoted line.
    """
    lines = 64 * 1024 * 1024 // 64
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.write(FROM + b"\nSubject: big\n\n")
        line = b"x" * 63 + b"\n"
        block = line * 1023 + b">From here\n"
        for _ in range(lines // 1024):
            f.write(block)
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    tracemalloc.start()
    try:
        state = parse_file(fd, 0, size, 7)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        os.close(fd)
    assert peak < 4 * source.CHUNK, peak
    body = size - len(FROM) - len(b"\nSubject: big\n\n")
    quoted = lines // 1024
    assert state.entries[0].size == len(b"Subject: big\r\n\r\n") + body + lines - quoted


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([
    b"\n", b"\r\n", b"\r", b">", b">>From ", b">From x", b"From ", b"abc", b"\n\r\n", b"\n\n",
]), max_size=60), st.lists(st.integers(0, 200), min_size=1, max_size=12),
    st.sampled_from([3, 4, 5, 7]))
def test_file_source_answers_as_memory(tmp_path_factory, pieces, positions, window):
    """
    Each operation of a file source, in any order of calls (the window in
    hand moves with them), answers as the memory source does, with windows
    of a few octets: searches across window ends, CRLFs and quoted lines
    cut by them, lines longer than a window.
    """
    data = b"".join(pieces)
    path = tmp_path_factory.mktemp("s") / "f"
    path.write_bytes(data)
    source.CHUNK, saved = window, source.CHUNK
    fd = os.open(path, os.O_RDONLY)
    try:
        mem, fil = source.MemorySource(data), source.FileSource(fd, 0, len(data))
        starts = [0] + [i + 1 for i, c in enumerate(data) if c == 10]
        for p in positions:
            q = min(p, len(data))
            assert fil.header_end(q) == mem.header_end(q), (data, q)
            for sub in (b"\nFrom ", b"\n"):
                assert fil.find(sub, q, len(data)) == mem.find(sub, q, len(data)), (data, q, sub)
            assert fil.get(q, q + 9) == mem.get(q, q + 9)
            line = starts[p % len(starts)]
            for end in (len(data), max(line, len(data) - p % 7)):
                assert fil.body_counts(line, end) == mem.body_counts(line, end), (data, line, end)
    finally:
        source.CHUNK = saved
        os.close(fd)
