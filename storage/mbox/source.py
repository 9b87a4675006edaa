# -*- test-case-name: tests.storage.mbox.test_mbox_source -*-
"""
The bytes an mbox parse reads (L{storage.mbox.reader.split},
L{storage.mbox.state.parse}): in memory (L{MemorySource}), or read from the
file in bounded windows (L{FileSource}), so that parsing a large message
just appended, or a large mailbox, costs a window and the headers in
memory, not the size of the file (issue 18: an mbox APPEND of 100 MB once
held a copy of those 100 MB to parse it).

Both offer the few operations the parser needs, with the same answers for
the same bytes; offsets are those of the bytes as a whole (C{0} is the
first byte given).  What is read whole: the ranges L{get} is asked for,
which the parser keeps to separator lines (at most L{MAX_FROM_LINE} octets)
and header blocks.  Bodies are only searched and counted, a window at a
time.
"""

from __future__ import annotations

import os

from storage.crlf import CHUNK
from storage.mbox.syntax import HEADER_END, QUOTED_FROM

__all__ = ["MemorySource", "FileSource", "MAX_FROM_LINE", "body_counts"]

#: The longest line judged as a C{From } separator (without its end of
#: line): real ones are below a hundred octets (RFC 5322 section 2.1.1
#: limits any line to 998).  A longer line is body, for both sources alike:
#: judging it would read an unbounded line whole, and run the date pattern
#: of L{storage.mbox.fromline} over all of it.
MAX_FROM_LINE = 1000


def body_counts(data: bytes, start: int, end: int) -> tuple[int, int, int]:
    """
    C{(LFs, CRLFs, mboxrd-quoted lines)} in C{data[start:end]}, which must
    start at a line start: what a body's size as the client sees it
    depends on (L{storage.mbox.headers.client_size}).  Counted in place,
    without a copy.
    """
    quoted = (len(QUOTED_FROM.findall(data, start, end))
              if data.find(b">From ", start, end) >= 0 else 0)
    return data.count(b"\n", start, end), data.count(b"\r\n", start, end), quoted


class MemorySource:
    """Bytes held in memory."""

    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def get(self, start: int, end: int) -> bytes:
        """C{data[start:end]}."""
        return self.data[max(start, 0):end]

    def find(self, sub: bytes, start: int, end: int) -> int:
        """C{data.find(sub, start, end)}."""
        return self.data.find(sub, start, end)

    def header_end(self, pos: int) -> tuple[int, int] | None:
        """The span of the first L{HEADER_END} match at or after C{pos}."""
        m = HEADER_END.search(self.data, pos)
        return None if m is None else m.span()

    def body_counts(self, start: int, end: int) -> tuple[int, int, int]:
        """L{body_counts} of C{data[start:end]}."""
        return body_counts(self.data, start, end)


class FileSource:
    """
    C{size} bytes of the file open as C{fd}, from file offset C{base},
    read with C{pread} (never mapped: DESIGN.md rule 3) one window of
    about L{CHUNK} octets at a time.
    """

    __slots__ = ("fd", "base", "size", "_off", "_buf")

    def __init__(self, fd: int, base: int, size: int) -> None:
        self.fd, self.base, self.size = fd, base, size
        self._off, self._buf = 0, b""

    def _window(self, start: int, end: int) -> tuple[bytes, int]:
        """C{(buf, off)}: C{buf} holds the bytes from C{off}, at least C{[start, end)}."""
        end = min(end, self.size)
        if not (self._off <= start and end <= self._off + len(self._buf)):
            want = min(max(end, start + CHUNK), self.size) - start
            self._buf = b""  # never two windows at once
            buf = os.pread(self.fd, want, self.base + start)
            while len(buf) < want:
                more = os.pread(self.fd, want - len(buf), self.base + start + len(buf))
                if not more:
                    break
                buf += more
            self._off, self._buf = start, buf
        return self._buf, self._off

    def get(self, start: int, end: int) -> bytes:
        """The bytes C{[start, end)} (fewer at the end)."""
        start = max(start, 0)
        end = min(end, self.size)
        if end <= start:
            return b""
        buf, off = self._window(start, end)
        return buf[start - off:end - off]

    def _ahead(self, pos: int, end: int, need: int) -> tuple[bytes, int, int]:
        """
        C{(buf, off, stop)}: the window's bytes from C{pos} to C{stop}
        (at most C{end}), at least C{need} of them unless C{end} comes
        first.  The window in hand serves as long as it reaches that far
        (a sequential scan reads each window once).
        """
        buf, off = self._window(pos, min(end, pos + need))
        return buf, off, min(end, off + len(buf))

    def find(self, sub: bytes, start: int, end: int) -> int:
        """As C{bytes.find}, a window at a time."""
        end = min(end, self.size)
        pos = max(start, 0)
        while end - pos >= len(sub):
            buf, off, stop = self._ahead(pos, end, len(sub))
            i = buf.find(sub, pos - off, stop - off)
            if i >= 0:
                return i + off
            if stop >= end:
                break
            # An occurrence across the window's end starts in its last octets.
            pos = stop - len(sub) + 1
        return -1

    def header_end(self, pos: int) -> tuple[int, int] | None:
        """As L{MemorySource.header_end}, a window at a time."""
        pos = max(pos, 0)
        while pos < self.size:
            buf, off, stop = self._ahead(pos, self.size, 3)
            # The pattern has no anchor and its two forms differ in their
            # second octet: a match in the window is the file's first
            # from pos, whole.  One cut by the window's end starts in its
            # last two octets, searched again from there.
            m = HEADER_END.search(buf, pos - off, stop - off)
            if m is not None:
                return m.start() + off, m.end() + off
            if stop >= self.size:
                return None
            pos = stop - 2
        return None

    def body_counts(self, start: int, end: int) -> tuple[int, int, int]:
        """
        L{body_counts} of C{[start, end)}, a window at a time.  Each piece
        counted ends after an LF, so no line (and no CRLF) is cut between
        two; a line longer than a whole window is judged by its first
        octets and skipped to its end.
        """
        lf = crlf = quoted = 0
        pos = start
        while pos < end:
            buf, off, stop = self._ahead(pos, end, 1)
            if stop < end and buf.rfind(b"\n", pos - off, stop - off) < 0:
                # The window in hand ends inside this line: one from here.
                buf, off, stop = self._ahead(pos, end, CHUNK)
            if stop < end:
                cut = buf.rfind(b"\n", pos - off, stop - off)
                if cut < 0:
                    # One line longer than a window, from pos (a line start).
                    quoted += self._quoted_at(pos, end)
                    eol = self.find(b"\n", pos, end)
                    if eol < 0:
                        break
                    lf += 1
                    crlf += self.get(eol - 1, eol) == b"\r"
                    pos = eol + 1
                    continue
                stop = cut + 1 + off
            a, b, c = body_counts(buf, pos - off, stop - off)
            lf, crlf, quoted = lf + a, crlf + b, quoted + c
            pos = stop
        return lf, crlf, quoted

    def _quoted_at(self, pos: int, end: int) -> int:
        """1 if the line at C{pos} is C{>+From } quoted (before C{end}), else 0."""
        run = pos
        while run < end:
            chunk = self.get(run, min(end, run + CHUNK))
            rest = len(chunk.lstrip(b">"))
            run += len(chunk) - rest
            if rest:
                break
        return int(run > pos and run + 5 <= end and self.get(run, run + 5) == b"From ")
