# -*- test-case-name: tests.imapd.search.test_search_sets -*-
"""
SEARCH programs that only look at flags, sequence numbers and UIDs,
evaluated as set algebra over a per-view flag index instead of one
predicate call per message.

Mail clients poll with exactly these programs (C{UNSEEN}, C{FLAGGED},
C{DELETED}, C{UID 1234:*}, C{NOT DELETED SEEN}...).  On a 10,000-message
mailbox the per-message matcher of L{imapd.search.match} costs about a
microsecond per message and key; the sets cost a few set operations.
Answers are the same by construction (RFC 3501 section 6.4.4 defines
each key as a property of one message; AND, OR and NOT are intersection,
union and complement), and a test compares both on random programs.

Anything else (dates, sizes, headers, bodies, MODSEQ...) returns None
and the caller falls back to the matcher, unless the caller passes a
C{leaf} that evaluates more keys: the full-text index
(L{imapd.fts.query.FtsSearch.set_leaf}) gives BODY and TEXT as the set
of indexed messages that match, and the caller then settles the messages
it has not indexed one by one.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Callable, Optional

from imapd.parser.types import SearchKey, SequenceSet

__all__ = ["FlagIndex", "search_by_sets"]

# The flag keys of RFC 3501 section 6.4.4: key -> (flag, present).
_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\answered", True), "UNANSWERED": ("\\answered", False),
    "DELETED": ("\\deleted", True), "UNDELETED": ("\\deleted", False),
    "DRAFT": ("\\draft", True), "UNDRAFT": ("\\draft", False),
    "FLAGGED": ("\\flagged", True), "UNFLAGGED": ("\\flagged", False),
    "SEEN": ("\\seen", True), "UNSEEN": ("\\seen", False),
}


class FlagIndex:
    """
    Which live messages carry which flag, for one state of a view.

    @ivar live: UIDs in the view that are not expunged meanwhile.
    @ivar by_flag: case-folded flag or keyword -> UIDs carrying it.  Flags
        are case-insensitive in SEARCH (RFC 3501 section 2.3.2 keywords;
        system flags are compared case-insensitively by the matcher too).
    \\Recent is a session property, not part of the index: the search
    takes it from the view.
    """

    __slots__ = ("live", "by_flag")

    def __init__(self, uids, records, vanished) -> None:
        live = set(uids)
        live.difference_update(vanished)
        # Messages share a handful of distinct flag sets (stores hand out
        # one frozenset per combination), so group the UIDs by set first
        # and fill each flag's UIDs group by group.
        groups: dict[frozenset, list[int]] = {}
        for uid in live:
            flags = records[uid].flags
            group = groups.get(flags)
            if group is None:
                groups[flags] = [uid]
            else:
                group.append(uid)
        by_flag: dict[str, set[int]] = {}
        for flags, group in groups.items():
            for flag in flags:
                key = flag.casefold()
                found = by_flag.get(key)
                if found is None:
                    by_flag[key] = set(group)
                else:
                    found.update(group)
        self.live = live
        self.by_flag = by_flag

    def having(self, flag: str) -> set[int]:
        return self.by_flag.get(flag.casefold(), set())


def _intervals(ranges, largest: int):
    for low, high in ranges:
        a = largest if low is None else low
        b = largest if high is None else high
        yield (a, b) if a <= b else (b, a)


def _seqset(value: SequenceSet, uid: bool, uids: list[int], live: set[int],
            saved: Optional[frozenset[int]]) -> set[int]:
    if value.saved:
        # RFC 5182 section 2.1: "$" is the saved set of messages.
        return live & (saved or frozenset())
    out: set[int] = set()
    if uid:
        largest = uids[-1] if uids else 0
        for a, b in _intervals(value.ranges, largest):
            out.update(uids[bisect_left(uids, a):bisect_right(uids, b)])
    else:
        for a, b in _intervals(value.ranges, len(uids)):
            out.update(uids[max(a, 1) - 1:b])
    return out & live


def _evaluate(key: SearchKey, index: FlagIndex, uids: list[int],
              saved: Optional[frozenset[int]], recent: set[int],
              leaf: Optional[Callable] = None) -> Optional[set[int]]:
    name = key.name
    if name == "AND":
        result: Optional[set[int]] = None
        for child in key.children:
            part = _evaluate(child, index, uids, saved, recent, leaf)
            if part is None:
                return None
            result = part if result is None else result & part
        return set(index.live) if result is None else result
    if name == "OR":
        result = set()
        for child in key.children:
            part = _evaluate(child, index, uids, saved, recent, leaf)
            if part is None:
                return None
            result |= part
        return result
    if name == "NOT":
        (child,) = key.children
        part = _evaluate(child, index, uids, saved, recent, leaf)
        return None if part is None else index.live - part
    if name == "ALL":
        return set(index.live)
    if name in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[name]
        having = index.having(flag)
        return set(having) if present else index.live - having
    if name == "RECENT":
        return set(recent)
    if name == "OLD":
        return index.live - recent
    if name == "NEW":
        # RFC 3501 section 6.4.4: NEW is "(RECENT UNSEEN)".
        return recent - index.having("\\seen")
    if name in ("KEYWORD", "UNKEYWORD"):
        value = key.value
        word = value if isinstance(value, str) else bytes(value).decode("ascii", "replace")
        having = index.having(word)
        return set(having) if name == "KEYWORD" else index.live - having
    if name in ("SEQSET", "UID"):
        return _seqset(key.value, name == "UID", uids, index.live, saved)
    if leaf is not None:
        part = leaf(key)
        return None if part is None else part & index.live
    return None


def search_by_sets(key: SearchKey, view,
                   leaf: Optional[Callable] = None) -> Optional[list[tuple[int, int]]]:
    """
    The C{(seq, uid)} pairs matching C{key} in C{view}, ascending, or None
    when the program uses a key this module does not evaluate.

    @param leaf: evaluates the keys this module does not know: their
        UIDs as a set, or None where it cannot either.
    """
    uids = view.uids
    index = view.flag_index()
    hits = _evaluate(key, index, uids, view.saved_uids, index.live & view.recent, leaf)
    if hits is None:
        return None
    if len(hits) * 8 < len(uids):
        # Few hits: place each by bisection (UIDs ascend with sequence).
        return [(bisect_left(uids, u) + 1, u) for u in sorted(hits)]
    return [(seq, u) for seq, u in enumerate(uids, 1) if u in hits]
