"""
The differential harness under pytest: every script of
L{tests.differential.scripts} runs against our daemon and a private
Dovecot 2.3 on Maildir and on mbox, and each step's normalised replies
must be the same, or differ only as L{tests.differential.allowed} allows
(with the RFC section that allows it).

One test per (store, family) and one per (store, issue-13 rule script).
A test fails on an unexplained difference or on an allowed one that went
away.
"""

from __future__ import annotations

import pytest

from tests.differential import scripts
from tests.differential.harness import column, compare, describe, run_script
from tests.differential.normalize import normalize, tokens
from tests.differential.servers import both_servers

STORES = ("maildir", "mbox")
FAMILIES = sorted({s.family for s in scripts.FAMILIES})
RULES = [s.name for s in scripts.ALL if s.family == "rules"]


@pytest.fixture(scope="module", params=STORES)
def outcomes(request, tmp_path_factory, tls_files):
    """Store -> every script's step outcomes, both servers run once per store."""
    store = request.param
    with both_servers(tmp_path_factory.mktemp(f"diff-{store}"), store,
                      [s.user for s in scripts.ALL], tls=tls_files) as (ours, theirs):
        allowed = scripts.allowed_for(store)
        yield store, {s.name: compare(s, run_script(s, *ours), run_script(s, *theirs), allowed)
                      for s in scripts.ALL}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_same_as_dovecot(outcomes, family):
    """Every step of the family's scripts answers as Dovecot does, or as allowed."""
    _store, results = outcomes
    bad = [o for s in scripts.FAMILIES if s.family == family for o in results[s.name]
           if column(o.verdict) == 4]
    assert not bad, "\n".join(describe(o) for o in bad)


@pytest.mark.parametrize("name", RULES)
def test_rule_same_as_dovecot(outcomes, name):
    """The issue-13 rule script answers as Dovecot does (fails until the rule is fixed)."""
    _store, results = outcomes
    bad = [o for o in results[name] if o.verdict not in ("same", "allowed")]
    assert not bad, "\n".join(describe(o) for o in bad)


def test_allowed_entries_name_real_steps():
    """Each allowed difference names an existing script step."""
    steps = {s.name: len(s.steps) for s in scripts.ALL}
    from tests.differential.allowed import ALLOWED

    for (name, step, stores), entry in ALLOWED.items():
        assert name in steps and 0 <= step < steps[name], (name, step)
        assert set(stores) <= set(STORES) and "RFC" in entry.why


@pytest.mark.parametrize("untagged,tagged,expected", [
    # FETCH items in any order, split over two responses, flags as a set.
    ([b"* 1 FETCH (UID 4 FLAGS (\\Seen \\Answered))", b"* 1 FETCH (RFC822.SIZE 10)"],
     b"t1 OK done", ["* 1 FETCH (FLAGS (\\Answered \\Seen) RFC822.SIZE 10 UID 4)", "OK"]),
    # A FETCH before an EXPUNGE is renumbered to after it.
    ([b"* 3 FETCH (FLAGS ())", b"* 1 EXPUNGE"], b"t OK x",
     ["* 1 EXPUNGE", "* 2 FETCH (FLAGS ())", "OK"]),
    # Response text dropped; UIDVALIDITY and MODSEQ values are the server's.
    ([b"* OK [UIDVALIDITY 1234] UIDs valid", b"* 2 FETCH (MODSEQ (77))"],
     b"t OK [READ-WRITE] Select done (0.001 secs)",
     ["* 2 FETCH (MODSEQ (<modseq>))", "* OK [UIDVALIDITY <uidvalidity>]", "OK [READ-WRITE]"]),
    # Literal, quoted and literal8 strings compare by their bytes; a
    # space-padded day equals a zero-padded one.
    ([b'* 1 FETCH (BODY[] {2}\r\nab INTERNALDATE " 7-Dec-2025 00:00:00 +0000")'],
     b"t OK x", ['* 1 FETCH (BODY[] "ab" INTERNALDATE "7-Dec-2025 00:00:00 +0000")', "OK"]),
    ([b"* 1 FETCH (BINARY[1] ~{2}\r\nab)"], b"t OK x", ['* 1 FETCH (BINARY[1] "ab")', "OK"]),
])
def test_normalize(untagged, tagged, expected):
    """Normalisation removes only what the RFCs leave free."""
    assert normalize(untagged, tagged) == expected


def test_tokens_keep_sections_whole():
    """A section spec with spaces stays one atom."""
    parsed, _ = tokens(b"(BODY[HEADER.FIELDS (A B)]<0> NIL)")
    assert parsed == [[b"BODY[HEADER.FIELDS (A B)]<0>", b"NIL"]]
