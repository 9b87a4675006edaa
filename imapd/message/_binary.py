# -*- test-case-name: tests.imapd.message.test_message_binary -*-
"""
Keeping binary content intact through stores that hand messages back with
CRLF line ends (RFC 3516 section 4.4, APPEND with literal8).

The stores return every message "as the client sees it", with a bare LF
turned into CRLF (L{storage.interfaces.IMailbox.read}).  For text that is
the IMAP convention (RFC 3516 section 6 even requires CRLF for textual
sections), but inside a part whose Content-Transfer-Encoding is C{binary}
it would change the data.  RFC 3516 section 4.4 lets the server change the
encoding of appended data as long as nothing is lost, so such parts are
re-encoded as base64 before they are stored; FETCH BINARY then returns
their exact octets.  Parts without a bare LF (NUL and 8-bit octets are
kept exactly) stay as they were: section 6 asks for no gratuitous change.
"""

from __future__ import annotations

import binascii
import re

from imapd.message._decode import normalize_cte
from imapd.message._headers import cte_value
from imapd.message._structure import parse_message

__all__ = ["protect_binary_parts"]

_BARE_LF = re.compile(rb"(?<!\r)\n")
# The Content-Transfer-Encoding field with its folded continuation lines,
# up to (not including) its line end.
_CTE_FIELD = re.compile(
    rb"^content-transfer-encoding[ \t]*:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*",
    re.IGNORECASE | re.MULTILINE,
)


def _base64_lines(data: bytes) -> bytes:
    # RFC 2045 section 6.8: lines of at most 76 characters.
    encoded = binascii.b2a_base64(data, newline=False)
    return b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


def protect_binary_parts(raw: bytes) -> bytes:
    """
    C{raw} with every C{binary}-encoded leaf part whose body holds a bare
    LF re-encoded as base64 (its Content-Transfer-Encoding field rewritten
    to match); C{raw} itself when there is none.
    """
    if not _BARE_LF.search(raw):
        return raw
    edits = []
    stack = [parse_message(raw)]
    while stack:
        node = stack.pop()
        if node.children:
            stack.extend(node.children)
        elif node.message is not None:
            stack.append(node.message)
        elif (normalize_cte(cte_value(node.header)) == b"binary"
              and _BARE_LF.search(raw, node.body_start, node.end)):
            edits.append(node)
    out = raw
    # From the end backwards, so earlier offsets stay valid.
    for node in sorted(edits, key=lambda n: n.start, reverse=True):
        header = raw[node.start:node.body_start]
        header = _CTE_FIELD.sub(b"Content-Transfer-Encoding: base64", header, count=1)
        out = out[:node.start] + header + _base64_lines(node.body) + out[node.end:]
    return out
