"""
Tests for L{imapd.search.sets}: the set-algebra evaluation of flag,
sequence and UID programs gives exactly the per-message matcher's answer,
on random programs over random views, including views changed after
SELECT (flag commits, expunges pending, \\Recent).
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timezone

import pytest

from imapd.commands.search import run_search
from imapd.parser.types import SearchKey, SequenceSet
from imapd.search import SearchItem, compile_search
from imapd.search.sets import search_by_sets
from imapd.selected import SelectedView
from storage.interfaces import MailboxSnapshot, MessageRecord

FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Junk", "$label1"]
WHEN = datetime(2024, 1, 1, tzinfo=timezone.utc)


def by_matcher(view: SelectedView, key: SearchKey) -> list[tuple[int, int]]:
    """The reference: the per-message matcher over every live message."""
    matcher = compile_search(key, None, saved_uids=view.saved_uids)
    out = []
    for seq, uid in enumerate(view.uids, 1):
        if view.is_vanished(uid):
            continue
        item = SearchItem(seq=seq, record=view.records[uid], flags=view.flags(uid),
                          max_seq=len(view.uids), max_uid=view.uids[-1])
        if matcher(item):
            out.append((seq, uid))
    return out


def random_view(rng: random.Random) -> SelectedView:
    uid = 0
    messages = []
    for _ in range(rng.randrange(1, 60)):
        uid += rng.randrange(1, 4)
        flags = frozenset(f for f in FLAGS if rng.random() < 0.3)
        messages.append(MessageRecord(uid, flags, WHEN, 100, str(uid)))
    recent = frozenset(m.uid for m in messages if rng.random() < 0.2)
    snapshot = MailboxSnapshot(1, uid + 1, tuple(messages), recent=recent)
    return SelectedView(mailbox=None, snapshot=snapshot, readonly=False)


def random_seqset(rng: random.Random, largest: int) -> SequenceSet:
    ranges = []
    for _ in range(rng.randrange(1, 4)):
        a = rng.choice([None, rng.randrange(1, largest + 3)])
        b = rng.choice([None, rng.randrange(1, largest + 3)])
        ranges.append((a, b))
    return SequenceSet(tuple(ranges))


def random_key(rng: random.Random, view: SelectedView, depth: int = 0) -> SearchKey:
    leaves = ["ALL", "SEEN", "UNSEEN", "FLAGGED", "UNFLAGGED", "DELETED", "UNDELETED",
              "ANSWERED", "UNANSWERED", "DRAFT", "UNDRAFT", "RECENT", "OLD", "NEW",
              "KEYWORD", "UNKEYWORD", "SEQSET", "UID", "SAVED"]
    if depth < 3 and rng.random() < 0.4:
        op = rng.choice(["AND", "OR", "NOT"])
        n = {"AND": rng.randrange(1, 4), "OR": 2, "NOT": 1}[op]
        return SearchKey(op, children=tuple(random_key(rng, view, depth + 1) for _ in range(n)))
    leaf = rng.choice(leaves)
    if leaf in ("KEYWORD", "UNKEYWORD"):
        # Keywords match case-insensitively in both evaluators.
        return SearchKey(leaf, value=rng.choice([b"$junk", b"$Junk", b"$LABEL1", b"nope"]))
    if leaf == "SEQSET":
        return SearchKey(leaf, value=random_seqset(rng, len(view.uids)))
    if leaf == "UID":
        return SearchKey(leaf, value=random_seqset(rng, view.uids[-1]))
    if leaf == "SAVED":
        return SearchKey(rng.choice(["SEQSET", "UID"]), value=SequenceSet((), saved=True))
    return SearchKey(leaf)


@pytest.mark.parametrize("seed", range(40))
def test_sets_equal_matcher(seed):
    rng = random.Random(seed)
    view = random_view(rng)
    view.saved_uids = frozenset(u for u in view.uids if rng.random() < 0.3)
    for round_ in range(3):
        for _ in range(25):
            key = SearchKey("AND", children=(random_key(rng, view),))
            assert search_by_sets(key, view) == by_matcher(view, key), key
        # Change the view the ways sessions do, then compare again.
        if round_ == 0:
            view._own()
            for uid in rng.sample(view.uids, min(3, len(view.uids))):
                view.records[uid] = MessageRecord(uid, frozenset({"\\Seen", "$Junk"}), WHEN, 1)
            view.version += 1
        else:
            view.vanished.update(rng.sample(view.uids, min(2, len(view.uids))))
            view.version += 1


def test_unchanged_view_uses_shared_index():
    """Two views of one snapshot share one index until one of them changes."""
    rng = random.Random(7)
    # A snapshot without \\Recent: the one stores hand to every SELECT.
    snapshot = dataclasses.replace(random_view(rng)._applied, recent=frozenset())
    first = SelectedView(mailbox=None, snapshot=snapshot, readonly=False)
    second = SelectedView(mailbox=None, snapshot=snapshot, readonly=False)
    assert first.flag_index() is second.flag_index()
    uid = first.uids[0]
    first._own()
    first.records[uid] = MessageRecord(uid, frozenset({"\\Flagged"}), WHEN, 1)
    first.version += 1
    assert first.flag_index() is not second.flag_index()
    key = SearchKey("AND", children=(SearchKey("FLAGGED"),))
    assert (1, uid) in search_by_sets(key, first)
    assert search_by_sets(key, second) == by_matcher(second, key)


def test_other_keys_fall_back():
    view = random_view(random.Random(3))
    for key in (SearchKey("LARGER", value=10), SearchKey("FROM", value=b"x"),
                SearchKey("OR", children=(SearchKey("SEEN"), SearchKey("SMALLER", value=5)))):
        assert search_by_sets(SearchKey("AND", children=(key,)), view) is None


def test_run_search_uses_sets_and_agrees():
    """run_search answers flag programs without reading any message."""
    view = random_view(random.Random(11))
    key = SearchKey("AND", children=(SearchKey("NOT", children=(SearchKey("SEEN"),)),
                                     SearchKey("UID", value=SequenceSet(((2, None),)))))
    assert run_search(view, key, None) == by_matcher(view, key)


def test_select_builds_the_flag_index_before_the_first_search(authed, monkeypatch):
    """
    SELECT leaves the flag index built (in the pool, after its answer),
    so the first UNSEEN search builds nothing.
    """
    import imapd.search.sets as sets

    authed.append("a1", b"Subject: one\r\n\r\nx\r\n")
    authed.append("a2", b"Subject: two\r\n\r\ny\r\n")
    authed.ok("s2 SELECT INBOX")
    authed.ok("s3 STORE 1 +FLAGS.SILENT (\\Seen)")
    authed.ok("s4 SELECT INBOX")

    def fail(*args, **kwargs):
        raise AssertionError("flag index built by the SEARCH")
    monkeypatch.setattr(sets.FlagIndex, "__init__", fail)
    assert authed.ok("s5 SEARCH UNSEEN")[0] == "* SEARCH 2"


def test_flag_search_needs_no_pool_round_trip(authed, monkeypatch):
    """
    Flag and sequence programs are answered from the flag index on the
    reactor thread; a program with another key still goes to the pool.
    """
    from imapd.commands import search as search_command

    authed.append("a1", b"Subject: one\r\n\r\nx\r\n")
    authed.append("a2", b"Subject: two\r\n\r\ny\r\n")
    authed.ok("s1 SELECT INBOX")
    authed.ok("s2 STORE 2 +FLAGS.SILENT (\\Flagged)")
    sent = []
    real_run = authed.proto.run

    def run(fn, *args, **kwargs):
        sent.append(fn)
        return real_run(fn, *args, **kwargs)
    monkeypatch.setattr(authed.proto, "run", run)
    assert authed.ok("s3 UID SEARCH UNSEEN NOT FLAGGED")[0] == "* SEARCH 1"
    assert search_command._search_indexed not in sent
    assert authed.ok("s4 SEARCH LARGER 1 FLAGGED")[0] == "* SEARCH 2"
    assert search_command._search_indexed in sent
    assert authed.transact("s5 SEARCH CHARSET X-NONE SEEN")[-1].startswith("s5 NO [BADCHARSET")
