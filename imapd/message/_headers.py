# -*- test-case-name: tests.imapd.message.test_message_headers -*-
"""
Header blocks located by byte offsets: where a header ends, its fields,
their values, and MIME parameter lists.

Nothing here builds an object per line of body: a header is found with two
C{bytes.find} calls and its fields are indexed once, on first use.
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "header_end", "Header", "unfold", "parse_params", "parse_content_type",
    "parse_disposition", "cte_value",
]


def header_end(raw: bytes, start: int, end: int) -> int:
    """
    Find where the header of the entity at C{raw[start:end]} ends.

    RFC 5322 section 2.1: the header ends with an empty line.  As Dovecot
    does, an empty line may be LF-only (mail often arrives with mixed line
    endings), a part that starts with an empty line has an empty header
    (RFC 2046 section 5.1.1), and an entity with no empty line at all is
    all header and has an empty body.

    @return: the offset of the body, just after the empty line (or C{end}).
    """
    if start >= end:
        return end
    if raw.startswith(b"\r\n", start, end):
        return start + 2
    if raw.startswith(b"\n", start, end):
        return start + 1
    crlf = raw.find(b"\n\r\n", start, end)
    limit = end if crlf < 0 else crlf + 2
    lf = raw.find(b"\n\n", start, limit)
    if lf >= 0:
        return lf + 2
    if crlf >= 0:
        return crlf + 3
    return end


def unfold(value: bytes) -> bytes:
    """
    RFC 5322 section 2.2.3: unfold by removing the line breaks, and strip
    the surrounding whitespace.  Stray CRs and LFs go too, so a value
    never carries a line break onto the wire.
    """
    if b"\n" in value or b"\r" in value:
        value = value.replace(b"\r", b"").replace(b"\n", b"")
    return value.strip(b" \t")


_FIELD_START = re.compile(rb"^[^ \t\r\n]", re.M)


@functools.lru_cache(maxsize=64)
def _first_field(name: bytes) -> re.Pattern:
    # A field called `name` starts a line (any case; Dovecot, like
    # Header.fields, ignores blanks before the colon) and runs on over the
    # lines that start with white space (RFC 5322 section 2.2.3), or with
    # CR, which Header.fields does not take as a field start either.
    return re.compile(rb"^" + re.escape(name) + rb"[ \t]*:([^\n]*(?:\n[ \t\r][^\n]*)*)",
                      re.M | re.I)


class Header:
    """
    The fields of one header block, indexed lazily.

    @ivar raw: the buffer holding the block.
    @ivar start: offset of the first header byte.
    @ivar end: offset just after the block, including the empty line.
    """

    __slots__ = ("raw", "start", "end", "_fields", "_by_name")

    def __init__(self, raw: bytes, start: int, end: int) -> None:
        self.raw = raw
        self.start = start
        self.end = end
        self._fields: list[tuple[bytes, int, int, int]] | None = None
        self._by_name: dict[bytes, list[tuple[int, int]]] | None = None

    def fields(self) -> list[tuple[bytes, int, int, int]]:
        """
        The fields in order, as C{(lowercased name, field start, value
        start, field end)}; the field end includes its line break.  A line
        with no colon becomes a field whose whole line is the name, as in
        Dovecot's C{message-header-parser.c}, so it is kept in
        HEADER.FIELDS.NOT but matches no name.
        """
        if self._fields is None:
            self._fields = self._index()
        return self._fields

    def _index(self) -> list[tuple[bytes, int, int, int]]:
        raw, start, end = self.raw, self.start, self.end
        # Drop the empty line that ends the block, if there is one.
        if raw.endswith(b"\n\r\n", start, end) or end - start == 2 and raw.startswith(b"\r\n", start):
            stop = end - 2
        elif raw.endswith(b"\n\n", start, end) or end - start == 1 and raw.startswith(b"\n", start):
            stop = end - 1
        else:
            stop = end
        # A field starts at each line that does not start with whitespace
        # (RFC 5322 section 2.2.3: other lines continue the field above).
        starts = [m.start() for m in _FIELD_START.finditer(raw, start, stop)]
        if start < stop and (not starts or starts[0] != start):
            starts.insert(0, start)  # leading continuation line: its own field
        starts.append(stop)
        fields: list[tuple[bytes, int, int, int]] = []
        for i in range(len(starts) - 1):
            pos, field_end = starts[i], starts[i + 1]
            nl = raw.find(b"\n", pos, field_end)
            line_end = field_end if nl < 0 else nl
            colon = raw.find(b":", pos, line_end)
            if colon < 0:
                name = raw[pos:line_end].rstrip(b"\r").lower()
                fields.append((name, pos, field_end, field_end))
            else:
                # Dovecot ignores whitespace before the colon.
                name = raw[pos:colon].rstrip(b" \t").lower()
                fields.append((name, pos, colon + 1, field_end))
        return fields

    def _spans(self, name: bytes) -> list[tuple[int, int]]:
        # A BODYSTRUCTURE asks each part for seven Content-* fields, an
        # ENVELOPE for ten: one pass builds a by-name map, instead of one
        # scan of all the fields per question.
        by_name = self._by_name
        if by_name is None:
            by_name = self._by_name = {}
            for n, _, v, e in self.fields():
                spans = by_name.get(n)
                if spans is None:
                    by_name[n] = [(v, e)]
                else:
                    spans.append((v, e))
        return by_name.get(name, ())

    def values(self, name: bytes) -> list[bytes]:
        """Raw (folded) values of the fields called C{name} (lowercase)."""
        raw = self.raw
        return [raw[v:e] for v, e in self._spans(name)]

    def find_first(self, name: bytes) -> bytes | None:
        """
        L{first}, for a caller that asks this header one question only (a
        cold SORT (DATE) asks each header for its Date): unless the header
        is indexed already, search for that field instead of indexing all
        of them.
        """
        if self._fields is not None:
            return self.first(name)
        m = _first_field(name).search(self.raw, self.start, self.end)
        return None if m is None else unfold(m.group(1))

    def first(self, name: bytes) -> bytes | None:
        """The unfolded value of the first field called C{name}, or C{None}."""
        spans = self._spans(name)
        if not spans:
            return None
        v, e = spans[0]
        return unfold(self.raw[v:e])

    def select(self, names: tuple[bytes, ...], exclude: bool) -> bytes:
        """
        RFC 3501 section 6.4.5 HEADER.FIELDS / HEADER.FIELDS.NOT: the
        matching (or non-matching) fields, folding kept, in message order,
        followed by the empty line.
        """
        wanted = {n.lower() for n in names}
        raw = self.raw
        out = []
        for n, s, _, e in self.fields():
            if (n in wanted) != exclude:
                chunk = raw[s:e]
                if not chunk.endswith(b"\n"):
                    chunk += b"\r\n"
                elif not chunk.endswith(b"\r\n"):
                    chunk = chunk[:-1] + b"\r\n"
                out.append(chunk)
        out.append(b"\r\n")
        return b"".join(out)


# RFC 2045 section 5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs,
# or tspecials>.  We are looser (8-bit bytes allowed) since we only need to
# find where a token ends.
_TOKEN = re.compile(rb'[^\x00-\x20()<>@,;:\\"/\[\]?=\x7f]+')
_PARAM_NAME = re.compile(rb"([^*]+)\*(\d+)?(\*)?$")


def _skip_cfws(value: bytes, pos: int) -> int:
    n = len(value)
    while pos < n:
        c = value[pos]
        if c in b" \t\r\n":
            pos += 1
        elif c == 0x28:  # "(" comment, RFC 5322 section 3.2.2
            depth = 0
            while pos < n:
                c = value[pos]
                if c == 0x5C:
                    pos += 1
                elif c == 0x28:
                    depth += 1
                elif c == 0x29:
                    depth -= 1
                    if depth == 0:
                        pos += 1
                        break
                pos += 1
        else:
            break
    return pos


def _quoted(value: bytes, pos: int) -> tuple[bytes, int]:
    # value[pos] is the opening quote; an unclosed string runs to the end.
    out = bytearray()
    pos += 1
    n = len(value)
    while pos < n:
        c = value[pos]
        if c == 0x5C and pos + 1 < n:
            out.append(value[pos + 1])
            pos += 2
            continue
        if c == 0x22:
            return bytes(out), pos + 1
        if c not in b"\r\n":
            out.append(c)
        pos += 1
    return bytes(out), pos


def parse_params(value: bytes, pos: int) -> list[tuple[bytes, bytes]]:
    """
    Parse C{; name=value} pairs from C{value[pos:]} (RFC 2045 section 5.1).

    Quoted values are unquoted.  RFC 2231 continuations (C{name*0},
    C{name*1*}, ...) are joined in order; if any piece was extended
    (C{*}), the result is reported as C{name*} with the extended value,
    as Dovecot's C{rfc2231_parse} does, leaving decoding to the client.
    Junk between parameters is skipped.
    """
    plain: list[tuple[bytes, bytes | None]] = []
    continued: dict[bytes, dict[int, tuple[bytes, bool]]] = {}
    n = len(value)
    while pos < n:
        semi = value.find(b";", pos)
        if semi < 0:
            break
        pos = _skip_cfws(value, semi + 1)
        m = _TOKEN.match(value, pos)
        if not m:
            continue
        name = m.group(0)
        pos = _skip_cfws(value, m.end())
        if pos >= n or value[pos] != 0x3D:  # "="
            continue
        pos = _skip_cfws(value, pos + 1)
        if pos < n and value[pos] == 0x22:
            val, pos = _quoted(value, pos)
        else:
            # A bare value should be a token, but "name=This is a test.txt"
            # is common; take everything up to the next ";" (without a
            # trailing comment), which is what the sender meant.
            m = _BARE_VALUE.match(value, pos)
            val = m.group(0)
            pos = m.end()
            if b"(" in val:
                val = val[:val.index(b"(")]
            val = val.strip(b" \t\r\n")
        cm = _PARAM_NAME.match(name)
        if cm and cm.group(2) is not None:
            key = cm.group(1).lower()
            if key not in continued:
                continued[key] = {}
                plain.append((cm.group(1), None))  # placeholder keeps the order
            continued[key].setdefault(int(cm.group(2)), (val, bool(cm.group(3))))
        else:
            plain.append((name, val))
    result = []
    for name, val in plain:
        if val is not None:
            result.append((name, val))
            continue
        pieces = continued[name.lower()]
        extended = any(ext for _, ext in pieces.values())
        out = []
        for i in sorted(pieces):
            piece, ext = pieces[i]
            if extended and not ext:
                # RFC 2231 section 4.1: a plain piece among extended ones
                # is literal text; percent-encode it to keep one form.
                piece = piece.replace(b"%", b"%25")
            out.append(piece)
        result.append((name + b"*" if extended else name, b"".join(out)))
    return result


_BARE_VALUE = re.compile(rb"[^;]*")


def parse_content_type(value: bytes | None) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]] | None:
    """
    Parse a Content-Type value into C{(type, subtype, params)}, keeping the
    case as sent; C{None} when there is no usable C{type/subtype} (the
    caller then applies the RFC 2045 section 5.2 default).
    """
    if value is None:
        return None
    pos = _skip_cfws(value, 0)
    m = _TOKEN.match(value, pos)
    if not m:
        return None
    ctype = m.group(0)
    pos = _skip_cfws(value, m.end())
    if pos >= len(value) or value[pos] != 0x2F:  # "/"
        return None
    pos = _skip_cfws(value, pos + 1)
    m = _TOKEN.match(value, pos)
    if not m:
        return None
    return ctype, m.group(0), parse_params(value, m.end())


def parse_disposition(value: bytes | None) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """Parse a Content-Disposition value (RFC 2183) into C{(type, params)}."""
    if value is None:
        return None
    pos = _skip_cfws(value, 0)
    m = _TOKEN.match(value, pos)
    if not m:
        return None
    return m.group(0), parse_params(value, m.end())


_COMMENT = re.compile(rb"\([^()]*\)")


def cte_value(header: Header) -> bytes | None:
    """
    The Content-Transfer-Encoding of an entity as sent, with comments,
    quotes, stray semicolons and extra whitespace removed
    (C{"quoted-printable;"}, C{"quoted printable"} both occur); C{None}
    when absent or empty.
    """
    value = header.first(b"content-transfer-encoding")
    if value is None:
        return None
    if b"(" in value:
        value = _COMMENT.sub(b" ", value)
    value = b" ".join(value.replace(b'"', b" ").replace(b"'", b" ").split())
    value = value.strip(b" ;")
    return value or None
