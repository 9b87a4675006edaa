# -*- test-case-name: tests.imapd.message.test_message_structure -*-
"""
The MIME tree of a message as byte ranges (RFC 2045, RFC 2046), and its
RFC 3501 section 7.4.2 BODY / BODYSTRUCTURE and ENVELOPE encodings.

A L{Part} never copies the message: it records where its header starts,
where its body starts and where it ends.  Multipart bodies are split with
C{bytes.find} on the boundary; message/rfc822 bodies are parsed as a
message of their own.  The sizes written into BODYSTRUCTURE are these
byte ranges, so they agree with BODY[section] by construction.
"""

from __future__ import annotations

import re

from imapd.message._address import Address, parse_addresses
from imapd.message._decode import normalize_cte
from imapd.message._headers import (
    Header,
    cte_value,
    header_end,
    parse_content_type,
    parse_disposition,
    unfold,
)
from imapd.wire import NIL, plist
from imapd.wire import string as _wire_string


__all__ = ["Part", "parse_message", "envelope", "bodystructure"]

def string(value: bytes) -> bytes:
    """
    L{imapd.wire.string}, except that NUL bytes become 0x80: RFC 3501
    section 9 allows no NUL in a literal (CHAR8), and a header may hold
    one.  Dovecot's header parser makes the same substitution.
    """
    if b"\x00" in value:
        value = value.replace(b"\x00", b"\x80")
    return _wire_string(value)


def nstring(value: bytes | None) -> bytes:
    """L{string}, or NIL for C{None}."""
    return NIL if value is None else string(value)


# Dovecot (message-parser.c) stops descending after 100 nested MIME parts
# and parses at most 10000 parts per message; deeper or further parts are
# kept as opaque bodies so hostile input cannot exhaust the stack.
MAX_DEPTH = 100
MAX_PARTS = 10000


class Part:
    """
    One MIME entity of a message, by offsets into the message bytes.

    @ivar raw: the whole message.
    @ivar start: offset of the entity's header.
    @ivar body_start: offset of its body (just after the empty line).
    @ivar end: offset just after its body.
    @ivar ctype: lowercased C{(type, subtype)} used for decisions.
    @ivar children: sub-parts of a multipart (never empty for a multipart).
    @ivar message: for message/rfc822, the encapsulated message's root.
    """

    __slots__ = ("raw", "start", "body_start", "end", "header", "ctype",
                 "content_type", "children", "message")

    def __init__(self, raw: bytes, start: int, end: int,
                 default: tuple[bytes, bytes] = (b"text", b"plain")) -> None:
        self.raw = raw
        self.start = start
        self.end = end
        self.body_start = header_end(raw, start, end)
        self.header = Header(raw, start, self.body_start)
        ct = parse_content_type(self.header.first(b"content-type"))
        if ct is None:
            # RFC 2045 section 5.2 (and RFC 2046 section 5.1.5 for digests).
            if default == (b"message", b"rfc822"):
                ct = (b"message", b"rfc822", [])
            else:
                ct = (b"text", b"plain", [(b"charset", b"us-ascii")])
        self.content_type = ct
        self.ctype = (ct[0].lower(), ct[1].lower())
        self.children: list[Part] = []
        self.message: Part | None = None

    @property
    def body(self) -> bytes:
        return self.raw[self.body_start:self.end]

    def param(self, name: bytes) -> bytes | None:
        for key, value in self.content_type[2]:
            if key.lower() == name:
                return value
        return None

    def numbered(self) -> list[Part] | None:
        """
        The parts RFC 3501 section 6.4.5 numbers beneath this one: a
        multipart's children; for message/rfc822, the parts of the
        encapsulated message; nothing for other leaves.
        """
        if self.children:
            return self.children
        if self.message is not None:
            return self.message.numbered_root()
        return None

    def numbered_root(self) -> list[Part]:
        """Parts of a message whose root this is: a non-multipart message
        has exactly one part, its body (RFC 3501 section 6.4.5)."""
        return self.children if self.children else [self]


def parse_message(raw: bytes, start: int = 0, end: int | None = None) -> Part:
    """Parse the message at C{raw[start:end]} into its MIME tree."""
    counter = [0]
    root = Part(raw, start, len(raw) if end is None else end)
    _expand(root, 0, counter)
    return root


def _expand(part: Part, depth: int, counter: list[int]) -> None:
    counter[0] += 1
    if depth >= MAX_DEPTH or counter[0] >= MAX_PARTS:
        return
    major, minor = part.ctype
    if major == b"multipart":
        boundary = part.param(b"boundary")
        if not boundary:
            # No boundary: Dovecot's parser drops the multipart flag and
            # the body becomes one opaque part; we present it as text.
            part.content_type = (b"text", b"plain", [(b"charset", b"us-ascii")])
            part.ctype = (b"text", b"plain")
            return
        default = (b"message", b"rfc822") if minor == b"digest" else (b"text", b"plain")
        limit = max(1, MAX_PARTS - counter[0])
        for s, e in _split(part.raw, part.body_start, part.end, boundary, limit):
            child = Part(part.raw, s, e, default)
            part.children.append(child)
            _expand(child, depth + 1, counter)
        if not part.children:
            # RFC 2046 requires at least one body part.  Dovecot writes a
            # single empty text/plain part (imap-bodystructure.c); we make
            # it a real (empty) part so BODY[1] stays consistent with it.
            part.children.append(Part(part.raw, part.end, part.end))
    elif (major, minor) == (b"message", b"rfc822"):
        inner = Part(part.raw, part.body_start, part.end)
        part.message = inner
        _expand(inner, depth + 1, counter)


def _split(raw: bytes, start: int, end: int, boundary: bytes,
           limit: int = MAX_PARTS) -> list[tuple[int, int]]:
    """
    Find the body parts of a multipart body at C{raw[start:end]}.

    RFC 2046 section 5.1.1: a delimiter is CRLF "--" boundary at the start
    of a line, optionally followed by "--" (the close delimiter) and
    whitespace.  The CRLF before the dashes belongs to the delimiter, not
    to the preceding part.  Text before the first delimiter (preamble) and
    after the close delimiter (epilogue) belongs to no part; a missing
    close delimiter ends the last part at the end of the body, as in
    Dovecot.  After C{limit} parts the last one takes the rest of the
    body.
    """
    dash = b"--" + boundary
    parts: list[tuple[int, int]] = []
    part_start = -1
    pos = start
    while True:
        hit = raw.find(dash, pos, end)
        if hit < 0:
            break
        pos = hit + 1
        if hit != start and raw[hit - 1] != 0x0A:
            continue  # not at the start of a line
        after = hit + len(dash)
        close = raw.startswith(b"--", after, end)
        if close:
            after += 2
        # Trailing whitespace is allowed (RFC 2046 section 5.1.1); so are
        # stray CRs before the LF ("\r\r\n" from double conversion).
        while after < end and raw[after] in b" \t\r":
            after += 1
        if after < end and raw[after] != 0x0A:
            continue  # "--boundaryX": a longer boundary, not ours
        line_end = min(after + 1, end)
        if part_start >= 0:
            if len(parts) + 1 >= limit:
                break
            pend = hit
            if pend > start and raw[pend - 1] == 0x0A:
                pend -= 1
                if pend > start and raw[pend - 1] == 0x0D:
                    pend -= 1
            parts.append((part_start, max(part_start, pend)))
        if close:
            return parts
        part_start = line_end
        pos = line_end
    if part_start >= 0:
        parts.append((part_start, end))
    return parts


# -- ENVELOPE ---------------------------------------------------------------

def _addresses(values: list[Address]) -> bytes:
    if not values:
        return NIL
    # RFC 3501 section 9: env-from = "(" 1*address ")"; the addresses
    # are not separated by spaces (neither are the bodies of a multipart).
    return b"(" + b"".join(
        plist([nstring(a.name), nstring(a.adl), nstring(a.mailbox), nstring(a.host)])
        for a in values
    ) + b")"


def envelope(header: Header) -> bytes:
    """
    RFC 3501 section 7.4.2 ENVELOPE of the message with this header.

    Date, subject, in-reply-to and message-id are the raw field values,
    unfolded and not decoded; addresses are parsed.  Sender and reply-to
    fall back to from when absent or empty, as the RFC requires.  The
    first occurrence of a repeated field wins.
    """
    wanted = (b"date", b"subject", b"from", b"sender", b"reply-to", b"to",
              b"cc", b"bcc", b"in-reply-to", b"message-id")
    found: dict[bytes, bytes] = {}
    raw = header.raw
    for name, _, v, e in header.fields():
        if name in wanted and name not in found:
            found[name] = unfold(raw[v:e])
    addrs = {n: parse_addresses(found.get(n)) for n in
             (b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc")}
    from_ = addrs[b"from"]
    return plist([
        nstring(found.get(b"date")),
        nstring(found.get(b"subject")),
        _addresses(from_),
        _addresses(addrs[b"sender"] or from_),
        _addresses(addrs[b"reply-to"] or from_),
        _addresses(addrs[b"to"]),
        _addresses(addrs[b"cc"]),
        _addresses(addrs[b"bcc"]),
        nstring(found.get(b"in-reply-to")),
        nstring(found.get(b"message-id")),
    ])


# -- BODY / BODYSTRUCTURE ------------------------------------------------------

def _params(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return NIL
    return plist(x for k, v in params for x in (string(k), string(v)))


def _ext_common(part: Part) -> list[bytes]:
    """body-fld-dsp, body-fld-lang, body-fld-loc (RFC 3501 section 9)."""
    h = part.header
    dsp = parse_disposition(h.first(b"content-disposition"))
    dsp_enc = NIL if dsp is None else plist([string(dsp[0]), _params(dsp[1])])
    lang = h.first(b"content-language")
    langs = [x.strip(b" \t") for x in lang.split(b",")] if lang else []
    langs = [x for x in langs if x]
    lang_enc = plist(string(x) for x in langs) if langs else NIL
    return [dsp_enc, lang_enc, nstring(h.first(b"content-location"))]


def _encoding(header: Header) -> bytes:
    # body-fld-enc.  A well-formed token goes out as sent, whatever it
    # is (Dovecot does the same, so "x-uuencode" and "7-bit" stay); a
    # malformed value that still names a known encoding ("quoted
    # printable", "base64;") is sent by its proper name so clients can
    # decode the part; anything else is 7bit, as Dovecot answers for
    # "?invalid".
    value = cte_value(header)
    if value is None:
        return b"7bit"
    if _TOKEN_ONLY.fullmatch(value):
        return value
    return normalize_cte(value) or b"7bit"


_TOKEN_ONLY = re.compile(rb'[^\x00-\x20()<>@,;:\\"/\[\]?=\x7f-\xff]+')


def bodystructure(part: Part, extended: bool) -> bytes:
    """
    RFC 3501 section 7.4.2 BODY (C{extended=False}) or BODYSTRUCTURE of
    the entity C{part}.
    """
    if part.children:
        items = [bodystructure(c, extended) for c in part.children]
        body = b"".join(items) + b" " + string(part.content_type[1])
        if extended:
            body += b" " + b" ".join([_params(part.content_type[2])] + _ext_common(part))
        return b"(" + body + b")"
    h = part.header
    ctype, subtype, params = part.content_type
    is_text = part.ctype[0] == b"text"
    if is_text and not any(k.lower() == b"charset" for k, _ in params):
        # Dovecot adds the RFC 2045 section 5.2 default charset to text
        # parts that name none.
        params = [(b"charset", b"us-ascii")] + list(params)
    size = part.end - part.body_start
    items = [
        string(ctype), string(subtype), _params(params),
        nstring(h.first(b"content-id")),
        nstring(h.first(b"content-description")),
        string(_encoding(h)),
        b"%d" % size,
    ]
    if part.message is not None:
        items.append(envelope(part.message.header))
        items.append(bodystructure(part.message, extended))
        items.append(b"%d" % part.raw.count(b"\n", part.body_start, part.end))
    elif is_text:
        items.append(b"%d" % part.raw.count(b"\n", part.body_start, part.end))
    if extended:
        items.append(nstring(h.first(b"content-md5")))
        items.extend(_ext_common(part))
    return plist(items)
