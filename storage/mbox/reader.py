# -*- test-case-name: tests.storage.mbox.test_mbox_reader -*-
"""
Splitting an mbox file into messages, without I/O: L{split} is given the
bytes (the whole file, or its tail for an incremental sync) and returns the
byte spans of each message.

Every variant met in practice is read:

 - separator lines with or without a sender and with various date forms
   (L{storage.mbox.fromline});
 - the blank line before a separator belongs to the separator, not to the
   message; a message without it ends at the separator line;
 - C{Content-Length:} is trusted only when it points exactly at the blank
   line before the next separator (or at the end of the file), so that
   unquoted C{From } lines inside such bodies stay body;
 - LF and CRLF files (also mixed: each line is judged on its own);
 - a final message without a trailing newline, an empty file;
 - bytes before the first separator (left by a broken program) are
   reported as C{garbage} and kept by every rewrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storage.mbox.fromline import is_from_line
from storage.mbox.source import MAX_FROM_LINE, MemorySource
from storage.mbox.syntax import field_name

__all__ = ["RawMessage", "Split", "split", "split_source", "header_fields", "HeaderField"]

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d{1,12})[ \t]*\r?$")


@dataclass(frozen=True, slots=True)
class RawMessage:
    """
    Byte offsets of one message in the file (absolute).

    @ivar start: the C{From } line.
    @ivar header_start: just after the C{From } line.
    @ivar header_end: the end of the last header line (the blank line
        starts here); equals C{end} if the message has no body.
    @ivar body_start: just after the blank line.
    @ivar end: the end of the message's content, before the separating
        blank line.
    @ivar next: where the next message (or the end of the file) starts.
    @ivar from_line: the separator line, without its end of line.
    @ivar crlf: whether the separator line ends in CRLF (our own header
        lines are then written with CRLF too).
    """

    start: int
    header_start: int
    header_end: int
    body_start: int
    end: int
    next: int
    from_line: bytes
    crlf: bool


@dataclass(frozen=True, slots=True)
class Split:
    """The result of L{split}: C{garbage} is a C{(start, end)} span."""

    messages: tuple[RawMessage, ...]
    garbage: tuple[int, int] | None


def _separator_at(src, pos: int) -> bool:
    """Whether a valid C{From } line starts at C{pos} (one of L{MAX_FROM_LINE} at most)."""
    head = src.get(pos, pos + MAX_FROM_LINE + 2)
    if not head.startswith(b"From "):
        return False
    eol = head.find(b"\n")
    if eol < 0:
        if pos + len(head) < src.size:
            return False  # longer than any separator
        eol = len(head)
    line = head[:eol].rstrip(b"\r")
    return len(line) <= MAX_FROM_LINE and is_from_line(line)


def _find_separator(src, pos: int, limit: int) -> int:
    """The offset of the next separator line after C{pos}, or C{-1}."""
    while True:
        i = src.find(b"\nFrom ", pos, limit)
        if i < 0:
            return -1
        if _separator_at(src, i + 1):
            return i + 1
        pos = i + 1


def _content_end(src, sep: int) -> int:
    """
    Where the content of the message before the separator at C{sep} ends:
    the blank line before a separator is not part of the message.
    """
    before = src.get(sep - 3, sep)
    if before.endswith(b"\n\r\n") and sep >= 3:
        return sep - 2
    if before.endswith(b"\n\n"):
        return sep - 1
    return sep


def _trailing_end(src, start: int, end: int) -> int:
    """The end of the file's last message: drop a final separator blank line."""
    last = src.get(max(start, end - 3), end)
    if end - start >= 3 and last.endswith(b"\n\r\n"):
        return end - 2
    if end - start >= 2 and last.endswith(b"\n\n"):
        return end - 1
    return end


def split(data: bytes, base: int = 0) -> Split:
    """
    Split C{data} into messages.

    @param base: the file offset of C{data[0]} (for an incremental parse
        that reads only the tail of the file).
    """
    return split_source(MemorySource(data), base)


def split_source(src, base: int = 0) -> Split:
    """
    L{split} of the bytes of a L{storage.mbox.source} source: in memory,
    or read from the file a window at a time (only separator lines and
    headers are read whole).
    """
    size = src.size
    messages: list[RawMessage] = []
    garbage = None
    pos = 0
    if size and not _separator_at(src, 0):
        first = _find_separator(src, 0, size)
        end = size if first < 0 else first
        garbage = (base, base + end)
        pos = end
    while pos < size:
        # pos is a separator line (checked), at most MAX_FROM_LINE long.
        head = src.get(pos, pos + MAX_FROM_LINE + 2)
        eol = head.find(b"\n")
        if eol < 0:
            line_end = header_start = size
            from_line = head
        else:
            line_end, header_start = pos + eol, pos + eol + 1
            from_line = head[:eol]
        crlf = from_line.endswith(b"\r")
        from_line = from_line.rstrip(b"\r")
        # The header ends at the first empty line (the From line's own
        # newline may precede it: an empty header).
        m = src.header_end(header_start - 1) if header_start <= size else None
        if m is not None:
            header_end, body_start = m[0] + 1, m[1]
            limit = m[0] + 6
        else:
            header_end = body_start = limit = size
        sep = None
        inside = _find_separator(src, header_start - 1, limit) if header_start < size else -1
        if inside >= 0:
            # A separator before the header ended: a message with no blank
            # line and no body.
            header_end = body_start = sep = inside
        trusted = None
        if sep is None:
            trusted = _trusted_length(src, header_start, header_end, body_start)
        if trusted is not None:
            end, nxt = trusted
        else:
            if sep is None:
                found = _find_separator(src, max(body_start - 1, header_start), size)
                sep = size if found < 0 else found
            if sep >= size:
                end = _trailing_end(src, header_start, size)
                nxt = size
            else:
                end = max(_content_end(src, sep), header_start)
                nxt = sep
        header_end = min(header_end, end)
        body_start = min(body_start, end)
        messages.append(RawMessage(
            base + pos, base + header_start, base + header_end, base + body_start,
            base + end, base + nxt, from_line, crlf))
        pos = nxt
    return Split(tuple(messages), garbage)


def _trusted_length(src, header_start: int, header_end: int, body_start: int):
    """
    C{(end, next)} according to C{Content-Length:}, or C{None} if the
    header has none or it does not point at a separator.
    """
    m = _CONTENT_LENGTH.search(src.get(header_start, header_end))
    if m is None:
        return None
    target = body_start + int(m.group(1))
    size = src.size
    if target == size or (target < size and size - target <= 2
                          and src.get(target, size) in (b"\n", b"\r\n")):
        return target, size
    after = src.get(target, target + 2)
    for blank in (b"\n", b"\r\n"):
        if after.startswith(blank) and _separator_at(src, target + len(blank)):
            return target, target + len(blank)
    return None


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One logical header field (with its continuation lines)."""

    name: bytes  # lower-cased
    value: bytes  # unfolded-ish: raw value without the final end of line
    start: int
    end: int  # after the field's last end of line


def header_fields(data: bytes, start: int, end: int) -> list[HeaderField]:
    """
    The header fields in C{data[start:end]}, with absolute spans, named by
    L{storage.mbox.syntax.field_name} (the writer's definition).
    """
    fields: list[HeaderField] = []
    pos = start
    while pos < end:
        eol = data.find(b"\n", pos, end)
        line_end = end if eol < 0 else eol + 1
        line = data[pos:line_end]
        if line[:1] in (b" ", b"\t") and fields:
            last = fields[-1]
            fields[-1] = HeaderField(last.name, data[last.start:line_end].split(b":", 1)[-1]
                                     .rstrip(b"\r\n"), last.start, line_end)
        else:
            name = field_name(line)
            if name is not None:
                fields.append(HeaderField(name, line.partition(b":")[2].rstrip(b"\r\n"),
                                          pos, line_end))
            else:
                fields.append(HeaderField(b"", b"", pos, line_end))
        pos = line_end
    return fields
