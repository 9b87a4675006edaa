"""
L{storage.mbox.state.stored_prefix}: where the messages whose UID is
stored in the file end.  An append in place stores UIDs only after the
last stored one, so a wrong answer here would store a UID out of order
and renumber mail at the next parse; the answer kept from the parse must
always equal a fresh count.
"""

import dataclasses

import pytest

from storage.mbox.state import _extend_run, parse, stored_prefix

FROM = b"From a@b Mon Nov 23 10:00:00 2026\n"


def message(n: int, uid: int | None, base: bytes = b"") -> bytes:
    head = base + (b"X-UID: %d\n" % uid if uid is not None else b"")
    return FROM + head + b"Subject: %d\n\nbody %d\n\n" % (n, n)


def mbox(uids: list[int | None], last: int = 50) -> bytes:
    base = b"X-IMAPbase: 1000 %010d\n" % last
    return b"".join(message(n, uid, base if n == 0 else b"") for n, uid in enumerate(uids))


def counted(state) -> int | None:
    """The answer without what the parse kept."""
    return _extend_run(state.entries, 0, 0)


@pytest.mark.parametrize("uids, expected", [
    ([1, 2, 3], 3),
    ([1, 2, None, None], 2),
    ([None, None], 0),
    ([1, None, 3], None),  # an unstored UID between stored ones
    ([], 0),
])
def test_a_parse_knows_where_stored_uids_end(uids, expected):
    state = parse(mbox(uids), 7)
    assert [e.stored_uid for e in state.entries] == [u is not None for u in uids]
    assert stored_prefix(state) == expected
    assert counted(state) == expected


@pytest.mark.parametrize("before, added, expected", [
    ([1, 2, 3], [4, 5], 5),
    ([1, 2, 3], [None], 3),
    ([1, 2, None], [None], 2),
    ([1, 2, None], [7], None),  # stored after an unstored one
    ([1], [2], 2),
])
def test_an_incremental_parse_agrees_with_a_full_one(before, added, expected):
    whole = mbox(before + added)
    first = parse(mbox(before), 7)
    last_start = first.entries[-1].raw.start
    grown = parse(whole[last_start:], 7, base=last_start, previous=first)
    # What the incremental parse kept equals a count over its entries ...
    assert stored_prefix(grown) == counted(grown)
    assert grown.stored_run[0] == id(grown.entries)
    # ... and, for these files, what a full parse finds.
    assert stored_prefix(grown) == expected
    assert stored_prefix(parse(whole, 7)) == expected


def test_an_incremental_parse_after_an_unstored_uid_between_stored_ones():
    # The previous state has no answer (None); the new one counts again.
    first = parse(mbox([1, None, 3]), 7)
    assert stored_prefix(first) is None
    last_start = first.entries[-1].raw.start
    grown = parse(mbox([1, None, 3, 4])[last_start:], 7, base=last_start, previous=first)
    assert stored_prefix(grown) == counted(grown)


def test_a_state_with_other_entries_does_not_inherit_the_answer():
    state = parse(mbox([1, 2, 3]), 7)
    assert stored_prefix(state) == 3
    # The same state with a message that lost its stored UID (as a repair
    # or a patch in place builds one): the kept answer must not apply.
    changed = list(state.entries)
    changed[1] = dataclasses.replace(changed[1], stored_uid=False)
    other = dataclasses.replace(state, entries=tuple(changed))
    assert other.stored_run == state.stored_run  # carried over by replace ...
    assert stored_prefix(other) is None  # ... but not taken for these entries
    # The same entries tuple keeps it (a replace of another field).
    assert stored_prefix(dataclasses.replace(state, uidvalidity=9)) == 3
