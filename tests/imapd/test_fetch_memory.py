"""
Tests for the per-process memory layer of L{imapd.cache}: values are
shared per (mailbox, UIDVALIDITY, column), bounded by a byte budget with
whole groups dropped least recently used first.
"""

from __future__ import annotations

from imapd.cache import _Memory


def test_get_returns_only_what_was_put():
    memory = _Memory(10_000)
    memory.put(("box", 1, "envelope"), {1: (10, b"e1"), 2: (20, b"e2")})
    assert memory.get(("box", 1, "envelope"), [1, 2, 3]) == {1: (10, b"e1"), 2: (20, b"e2")}
    assert memory.get(("box", 2, "envelope"), [1]) == {}   # another UIDVALIDITY
    assert memory.get(("box", 1, "body"), [1]) == {}       # another column


def test_budget_drops_least_recently_used_groups():
    memory = _Memory(3 * (64 + 100))
    value = b"x" * 100
    memory.put(("a", 1, "c"), {1: (1, value)})
    memory.put(("b", 1, "c"), {1: (1, value)})
    assert memory.get(("a", 1, "c"), [1])          # "a" is now the most recent
    memory.put(("c", 1, "c"), {1: (1, value), 2: (1, value)})
    assert memory.used <= memory.budget
    assert memory.get(("b", 1, "c"), [1]) == {}    # the least recent went
    assert memory.get(("c", 1, "c"), [1, 2])


def test_the_newest_group_stays_even_when_alone_over_budget():
    memory = _Memory(10)
    memory.put(("a", 1, "c"), {1: (1, b"y" * 100)})
    assert memory.get(("a", 1, "c"), [1]) == {1: (1, b"y" * 100)}
