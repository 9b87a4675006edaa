"""
Several processes on one node using one mailbox's full-text file at once
(real processes, a real Maildir and index directory): three indexers
(L{imapd.fts.indexer.update_mailbox}, each with its own store and SQLite
connection, as mail workers or several nodes' worth of processes would
have) and a reader asking the index all the while.  SQLite's locking (WAL,
C{busy_timeout}, one transaction per batch) keeps them apart: no process
fails, the reader always gets an answer, and the index ends complete,
consistent and equal to a scan.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.imapd.fts import fts_corpus

REPO = Path(__file__).resolve().parents[3]

#: One process: open the store, run update_mailbox (or, with "read",
#: ask the index for C{linux} until the indexers are done); print JSON.
CHILD = r"""
import json, sys, time
from storage.registry import open_store
from imapd.cache import mailbox_identity
from imapd.fts.indexer import update_mailbox
from imapd.fts.query import fts_index

role, location, index_dir, stop = sys.argv[1:5]
store = open_store(location, "u", None, index_dir)
if role == "index":
    result = update_mailbox(store, "u", index_dir, "INBOX")
    print(json.dumps([result.indexed, result.documents]))
else:
    mailbox = store.open("INBOX", readonly=True)
    uidvalidity = mailbox.sync().uidvalidity
    index = fts_index(index_dir, mailbox_identity("u", mailbox))
    answers = failures = 0
    import os
    while not os.path.exists(stop) or answers < 5:
        if index.match(["body"], "linux") is None or not index.begin_read():
            failures += 1
        else:
            index.documents(uidvalidity)
            index.end_read()
            answers += 1
    print(json.dumps([answers, failures]))
"""


def test_three_indexers_and_a_reader_at_once(tmp_path):
    from imapd.message import Message
    from imapd.search.match import needle
    from imapd.sort.collate import search_fold

    sample = fts_corpus.messages()
    maildir = tmp_path / "mail" / "u"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for n, data in enumerate(sample, 1):
        (maildir / "cur" / f"{1000 + n}.M{n}.procs:2,").write_bytes(data)
    location = f"maildir:{tmp_path}/mail/%u"
    index_dir = str(tmp_path / "index")
    stop = str(tmp_path / "stop")
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def child(role):
        return subprocess.Popen([sys.executable, "-c", CHILD, role, location, index_dir, stop],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    # The file exists before the reader starts (it never creates it).
    first = child("index")
    assert first.wait(120) == 0, first.stderr.read()
    path = next(str(p) for p in Path(index_dir).glob("*.db")
                if _has_doc(str(p)))
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM doc")
    conn.execute("DELETE FROM text")
    conn.commit()
    conn.close()

    reader = child("read")
    indexers = [child("index") for _ in range(3)]
    results = []
    for p in indexers:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out))
    Path(stop).touch()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err.decode()
    answers, failures = json.loads(out)
    assert failures == 0 and answers >= 5
    # Together they indexed every message (one may have done it all).
    assert sum(indexed for indexed, _documents in results) >= len(sample)
    assert max(documents for _indexed, documents in results) == len(sample)

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO text(text) VALUES ('integrity-check')")
        assert conn.execute("SELECT count(*) FROM doc").fetchone()[0] == len(sample)
        complete = conn.execute("SELECT count(*) FROM doc WHERE complete = 1").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM text").fetchone()[0] == complete
        found = {uid for (uid,) in conn.execute(
            "SELECT rowid FROM text WHERE text MATCH ?", ('{body} : "linux"',))}
    finally:
        conn.close()
    # The scan, on the store's own UIDs (never the order of the files).
    from storage.registry import open_store

    word = needle(b"linux", None)
    mailbox = open_store(location, "u", None, index_dir).open("INBOX", readonly=True)
    try:
        scanned = {r.uid for r in mailbox.sync().messages
                   if any(word in search_fold(t)
                          for t in Message(mailbox.read(r.uid)).decoded_text())}
    finally:
        mailbox.close()
    assert scanned and found == scanned


def _has_doc(path: str) -> bool:
    conn = sqlite3.connect(path)
    try:
        conn.execute("SELECT 1 FROM doc LIMIT 1")
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()
