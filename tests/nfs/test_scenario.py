"""
The two-node scenario of issue 20 (scenario.py): its checker finds each
kind of violation, and the scenario itself runs clean on a plain
directory (the control: a local filesystem's coherence is perfect).
"""

from __future__ import annotations

import pytest

from scenario import INVARIANTS, Ledger, check, run_scenario


def _ledger() -> Ledger:
    ledger = Ledger()
    ledger.appended = {"<a>": 1, "<b>": 2, "<c>": 3}
    ledger.flags = {"<a>": ("\\Seen",), "<b>": (), "<c>": ()}
    ledger.delivered = {"<d>"}
    ledger.expunged = {"<c>"}
    ledger.uidvalidities = {7}
    ledger.modseqs = {"<a>": 5}
    ledger.highest_modseq = 6
    return ledger


def _view(rows, uidvalidity=7, highest=6):
    return {"uidvalidity": uidvalidity, "highestmodseq": highest, "rows": sorted(rows)}


GOOD = [(1, "<a>", ("\\Seen",), 5), (2, "<b>", (), 2), (4, "<d>", (), 6)]


def test_a_clean_view_has_no_violation():
    verdict = check(_ledger(), [_view(GOOD), _view(GOOD)])
    assert verdict["violations"] == {k: 0 for k in INVARIANTS}


@pytest.mark.parametrize("kind, rows, kwargs", [
    ("missing", GOOD[:2], {}),
    ("duplicated", GOOD + [(5, "<d>", (), 6)], {}),
    ("renumbered", [(9, "<a>", ("\\Seen",), 5)] + GOOD[1:], {}),
    ("expunged_back", GOOD + [(3, "<c>", (), 3)], {}),
    ("flags", [(1, "<a>", (), 5)] + GOOD[1:], {}),
    ("uidvalidity", GOOD, {"uidvalidity": 8}),
    ("modseq_backwards", [(1, "<a>", ("\\Seen",), 4)] + GOOD[1:], {}),
    ("modseq_backwards", GOOD, {"highest": 5}),
])
def test_each_violation_is_counted(kind, rows, kwargs):
    verdict = check(_ledger(), [_view(rows, **kwargs), _view(GOOD)])
    assert verdict["violations"][kind] >= 1, verdict
    assert verdict["examples"][kind]


def test_nodes_that_disagree_are_counted():
    other = [(1, "<a>", ("\\Seen",), 5), (2, "<b>", ("\\Flagged",), 2), (4, "<d>", (), 6)]
    verdict = check(_ledger(), [_view(GOOD), _view(other)])
    assert verdict["violations"]["disagree"] == 2


def test_a_flag_store_without_answer_is_not_judged():
    ledger = _ledger()
    ledger.uncertain = {"<a>"}
    verdict = check(ledger, [_view([(1, "<a>", (), 5)] + GOOD[1:])] * 2)
    assert verdict["violations"]["flags"] == 0


def test_maildir_scenario_on_a_plain_directory(tmp_path, tls_files):
    """The control: the same run without NFS behaviour keeps every rule."""
    result = run_scenario(tmp_path, tls_files, "maildir", seconds=8, clients_per_node=2,
                          plain=True)
    assert not result.errors, result.summary()
    assert result.operations.get("append", 0) > 20 and result.delivered > 10, result.summary()
    assert result.total == 0, result.summary()


def test_maildir_scenario_through_nfs_mounts(tmp_path, tls_files):
    """
    Issue 20: two nodes and an MDA on three nfsfuse mounts (3 s caches, 5%
    link replay, +-2 s clocks) for 20 s; every storage rule holds.  Before
    the flushes this run had 9-118 violations (APPENDUIDs renumbered,
    EXPUNGEs undone, STOREs lost).
    """
    result = run_scenario(tmp_path, tls_files, "maildir", seconds=20, clients_per_node=2)
    assert not result.errors, result.summary()
    assert result.operations.get("append", 0) > 30, result.summary()
    assert result.operations.get("store", 0) > 10, result.summary()
    assert result.operations.get("expunge", 0) > 5, result.summary()
    assert result.delivered > 20, result.summary()
    assert result.total == 0, result.summary()
