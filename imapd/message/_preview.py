# -*- test-case-name: tests.imapd.message.test_message_preview -*-
"""
The RFC 8970 PREVIEW of a message: plain text from its first text part,
at most L{PREVIEW_CHARS} characters.

What goes in, and why (RFC 8970 section 2 leaves the algorithm to the
server):

  - The first text part a reader would see: the first C{text/plain} or
    C{text/html} leaf that is not an attachment, depth first, where a
    C{multipart/alternative} offers its plain version first (its parts
    are the same content, RFC 2046 section 5.1.4).  Encapsulated
    messages (C{message/rfc822}) are forwarded mail, not this message's
    text, and are skipped.  No such part: the empty preview, which
    section 3 requires rather than NIL.
  - Transfer encoding and charset are undone (L{imapd.charset}).
  - HTML: the head, scripts, styles and comments are dropped, tags become
    spaces, entities are decoded.
  - Plain text: quoted lines (C{>}) and everything after a signature
    separator (C{-- }) are dropped: a preview shows what this message
    says.
  - White space is collapsed to single spaces.
  - At most 200 characters: Dovecot's length (so clients see the same
    amount from both), within the 256 the RFC allows.
"""

from __future__ import annotations

import html
import re

from imapd import charset
from imapd.message._decode import normalize_cte, transfer_decode
from imapd.message._headers import cte_value, parse_disposition
from imapd.message._structure import Part

__all__ = ["preview_text", "PREVIEW_CHARS"]

#: Characters of a preview (RFC 8970 section 3 allows up to 256).
PREVIEW_CHARS = 200

#: Octets of a part's body looked at: enough for the preview of any real
#: message, and it bounds the work a huge text part can cause.
_SCAN = 64 * 1024

_HTML_DROP = re.compile(
    r"<!--.*?(?:-->|\Z)|<(head|script|style|title)\b.*?(?:</\1\s*>|\Z)",
    re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>?")
_SPACE = re.compile(r"\s+")


def _is_attachment(part: Part) -> bool:
    disposition = parse_disposition(part.header.first(b"content-disposition"))
    return disposition is not None and disposition[0].lower() == b"attachment"


def _first_text(part: Part) -> Part | None:
    if part.children:
        children = part.children
        if part.ctype == (b"multipart", b"alternative"):
            children = sorted(children, key=lambda p: p.ctype != (b"text", b"plain"))
        for child in children:
            found = _first_text(child)
            if found is not None:
                return found
        return None
    if part.message is not None or _is_attachment(part):
        return None
    if part.ctype in ((b"text", b"plain"), (b"text", b"html")):
        return part
    return None


def _plain(text: str) -> str:
    kept = []
    for line in text.splitlines():
        if line.rstrip() == "--":
            # "-- " starts the signature (RFC 3676 section 4.3); some
            # clients lose its space.
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return " ".join(kept)


def _html(text: str) -> str:
    text = _HTML_DROP.sub(" ", text)
    return html.unescape(_TAG.sub(" ", text))


def preview_text(root: Part) -> str:
    """The preview of the message whose MIME tree is C{root}."""
    part = _first_text(root)
    if part is None:
        return ""
    data = transfer_decode(part.raw[part.body_start:min(part.end, part.body_start + _SCAN)],
                           normalize_cte(cte_value(part.header)))
    text = charset.decode(data, part.param(b"charset"))
    text = _html(text) if part.ctype[1] == b"html" else _plain(text)
    # NBSP and other Unicode spaces count as white space too (str.split).
    text = _SPACE.sub(" ", text.replace("\xa0", " ")).strip()
    if len(text) > PREVIEW_CHARS:
        text = text[:PREVIEW_CHARS].rstrip()
    return text
