# -*- test-case-name: tests.imapd.test_listpattern -*-
"""
LIST/LSUB wildcard matching (RFC 3501 section 6.3.8) in time linear in
the length of the name: C{*} matches any run of characters, C{%} any run
without the hierarchy delimiter.

A pattern turned into a regular expression and run by a backtracking
engine takes time exponential in the number of wildcards
(C{"*a*a*a*a*a*a*ab"} against a 200-character name ran for minutes on
the reactor thread, issue 18 item 1).  Here the pattern is a
nondeterministic automaton whose states are the pattern positions, and
the set of active states is one Python integer used as a bit set: each
character of the name costs a handful of integer operations on a number
of C{len(pattern)} bits, so a match costs O(len(name) * len(pattern) / 64)
word operations and never backtracks.
"""

from __future__ import annotations

from typing import Callable

from imapd.errors import BadCommand

__all__ = ["compile_pattern", "check_patterns", "MAX_PATTERN", "MAX_PATTERNS"]

#: Longest LIST pattern (reference included) accepted, in characters:
#: as long as the longest mailbox name (L{imapd.mailboxname.MAX_NAME})
#: plus room for a reference.
MAX_PATTERN = 2048
#: Most patterns in one LIST-EXTENDED command (RFC 5258 section 3 sets no
#: limit; each one is a pass over every mailbox name).
MAX_PATTERNS = 64


def check_patterns(reference: bytes, patterns) -> None:
    """
    Refuse a LIST/LSUB whose patterns are beyond L{MAX_PATTERN} or
    L{MAX_PATTERNS}.

    @raises BadCommand: C{[LIMIT]} (RFC 5530 section 3).
    """
    if len(patterns) > MAX_PATTERNS:
        raise BadCommand(f"Too many LIST patterns (at most {MAX_PATTERNS})", "LIMIT")
    for pattern in patterns:
        if len(reference) + len(pattern) > MAX_PATTERN:
            raise BadCommand(f"LIST pattern too long (at most {MAX_PATTERN} octets)", "LIMIT")


def compile_pattern(pattern: str, delimiter: str) -> Callable[[str], bool]:
    """
    A predicate telling whether a whole name matches C{pattern}.

    Runs of wildcards are simplified first (any run holding a C{*} is one
    C{*}, a run of C{%} is one C{%}: they match the same names), so no
    two wildcards are adjacent and the closure over "a wildcard matches
    nothing" is one shift.
    """
    simple: list[str] = []
    for ch in pattern:
        if ch in "*%" and simple and simple[-1] in "*%":
            if ch == "*":
                simple[-1] = "*"
            continue
        simple.append(ch)
    star = pct = 0
    literal: dict[str, int] = {}
    for i, ch in enumerate(simple):
        bit = 1 << i
        if ch == "*":
            star |= bit
        elif ch == "%":
            pct |= bit
        else:
            literal[ch] = literal.get(ch, 0) | bit
    wild = star | pct
    accept = 1 << len(simple)

    def closure(states: int) -> int:
        # A wildcard may match nothing: being before it is being after it.
        return states | ((states & wild) << 1)

    start = closure(1)

    def matches(name: str) -> bool:
        states = start
        for ch in name:
            # A wildcard stays where it is after consuming a character (C{%}
            # only if it is not the delimiter); a literal moves on.
            nxt = states & star
            if ch != delimiter:
                nxt |= states & pct
            lit = literal.get(ch)
            if lit is not None:
                nxt |= (states & lit) << 1
            if not nxt:
                return False
            states = closure(nxt)
        return bool(states & accept)

    return matches
