"""
L{storage.interfaces.MessageRecord}: INTERNALDATE and size computed at
most once, on first use, through the store's facts; copies for changes.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from zope.interface.verify import verifyObject

from storage.interfaces import IMessageFacts, MessageRecord
from storage.maildir.mailbox import _Facts, _Shared

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


class CountingFacts:
    def __init__(self):
        self.calls = []

    def internaldate(self, key):
        self.calls.append(("date", key))
        return WHEN

    def size(self, key):
        self.calls.append(("size", key))
        return 1234


def test_lazy_facts_computed_once():
    facts = CountingFacts()
    record = MessageRecord(7, frozenset({"\\Seen"}), key="k", facts=facts)
    assert (record.known_size, record.known_internaldate) == (None, None)
    assert record.size == 1234 and record.size == 1234
    assert record.internaldate == WHEN and record.internaldate == WHEN
    assert facts.calls == [("size", "k"), ("date", "k")]


def test_copies_keep_what_is_known_and_the_facts():
    facts = CountingFacts()
    record = MessageRecord(7, frozenset(), key="k", facts=facts)
    record.learn(size=99)
    copy = record.with_modseq(5).replace(flags=frozenset({"\\Flagged"}))
    assert (copy.uid, copy.flags, copy.modseq, copy.known_size) == (7, {"\\Flagged"}, 5, 99)
    assert copy.internaldate == WHEN and facts.calls == [("date", "k")]
    with pytest.raises(TypeError):
        record.replace(colour="red")


def test_learn_never_overrides():
    record = MessageRecord(1, frozenset(), WHEN, 10)
    record.learn(size=11, internaldate=datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert (record.size, record.internaldate) == (10, WHEN)


def test_complete():
    with pytest.raises(TypeError):
        MessageRecord(1, frozenset())  # neither the facts nor a way to get them


def test_equality_needs_no_io():
    """Comparing records compares what is known; it never asks the facts."""
    facts = CountingFacts()
    lazy = MessageRecord(3, frozenset(), key="k", facts=facts)
    eager = MessageRecord(3, frozenset(), WHEN, 1234, "k")
    assert lazy == eager and hash(lazy) == hash(eager)
    assert lazy != eager.replace(flags=frozenset({"\\Seen"}))
    assert eager != MessageRecord(3, frozenset(), WHEN, 1, "k")
    assert facts.calls == []


def test_maildir_facts_provide_the_interface(tmp_path):
    assert verifyObject(IMessageFacts, _Facts(str(tmp_path), _Shared()))
