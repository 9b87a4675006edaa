# -*- test-case-name: tests.imapd.sort.test_sort_keys -*-
"""
A small cache of whole SORT and THREAD answers.

Webmail repeats the same SORT on every page view (SquirrelMail sends
C{SORT (DATE) ISO-8859-1 ALL} each time the list is shown).  The answer
depends only on the matching messages, as C{(seq, uid)} pairs, and on their
header keys, which never change under a UID; so when the same criteria
meet the same pairs in the same mailbox, the previous answer is the answer.
Comparing two lists of pairs is one C-speed equality test, far cheaper
than rebuilding and sorting 10,000 items.

The cache is process-wide, bounded (L{LIMIT} answers, least recently used
dropped first) and thread-safe; it holds the pairs themselves, not a hash,
so a collision can never return a wrong answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, TypeVar

__all__ = ["cached_answer", "clear", "LIMIT"]

T = TypeVar("T")

#: How many answers are kept (each holds its list of pairs).
LIMIT = 16

_answers: OrderedDict = OrderedDict()
_lock = threading.Lock()


def cached_answer(key: tuple, pairs: list[tuple[int, int]],
                  compute: Callable[[], T]) -> T:
    """
    The answer for C{key} (mailbox identity and command parameters) over
    C{pairs}: the remembered one if C{pairs} is what it was computed for,
    else C{compute()}, remembered.  A key holding C{None} (a mailbox
    without a stable identity) is never cached.
    """
    if key[0] is None:
        return compute()
    with _lock:
        found = _answers.get(key)
        if found is not None and found[0] == pairs:
            _answers.move_to_end(key)
            return found[1]
    answer = compute()
    with _lock:
        _answers[key] = (list(pairs), answer)
        _answers.move_to_end(key)
        while len(_answers) > LIMIT:
            _answers.popitem(last=False)
    return answer


def clear() -> None:
    """Forget every answer (tests)."""
    with _lock:
        _answers.clear()
