"""
L{storage.mbox.repair.plan_repair} on bytes: which X-UIDs a repair keeps
when X-IMAPbase no longer reads (the store's tests are in
tests/imapd/adminops/test_repair.py).
"""

import pytest

from storage.errors import StoreError
from storage.mbox.repair import plan_repair


def mbox(base, xuids):
    """An mbox whose first message has C{base} and whose messages have C{xuids}."""
    out = []
    for i, uid in enumerate(xuids):
        head = f"From a@b Mon Jan  5 10:00:0{i} 2026\nSubject: m{i}\n"
        if i == 0 and base is not None:
            head += f"X-IMAPbase: {base}\n"
        if uid is not None:
            head += f"X-UID: {uid}\n"
        out.append(head + f"\nbody {i}\n\n")
    return "".join(out).encode()


def uids(repair):
    return [e.uid for e in repair.state.entries]


def test_one_stray_xuid_costs_one_message():
    """A huge X-UID from outside mail in the middle does not push the rest out."""
    repair = plan_repair(mbox("1700000000 x", [3, 4, 4000000000 - 1, 5, 8]), 1,
                         witness=(1700000000, 8))
    assert uids(repair) == [3, 4, 9, 5, 8]
    assert (repair.uidvalidity, repair.last_uid, repair.kept, repair.renumbered) == (
        1700000000, 9, 4, 1)


def test_repeated_and_unreadable_xuids_get_new_uids_after_the_last():
    """A copy that kept its original's X-UID, and an unreadable X-UID, get UIDs after all."""
    repair = plan_repair(mbox("1700000000 0000000012", [10, 10, "1x", 11]), 1)
    # X-IMAPbase reads: the reader's UIDs (after its last UID, 12) are
    # what clients saw; the repair writes them down.
    assert uids(repair) == [10, 13, 14, 11] and repair.renumbered == 2
    data = mbox("1700000000 000000001#", [10, 10, "1x", 11])
    repair = plan_repair(data, 1, witness=(1700000000, 11))
    assert uids(repair) == [10, 12, 13, 11] and repair.last_uid == 13


def test_no_uidvalidity_anywhere():
    """No X-IMAPbase, no witness, no --uidvalidity: refused; a witness or a value serves."""
    data = mbox(None, [1, 2])
    with pytest.raises(StoreError, match="--uidvalidity"):
        plan_repair(data, 1)
    assert plan_repair(data, 1, witness=(42, 5)).uidvalidity == 42
    assert plan_repair(data, 1, witness=(42, 5)).last_uid == 5
    # The last UID given is unknown (no X-IMAPbase, a witness of another
    # UIDVALIDITY): a gap, so that no expunged UID comes back.
    assert plan_repair(data, 1, uidvalidity=7, witness=(42, 5)).last_uid == 1002


def test_fresh_spool_needs_nothing():
    """A spool with neither X-IMAPbase nor X-UID is new mail, not damage."""
    assert plan_repair(mbox(None, [None, None]), 1).state is None
