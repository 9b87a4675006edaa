"""
Tests for L{storage.flagchange.FlagChange}: what a store applies to the
flags it holds under its lock (RFC 3501 section 6.4.6).
"""

from __future__ import annotations

from storage.flagchange import FlagChange

F = frozenset


def test_add_and_remove_touch_only_the_named_flags():
    """+FLAGS adds and -FLAGS removes the named flags; every other stored flag stays."""
    stored = F({"\\Seen", "$Work"})
    assert FlagChange(add=F({"\\Answered"})).apply(stored) == {"\\Seen", "$Work", "\\Answered"}
    assert FlagChange(remove=F({"\\Seen"})).apply(stored) == {"$Work"}
    assert FlagChange(replace=F({"\\Draft"})).apply(stored) == {"\\Draft"}


def test_keywords_match_case_insensitively():
    """RFC 3501 2.3.2: removing $work removes $Work; adding $WORK keeps the stored $Work."""
    stored = F({"$Work"})
    assert FlagChange(remove=F({"$work"})).apply(stored) == F()
    assert FlagChange(add=F({"$WORK"})).apply(stored) == {"$Work"}


def test_two_changes_compose():
    """Two changes of one message in one transaction act as one, in order; the stricter UNCHANGEDSINCE wins."""
    a = FlagChange(add=F({"\\Seen", "$A"}), unchangedsince=9)
    b = FlagChange(remove=F({"$A"}), add=F({"$B"}), unchangedsince=5)
    both = a.then(b)
    stored = F({"\\Flagged", "$A"})
    assert both.apply(stored) == b.apply(a.apply(stored)) == {"\\Flagged", "\\Seen", "$B"}
    assert both.unchangedsince == 5
    replaced = FlagChange(replace=F({"\\Draft"})).then(b)
    assert replaced.apply(stored) == {"\\Draft", "$B"}
    assert a.then(FlagChange(replace=F())).apply(stored) == F()
