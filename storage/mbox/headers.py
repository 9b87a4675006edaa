# -*- test-case-name: tests.storage.mbox.test_mbox_headers -*-
"""
The header fields in which UW-IMAP and Dovecot keep IMAP state inside an
mbox, and the client's view of a message without them.

 - C{X-IMAPbase: <uidvalidity> <last UID> [keywords...]} on the first
   message (Dovecot, UW-IMAP); UW's pseudo message "DON'T DELETE THIS
   MESSAGE -- FOLDER INTERNAL DATA" carries the same in C{X-IMAP:}.  The
   last UID is written zero-padded to 10 digits so that it can be updated
   in place, and the line ends in L{BASE_PADDING} spaces, so that a
   keyword new to the mailbox is added in place too (readers split the
   keywords on white space).
 - C{X-UID: <uid>} on every message.
 - C{Status:} C{R} = C{\\Seen}, C{O} = old (not C{\\Recent}).
 - C{X-Status:} C{A} C{\\Answered}, C{F} C{\\Flagged}, C{T} C{\\Draft},
   C{D} C{\\Deleted}.
 - C{X-Keywords:} keywords separated by spaces, padded with spaces so
   that flag changes can be written in place.
 - C{Content-Length:} the body's length on disk.

None of these, nor the C{From } line, is ever shown to a client.  A
message APPENDed with such fields of its own (mail once kept in an mbox
often has them) must neither fake our state nor lose bytes: its fields
are stored renamed with the prefix L{ESCAPE} (which other programs show as
an ordinary header) and shown to our clients as they were.  What counts as
one of these fields, and where a header ends, is defined once, in
L{storage.mbox.syntax}, for the writer and the reader alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from storage.crlf import to_crlf
from storage.errors import StoreError
from storage.mbox.reader import HeaderField, RawMessage, header_fields
from storage.mbox.source import body_counts
from storage.mbox.syntax import ESCAPE, META_FIELDS, QUOTED_FROM, unescape_length

__all__ = [
    "META_FIELDS",
    "Meta",
    "read_meta",
    "client_bytes",
    "client_size",
    "unquote_body",
    "unquote_chunks",
    "quote_body",
    "split_flags",
    "flag_lines",
    "base_line",
    "PADDING",
    "BASE_PADDING",
    "ESCAPE",
]

#: The fields that L{flag_lines} writes, which an in-place update replaces.
FLAG_FIELDS = frozenset({b"x-uid", b"status", b"x-status", b"x-keywords"})

#: Spaces after C{X-Keywords:} for flag changes in place (Dovecot pads too).
PADDING = 60
#: Spaces at the end of C{X-IMAPbase:}/C{X-IMAP:} for new keywords in place.
BASE_PADDING = 80

_X_STATUS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}
_X_STATUS_LETTER = {v.lower(): k for k, v in _X_STATUS.items()}
_CANONICAL = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}
_QUOTE = re.compile(rb"(?m)^(>*From )")


@dataclass(slots=True)
class Meta:
    """
    The IMAP state one message's header holds.

    @ivar base: C{(uidvalidity, last_uid, keywords)} from C{X-IMAPbase} or
        C{X-IMAP}, with C{base_field} its field.
    @ivar uid: the C{X-UID} value, or C{None}.
    @ivar old: C{Status} holds C{O}.
    @ivar fields: every metadata field, by lower-case name.
    """

    base: tuple[int, int, tuple[str, ...]] | None = None
    base_field: HeaderField | None = None
    pseudo: bool = False
    uid: int | None = None
    flags: frozenset[str] = frozenset()
    old: bool = False
    fields: dict[bytes, list[HeaderField]] = field(default_factory=dict)
    other_fields: list[HeaderField] = field(default_factory=list)


def _parse_base(value: bytes) -> tuple[int, int, tuple[str, ...]] | None:
    parts = value.decode("utf-8", "replace").split()
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), tuple(parts[2:])


def read_meta(data: bytes, msg: RawMessage) -> Meta:
    """The metadata of C{msg} (whose bytes are in C{data})."""
    meta = Meta()
    flags: set[str] = set()
    for f in header_fields(data, msg.header_start, msg.header_end):
        if f.name not in META_FIELDS:
            meta.other_fields.append(f)
            continue
        meta.fields.setdefault(f.name, []).append(f)
        value = f.value.strip()
        if f.name in (b"x-imapbase", b"x-imap") and meta.base is None:
            meta.base = _parse_base(value)
            if meta.base is not None:
                meta.base_field = f
                meta.pseudo = f.name == b"x-imap"
        elif f.name == b"x-uid" and meta.uid is None:
            if value.isdigit() and 0 < int(value) < 2**32:
                meta.uid = int(value)
        elif f.name == b"status":
            if b"R" in value:
                flags.add("\\Seen")
            if b"O" in value:
                meta.old = True
        elif f.name == b"x-status":
            for letter in value.decode("ascii", "replace"):
                if letter in _X_STATUS:
                    flags.add(_X_STATUS[letter])
        elif f.name == b"x-keywords":
            for word in value.replace(b",", b" ").split():
                flags.add(word.decode("utf-8", "replace"))
    meta.flags = frozenset(flags)
    return meta


def unquote_body(body: bytes) -> bytes:
    """mboxrd: C{>From }, C{>>From }... lose one C{>}."""
    # Only a line starting with one or more ">" then "From " changes, so
    # a body without ">From " anywhere is returned as it is (most are).
    return QUOTED_FROM.sub(rb"\1", body) if b">From " in body else body


def unquote_chunks(chunks):
    """
    L{unquote_body} of the concatenation of C{chunks} (a body, from a line
    start), piece by piece: a piece's last line is held back only while
    its start could still turn out to be C{>+From } (as
    L{storage.mbox.rewrite} quotes a body fed in pieces).
    """
    held = b""
    at_line_start = True
    for chunk in chunks:
        text, held = held + chunk, b""
        if not at_line_start:
            nl = text.find(b"\n") + 1
            if not nl:
                yield text
                continue
            yield text[:nl]
            text, at_line_start = text[nl:], True
        last = text[text.rfind(b"\n") + 1:]
        rest = last.lstrip(b">")
        if last.startswith(b">") and len(rest) < 5 and b"From ".startswith(rest):
            # ">>Fro": not decided until more of the line comes.
            held, text = last, text[:len(text) - len(last)]
        if text:
            yield unquote_body(text)
            at_line_start = text.endswith(b"\n")
    if held:
        yield unquote_body(held)


def quote_body(body: bytes) -> bytes:
    """mboxrd: C{From }, C{>From }... gain one C{>}."""
    return _QUOTE.sub(rb">\1", body) if b"From " in body else body


def _client_header(data: bytes, meta: Meta) -> bytes:
    """
    The header fields the client sees (LF line ends, no blank line): ours
    left out, escaped look-alikes of ours unescaped, mboxrd unquoted.
    """
    parts = [data[f.start + unescape_length(f.name):f.end] for f in meta.other_fields]
    header = unquote_body(b"".join(parts))
    if header and not header.endswith(b"\n"):
        header += b"\n"
    return header


def client_bytes(data: bytes, msg: RawMessage, meta: Meta) -> bytes:
    """
    The message as the client sees it (CRLF line endings): the header
    without the C{From } line and our fields, the blank line, the body
    unquoted (mboxrd).
    """
    header = _client_header(data, meta)
    if msg.body_start > msg.header_end:
        out = header + b"\n" + unquote_body(data[msg.body_start:msg.end])
    else:
        out = header
    return _to_crlf(out)


def client_size(data: bytes, msg: RawMessage, meta: Meta,
                counts: tuple[int, int, int] | None = None) -> int:
    """
    C{len(client_bytes(data, msg, meta))} (RFC822.SIZE), counted without
    building the CRLF copy of the body: every bare LF gains a CR, and each
    mboxrd-quoted C{>From } line loses one C{>} (neither touches the other).

    @param counts: the body's L{storage.mbox.source.body_counts}, if
        counted elsewhere (a streamed parse: C{data} then need not hold
        the body, only the header).
    """
    header = _client_header(data, meta)
    size = len(_to_crlf(header))
    if msg.body_start > msg.header_end:
        # Counted in place: a slice would copy the body (a 40 MB message
        # just appended cost 40 MB more at every parse).  The body starts
        # after an LF, so the pattern's ^ holds at body_start as in a slice.
        start, end = msg.body_start, msg.end
        lf, crlf, quoted = counts if counts is not None else body_counts(data, start, end)
        # The blank line after the header is one more bare LF.
        size += 2 + end - start - quoted + lf - crlf
    return size


# One line-ending conversion for both stores.
_to_crlf = to_crlf


def split_flags(flags) -> tuple[frozenset[str], tuple[str, ...]]:
    """
    Normalise IMAP flags: (system flags, sorted keywords).  C{\\Recent} is
    dropped.

    @raises StoreError: an unknown system flag or a keyword that cannot be
        written into C{X-Keywords}.
    """
    system = set()
    keywords = set()
    for flag in flags:
        if flag.startswith("\\"):
            canonical = _CANONICAL.get(flag.lower())
            if canonical is not None:
                system.add(canonical)
            elif flag.lower() != "\\recent":
                raise StoreError(f"unknown system flag {flag!r}")
        elif flag:
            if any(c <= " " or c in "(){%*\"\\]\x7f" for c in flag):
                raise StoreError(f"keyword {flag!r} cannot be stored")
            keywords.add(flag)
    return frozenset(system), tuple(sorted(keywords))


def flag_lines(uid: int, flags, old: bool, eol: bytes, padding: int = PADDING) -> list[bytes]:
    """
    C{X-UID}, C{Status}, C{X-Status}, C{X-Keywords} lines (in Dovecot's
    order), the last padded with C{padding} spaces.
    """
    system, keywords = split_flags(flags)
    status = ("R" if "\\Seen" in system else "") + ("O" if old else "")
    xstatus = "".join(
        letter for letter, name in _X_STATUS.items() if name in system)
    lines = [b"X-UID: %d" % uid + eol]
    if status:
        lines.append(b"Status: " + status.encode() + eol)
    if xstatus:
        lines.append(b"X-Status: " + xstatus.encode() + eol)
    kw = " ".join(keywords).encode("utf-8")
    lines.append(b"X-Keywords: " + kw + b" " * padding + eol)
    return lines


def base_line(uidvalidity: int, last_uid: int, keywords, eol: bytes, pseudo: bool = False,
              padding: int = BASE_PADDING) -> bytes:
    """
    The C{X-IMAPbase:} (or, in UW's pseudo message, C{X-IMAP:}) line,
    ending in C{padding} spaces.
    """
    name = b"X-IMAP" if pseudo else b"X-IMAPbase"
    return name + b": %d %010d" % (uidvalidity, last_uid) + keyword_words(keywords, padding) + eol


def keyword_words(keywords, padding: int = 0) -> bytes:
    """The keyword part of C{X-IMAPbase:} after the last UID, with padding."""
    return b"".join(b" " + k.encode("utf-8") for k in keywords) + b" " * padding
