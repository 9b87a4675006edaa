# -*- test-case-name: tests.imapd.message.test_message_section -*-
"""
L{Message}: one stored message as the FETCH and SEARCH code see it.

Everything is computed on first use and cached: a message fetched only
for its ENVELOPE finds the end of its header and indexes those fields,
and never looks at the body.  No method raises on malformed input; see
the module docstrings of L{imapd.message._structure} and
L{imapd.message._headers} for how each defect degrades.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterator

from imapd import charset
from imapd.message._decode import normalize_cte, parse_date, transfer_decode
from imapd.message._headers import Header, cte_value, header_end, unfold
from imapd.message._html import html_text
from imapd.message._structure import Part, bodystructure, envelope, parse_message

__all__ = ["Message"]

_SECTION_TEXTS = (None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")


class Message:
    """
    A message as the client sees it: bytes with CRLF line endings.

    @ivar raw: the message bytes.
    """

    __slots__ = ("raw", "_body_start", "_header", "_root", "_envelope")

    def __init__(self, raw: bytes) -> None:
        self.raw = bytes(raw)
        self._body_start: int | None = None
        self._header: Header | None = None
        self._root: Part | None = None
        self._envelope: bytes | None = None

    # -- the top-level header ----------------------------------------------

    def _top(self) -> Header:
        if self._header is None:
            if self._root is not None:
                self._header = self._root.header
            else:
                end = header_end(self.raw, 0, len(self.raw))
                self._header = Header(self.raw, 0, end)
        return self._header

    def header_bytes(self) -> bytes:
        """
        RFC822.HEADER / BODY[HEADER]: the header including the empty line
        that ends it.  A message with no empty line is all header, as in
        Dovecot.
        """
        return self.raw[:self._top().end]

    def text_bytes(self) -> bytes:
        """BODY[TEXT] / RFC822.TEXT: everything after the header."""
        return self.raw[self._top().end:]

    def header_fields(self, name: str) -> list[bytes]:
        """
        Values of the top-level header field C{name} (any case), in
        order, unfolded and stripped but otherwise raw.
        """
        key = name.lower().encode("latin-1", "replace")
        return [unfold(v) for v in self._top().values(key)]

    def decoded_header(self, name: str, fallback: str = "latin-1") -> list[str]:
        """
        Values of field C{name} with RFC 2047 encoded words decoded and
        8-bit bytes read as UTF-8, else as C{fallback}
        (L{charset.decode_words}).
        """
        return [charset.decode_words(v, fallback) for v in self.header_fields(name)]

    def sent_date(self) -> datetime | None:
        """The Date field (the first one) parsed, or C{None} (SENTBEFORE, SORT DATE)."""
        return self.date_field()[1]

    def date_field(self) -> tuple[bytes | None, datetime | None]:
        """
        The first Date field's unfolded value (C{None} when there is none)
        and its parse, asked as one question of the header: SORT (DATE)
        needs both and nothing else of it.
        """
        value = self._top().find_first(b"date")
        return value, parse_date(value)

    def envelope(self) -> bytes:
        """The wire-encoded RFC 3501 section 7.4.2 ENVELOPE."""
        if self._envelope is None:
            self._envelope = envelope(self._top())
        return self._envelope

    # -- MIME structure ----------------------------------------------------

    def structure(self) -> Part:
        """The root of the MIME tree (L{Part}), parsed on first use."""
        if self._root is None:
            self._root = parse_message(self.raw)
        return self._root

    def bodystructure(self, extended: bool) -> bytes:
        """
        The wire-encoded BODY (C{extended=False}) or BODYSTRUCTURE
        (C{extended=True}) of RFC 3501 section 7.4.2.
        """
        return bodystructure(self.structure(), extended)

    def part_structure(self, part: tuple[int, ...]) -> bytes | None:
        """
        The extended BODYSTRUCTURE of one part (C{()}: the message), or
        C{None} when there is no such part (RFC 5524 BODYPARTSTRUCTURE).
        """
        if not part:
            return self.bodystructure(True)
        node = self._resolve(part)
        return None if node is None else bodystructure(node, True)

    def _resolve(self, part: tuple[int, ...]) -> Part | None:
        node = self.structure()
        numbered = node.numbered_root()
        for i, n in enumerate(part):
            if numbered is None or not 1 <= n <= len(numbered):
                return None
            node = numbered[n - 1]
            if i + 1 < len(part):
                numbered = node.numbered()
        return node

    def section(self, part: tuple[int, ...], text: str | None,
                fields: tuple[bytes, ...] = ()) -> bytes | None:
        """
        RFC 3501 section 6.4.5 BODY[section].

        @param part: the part numbers; C{()} is the whole message.
        @param text: C{None}, C{"HEADER"}, C{"HEADER.FIELDS"},
            C{"HEADER.FIELDS.NOT"}, C{"TEXT"} or C{"MIME"}.
        @param fields: field names for the HEADER.FIELDS forms.
        @return: the section, or C{None} when it does not exist (a part
            number out of range, HEADER/TEXT of a part that is not
            message/rfc822, MIME of the whole message).
        """
        text = text.upper() if text else None
        if text not in _SECTION_TEXTS:
            return None
        if not part:
            if text is None:
                return self.raw
            if text == "MIME":
                return None
            if text == "TEXT":
                return self.text_bytes()
            header = self._top()
        else:
            node = self._resolve(part)
            if node is None:
                return None
            if text is None:
                return node.body
            if text == "MIME":
                # The part's own MIME header (RFC 3501 section 6.4.5).
                return node.raw[node.start:node.body_start]
            # HEADER and TEXT of a part exist only for message/rfc822
            # (RFC 3501 section 6.4.5).
            if node.message is None:
                return None
            if text == "TEXT":
                return node.message.body
            header = node.message.header
        if text == "HEADER":
            return header.raw[header.start:header.end]
        names = tuple((f.encode("latin-1", "replace") if isinstance(f, str) else f).lower()
                      for f in fields)
        return header.select(names,
                             exclude=text == "HEADER.FIELDS.NOT")

    def binary_section(self, part: tuple[int, ...]) -> bytes | None:
        """
        RFC 3516 BINARY[part]: the part's content with its
        Content-Transfer-Encoding removed.  C{None} when the part does not
        exist or its encoding is unknown (the caller answers
        C{NO [UNKNOWN-CTE]}).
        """
        if not part:
            return self.raw
        node = self._resolve(part)
        if node is None:
            return None
        if node.children or node.message is not None:
            return node.body
        cte = normalize_cte(cte_value(node.header))
        if cte is None:
            return None
        return transfer_decode(node.body, cte)

    def preview(self) -> str:
        """RFC 8970 PREVIEW: see L{imapd.message._preview}."""
        from imapd.message._preview import preview_text

        return preview_text(self.structure())

    def cached_preview(self) -> str:
        """PREVIEW (LAZY): the message is in memory, so computing is cheap."""
        return self.preview()

    def part_header_text(self, fallback: str = "latin-1") -> Iterator[str]:
        """
        Every header field below the top-level header, as C{"name:
        value"} with encoded words decoded: the MIME headers of the parts
        and the headers of encapsulated messages.  They are part of the
        message body (RFC 5322 section 2.1), which SEARCH TEXT looks into
        (RFC 3501 section 6.4.4); a filename in a Content-Disposition is
        found that way, as in Dovecot.
        """
        top = self.structure()
        stack = [top.message] if top.message is not None else list(reversed(top.children))
        while stack:
            node = stack.pop()
            header = node.header
            for name, _start, value_start, end in header.fields():
                value = unfold(header.raw[value_start:end])
                yield "%s: %s" % (name.decode("latin-1"), charset.decode_words(value, fallback))
            if node.children:
                stack.extend(reversed(node.children))
            elif node.message is not None:
                stack.append(node.message)

    def decoded_text(self) -> Iterator[str]:
        """
        Every text/* part's content, transfer-decoded and charset-decoded
        (for SEARCH BODY and TEXT), including those inside encapsulated
        messages.  Unknown transfer encodings are read as 8bit.  A
        text/html part is reduced to its text (L{html_text}): the scan
        and the full-text index both read this, so they agree.
        """
        stack = [self.structure()]
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(reversed(node.children))
            elif node.message is not None:
                stack.append(node.message)
            elif node.ctype[0] == b"text":
                cte = normalize_cte(cte_value(node.header))
                data = transfer_decode(node.body, cte)
                text = charset.decode(data, node.param(b"charset"))
                yield html_text(text) if node.ctype[1] == b"html" else text
