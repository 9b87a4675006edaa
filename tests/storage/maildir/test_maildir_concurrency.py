# -*- test-case-name: tests.storage.maildir.test_maildir_concurrency -*-
"""
Several real processes on one Maildir (DESIGN.md "Tests and
measurements"): no UID is ever given twice, expunged UIDs are never
reused, and every process converges on the same view.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from storage.maildir.store import MaildirStore
from storage.maildir.uidlist import UidlistFile

from storage_maildir_testutil import make_store

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

WORKER = r"""
import json, os, sys
from storage.maildir.store import MaildirStore

root, ident, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = MaildirStore(root, "user", fsync=False)
mailbox = store.open("INBOX")
appended, expunged, seen = [], [], []
for i in range(count):
    tx = mailbox.transaction()
    flags = ["\\Seen"] if i % 3 == 0 else ([f"kw{ident}"] if i % 3 == 1 else [])
    tx.append(b"Subject: %d-%d\r\n\r\nbody\r\n" % (ident, i), flags)
    result = tx.commit()
    appended.extend(result.appended)
    snap = mailbox.sync()
    seen.append([m.uid for m in snap.messages])
    if i % 5 == 4:
        # Expunge one of our own messages and flag another process's one.
        tx = mailbox.transaction()
        tx.expunge(appended[-2])
        others = [m.uid for m in snap.messages if m.uid not in appended]
        if others:
            tx.set_flags(others[0], frozenset({"\\Flagged"}))
        expunged.extend(tx.commit().expunged)
json.dump({"appended": appended, "expunged": expunged, "seen": seen}, sys.stdout)
"""


def test_processes_never_share_or_reuse_uids(tmp_path):
    """
    4 processes x 50 appends, with expunges and flag changes in between,
    on one Maildir: every appended UID is unique, the final state is what
    they did, UIDs only grow, and a new append gets a fresh UID.
    """
    store = make_store(tmp_path)
    store.open("INBOX")  # create the uidlist before the race starts
    nprocs, count = 4, 50
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store.root, str(n), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        for n in range(nprocs)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out))
    appended = [u for r in results for u in r["appended"]]
    expunged = {u for r in results for u in r["expunged"]}
    assert len(appended) == nprocs * count
    assert len(set(appended)) == len(appended), "a UID was given twice"
    assert expunged <= set(appended)
    assert len(expunged) == nprocs * (count // 5)
    # What each process saw only ever grew at the top: a UID, once gone,
    # never came back.
    for r in results:
        gone: set[int] = set()
        previous: set[int] = set()
        for view in r["seen"]:
            now = set(view)
            gone |= previous - now
            assert not (gone & now), "an expunged UID came back"
            previous = now
    # Two fresh objects converge on the same state: exactly the survivors.
    a = MaildirStore(store.root, "user").open("INBOX").sync()
    b = MaildirStore(store.root, "user").open("INBOX", readonly=True).sync()
    assert a.messages == b.messages
    assert {m.uid for m in a.messages} == set(appended) - expunged
    flagged = [m for m in a.messages if "\\Flagged" in m.flags]
    assert flagged
    # Expunged UIDs are never reused.
    tx = MaildirStore(store.root, "user").open("INBOX").transaction()
    tx.append(b"last\r\n")
    (last,) = tx.commit().appended
    assert last > max(appended)
    uidlist = UidlistFile(store.root).read()
    assert [r.uid for r in uidlist.records] == sorted(r.uid for r in uidlist.records)
    assert not os.listdir(os.path.join(store.root, "tmp"))
    assert not [e for e in os.listdir(store.root) if e.endswith(".lock")]
