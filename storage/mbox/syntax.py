# -*- test-case-name: tests.security.test_sec_mbox_forge -*-
"""
The one definition of an mbox message's header syntax, shared by the
writer (L{storage.mbox.rewrite.prepare_new}) and every reader
(L{storage.mbox.reader}, L{storage.mbox.headers}).

The IMAP state of a message lives in its header (C{X-UID}, C{Status},
C{X-Status}, C{X-Keywords}, C{X-IMAPbase}, C{Content-Length}).  A client
controls the rest of that header, so the writer must escape every client
field the reader would take for one of ours, and put our fields after the
line the reader takes for the end of the header.  When the two judged a
line differently (the writer once allowed C{"\\x0bX-UID: 1"} through
while the reader stripped the vertical tab and read a real C{X-UID}; the
writer cut a CRLF header at C{"\\r\\n\\r\\n"} while the reader stopped at
an earlier C{"\\n\\n"}), message content forged flags and UIDs.  Hence
one module, and both sides call it:

 - L{field_name}: a field's name is everything before the first colon,
   minus trailing blanks (SP/TAB: RFC 5322 section 4.5.3 obsolete syntax
   allows them before the colon), lower-cased.  Nothing is stripped in
   front: a line starting with SP/TAB continues the previous field
   (RFC 5322 section 2.2.3) and has no name; any other byte, a control
   character included, is part of the name.  Dovecot's header parser
   judges names the same way (only SP/TAB are trimmed), so its files read
   the same.
 - L{HEADER_END}/L{split_header}: the header ends at the first empty
   line, whether LF or CRLF (RFC 5322 section 2.1; the same rule as
   L{storage.crlf.header_length}, which the protocol layer uses).
 - L{needs_escape}/L{unescape_length}: a client field named like one of
   ours, or like one already escaped (C{X-IMAPD-Orig-X-UID}), is stored
   with one more L{ESCAPE} prefix and shown with one fewer, so that every
   name comes back exactly as appended.
"""

from __future__ import annotations

import re

__all__ = [
    "META_FIELDS",
    "ESCAPE",
    "HEADER_END",
    "QUOTED_FROM",
    "field_name",
    "split_header",
    "needs_escape",
    "unescape_length",
]

#: The fields in which we (and UW-IMAP, Dovecot) keep IMAP state.
META_FIELDS = frozenset({
    b"x-imapbase", b"x-imap", b"x-uid", b"status", b"x-status", b"x-keywords",
    b"content-length",
})
#: Prefix of the client's own metadata fields on disk (see above).
ESCAPE = b"X-IMAPD-Orig-"
_ESCAPED = ESCAPE.lower()

#: The empty line that ends a header, searched from the end of the line
#: before it (LF, CRLF, and mixed files: each line is judged on its own).
HEADER_END = re.compile(rb"\n\r?\n")

#: A body line quoted by mboxrd (C{>From }, C{>>From }...): group 1 is
#: the line without its first C{>}.  Searched from a line start only.
QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")


def field_name(line: bytes) -> bytes | None:
    """
    The lower-cased name of the field that C{line} starts, or C{None} for
    a continuation line (leading SP/TAB) or a line without a colon.
    """
    if line[:1] in (b" ", b"\t"):
        return None
    name, colon, _ = line.partition(b":")
    if not colon or b"\n" in name:
        return None
    return name.rstrip(b" \t").lower()


def split_header(text: bytes) -> tuple[bytes, bytes | None]:
    """
    C{(header, body)} of a message: the header ends after the line before
    the first empty line (the empty line belongs to neither); C{body} is
    C{None} if there is no empty line.
    """
    if text.startswith(b"\n"):
        return b"", text[1:]
    if text.startswith(b"\r\n"):
        return b"", text[2:]
    m = HEADER_END.search(text)
    if m is None:
        return text, None
    return text[:m.start() + 1], text[m.end():]


def _base(name: bytes) -> bytes:
    while name.startswith(_ESCAPED):
        name = name[len(_ESCAPED):]
    return name


def needs_escape(name: bytes | None) -> bool:
    """Whether a client field so named must be stored with an L{ESCAPE} prefix."""
    return name is not None and _base(name) in META_FIELDS


def unescape_length(name: bytes) -> int:
    """How many bytes to drop from the front of a stored field so named (0 or the prefix)."""
    if name.startswith(_ESCAPED) and _base(name) in META_FIELDS:
        return len(ESCAPE)
    return 0
