# -*- test-case-name: tests.imapd.parser.test_parser_qresync -*-
"""
The value of RFC 7162's QRESYNC select parameter (section 3.2.5, 7):

    qresync-param = "QRESYNC" SP "(" uidvalidity SP mod-sequence-value
                    [SP known-uids] [SP seq-match-data] ")"
    seq-match-data = "(" known-sequence-set SP known-uid-set ")"

The generic select-param parser keeps the value as raw bytes
(L{imapd.parser.primitives.parse_raw_value}); this module gives it its
meaning, with the same primitives and the same errors as everything else.
"""

from __future__ import annotations

from imapd.parser.primitives import (
    NotParseable, describe, parse_modseq, parse_nz_number,
)
from imapd.parser.sequence import parse_sequence_set
from imapd.parser.types import QresyncParam

__all__ = ["parse_qresync_param"]


def _expect(buf: bytes, pos: int, char: bytes) -> int:
    if buf[pos:pos + 1] != char:
        raise NotParseable("Expected %r, found %s" % (char.decode(), describe(buf, pos)), pos)
    return pos + 1


def parse_qresync_param(raw: object) -> QresyncParam:
    """
    @raises NotParseable: the value is not the RFC 7162 syntax.
    """
    if not isinstance(raw, bytes) or not raw.startswith(b"("):
        raise NotParseable("QRESYNC needs (uidvalidity modseq ...)", 0)
    buf = raw
    pos = 1
    uidvalidity, pos = parse_nz_number(buf, pos)
    pos = _expect(buf, pos, b" ")
    modseq, pos = parse_modseq(buf, pos)
    known = None
    match = None
    if buf[pos:pos + 1] == b" " and buf[pos + 1:pos + 2] != b"(":
        known, pos = parse_sequence_set(buf, pos + 1)
        if known.saved:
            raise NotParseable("known-uids cannot be $", pos)
    if buf[pos:pos + 1] == b" ":
        pos = _expect(buf, pos + 1, b"(")
        seqs, pos = parse_sequence_set(buf, pos)
        pos = _expect(buf, pos, b" ")
        uids, pos = parse_sequence_set(buf, pos)
        pos = _expect(buf, pos, b")")
        if seqs.saved or uids.saved:
            raise NotParseable("seq-match-data cannot be $", pos)
        match = (seqs, uids)
    pos = _expect(buf, pos, b")")
    if pos != len(buf):
        raise NotParseable("Unexpected %s after QRESYNC parameters" % describe(buf, pos), pos)
    return QresyncParam(uidvalidity, modseq, known, match)
