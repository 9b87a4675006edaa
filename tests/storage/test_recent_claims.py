"""
C{\\Recent} across processes (RFC 3501 section 2.3.2; issue 13 rule 3):
several processes append mail (with flags, which a Maildir saves straight
into cur/) and sync the same mailbox at once; every message is recent to
exactly one of their opens.  Maildir decides by the modseq log's floor
(L{storage.modseq.ModseqLog.claim_recent}), mbox by C{Status: O}, both
under a lock in the shared store.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys

import pytest

from tests.storage.test_modseq import STORES, forget_logs, make_store

ROUNDS = 25


def _worker(kind: str, top: str, me: int, out: str) -> None:
    sys.path.insert(0, os.getcwd())
    store = make_store(kind, top)
    box = store.open("INBOX")
    box.sync()
    appended, recent = [], set()
    for i in range(ROUNDS):
        target = store.open("INBOX")
        tx = target.transaction()
        tx.append(b"Subject: p%d-%d\r\n\r\nbody\r\n" % (me, i), ["\\Seen"] if i % 2 else [])
        appended += tx.commit().appended
        target.close()
        recent |= box.sync().recent
    recent |= box.sync().recent
    box.close()
    with open(out, "w") as f:
        json.dump([appended, sorted(recent)], f)


@pytest.mark.parametrize("kind", STORES)
def test_each_message_is_recent_to_exactly_one_process(kind, tmp_path):
    top = str(tmp_path)
    make_store(kind, top).open("INBOX").sync()
    forget_logs()
    ctx = multiprocessing.get_context("spawn")
    outs = [os.path.join(top, "out%d.json" % i) for i in range(2)]
    procs = [ctx.Process(target=_worker, args=(kind, top, i, outs[i])) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    appended, claims = [], []
    for out in outs:
        with open(out) as f:
            mine, recent = json.load(f)
        appended += mine
        claims += recent
    assert len(appended) == 2 * ROUNDS
    assert sorted(claims) == sorted(appended), "a message recent to two opens, or to none"
    # A later open, writable or not, gets none of them.
    forget_logs()
    store = make_store(kind, top)
    assert store.open("INBOX").sync().recent == frozenset()
    assert store.open("INBOX", readonly=True).sync().recent == frozenset()
    assert store.status("INBOX").recent == 0
