# -*- test-case-name: tests.imapd.parser.test_parser_sequence -*-
"""
RFC 3501 C{sequence-set} (section 9), with RFC 5182's C{$}.

    sequence-set = (seq-number / seq-range) *("," sequence-set)
    seq-range    = seq-number ":" seq-number
    seq-number   = nz-number / "*"

Zero is never a valid member (sequence numbers and UIDs start at 1),
and every number must fit in 32 bits.
"""

from __future__ import annotations

from typing import Optional

from imapd.parser.primitives import NotParseable, parse_nz_number
from imapd.parser.types import SequenceSet

__all__ = ["parse_sequence_set", "is_sequence_set_start"]


def is_sequence_set_start(buf: bytes, pos: int) -> bool:
    """Whether a sequence set may start at C{pos} (SEARCH needs to know)."""
    return buf[pos:pos + 1] in (b"*", b"$") or buf[pos:pos + 1].isdigit()


def _seq_number(buf: bytes, pos: int) -> tuple[Optional[int], int]:
    if buf[pos:pos + 1] == b"*":
        return None, pos + 1
    try:
        return parse_nz_number(buf, pos)
    except NotParseable as e:
        if e.reason == "Number too large":
            detail = ": number too large"
        elif buf[pos:pos + 1] == b"0":
            detail = ": 0 is not allowed"
        else:
            detail = ""
        raise NotParseable("Invalid sequence set" + detail, pos) from None


def parse_sequence_set(buf: bytes, pos: int) -> tuple[SequenceSet, int]:
    """
    Parse a sequence set at C{pos}.

    @return: the L{SequenceSet} (ranges in client order, C{*} as None,
        C{saved=True} for C{$}) and the position after it.
    @raises NotParseable: "Invalid sequence set: ..." with the detail.
    """
    # RFC 5182 section 2.1: "$" stands alone; it is not combinable with
    # numbers in a sequence set.
    if buf[pos:pos + 1] == b"$":
        return SequenceSet((), saved=True), pos + 1
    ranges: list[tuple[Optional[int], Optional[int]]] = []
    while True:
        low, pos = _seq_number(buf, pos)
        high = low
        if buf[pos:pos + 1] == b":":
            high, pos = _seq_number(buf, pos + 1)
        ranges.append((low, high))
        if buf[pos:pos + 1] != b",":
            break
        pos += 1
    return SequenceSet(tuple(ranges)), pos
