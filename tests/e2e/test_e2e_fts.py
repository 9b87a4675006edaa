"""
The full-text index with the real daemon (issue 17), in the default
multi-process mode (master, login processes, mail workers): the user's
mail worker indexes a large Maildir in the background after an APPEND,
is killed with SIGKILL in the middle, and the index it leaves gives the
same answers as the scan afterwards, both while the rest is indexed and
once it is complete.
"""

from __future__ import annotations

import glob
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from e2e_helpers import LineClient, daemon_pids, start_server
from e2e_sessions import make_maildir

CORPUS = next(p / "shared" / "corpus" for p in Path(__file__).resolve().parents
              if (p / "shared" / "corpus").is_dir())

#: Enough mail that indexing takes seconds (several batches of
#: L{imapd.fts.indexer.BATCH}).
COUNT = 3000

PROGRAMS = [
    "TEXT the", "BODY linux", "TEXT razor", "BODY zzzxqj", 'TEXT "click here"',
    "NOT TEXT money", "OR BODY spamassassin TEXT freshrpms", "BODY mortgage SUBJECT re",
    "TEXT fork NOT BODY http", "BODY ab", "TEXT \"Content-Type: text/html\"",
]


def _fill(maildir: Path) -> int:
    make_maildir(maildir)
    n = 0
    for folder in ("easy_ham", "spam_2", "easy_ham_2", "spam", "hard_ham"):
        for path in sorted((CORPUS / "spamassassin" / folder / "cur").iterdir()):
            n += 1
            (maildir / "cur" / f"{1000000 + n}.M{n}.fts-e2e:2,").write_bytes(path.read_bytes())
            if n == COUNT:
                return n
    return n


def _fts_file(root: Path) -> str | None:
    for path in glob.glob(str(root / "**" / "*.db"), recursive=True):
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                conn.execute("SELECT count(*) FROM doc")
                return path
            finally:
                conn.close()
        except sqlite3.Error:
            continue
    return None


def _counts(path: str) -> tuple[int, int]:
    """(messages the index has, text rows), read-only, beside the daemon."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return (conn.execute("SELECT count(*) FROM doc").fetchone()[0],
                conn.execute("SELECT count(*) FROM text").fetchone()[0])
    finally:
        conn.close()


def _answers(server) -> list[str]:
    client = LineClient(server)
    try:
        client.cmd("EXAMINE INBOX")
        return [" ".join(client.cmd(f"UID SEARCH {p}")) for p in PROGRAMS]
    finally:
        client.close()


def _wait_for(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigkill_while_indexing_leaves_a_correct_index(tmp_path, tls_files):
    root = tmp_path
    total = _fill(root / "mail" / "alice")
    server = start_server(root, tls_files)
    client = LineClient(server)
    # An APPEND: the worker indexes INBOX after the answer, all of it.
    client.append(0)
    total += 1
    path = None

    def started():
        nonlocal path
        path = path or _fts_file(root)
        return path is not None and _counts(path)[0] >= 200
    _wait_for(started, "the first batches in the index")
    pids = daemon_pids(server.daemon.process.pid)
    assert len(pids) > 2  # master, login process(es), mail worker(s)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.daemon.process.wait(30)
    # Dead processes can neither hold locks nor write any more.
    documents, texts = _counts(path)
    assert 0 < documents < total, documents

    # What SIGKILL left is a consistent database: SQLite's check, FTS5's
    # own check of its index against its content, and every complete
    # document with its text row.
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO text(text) VALUES ('integrity-check')")
        complete = conn.execute("SELECT count(*) FROM doc WHERE complete = 1").fetchone()[0]
        assert complete == texts
    finally:
        conn.close()

    # Again, on the half-built index: the answers are the scan's.
    server = start_server(root, tls_files, name="imapd-after-kill")
    half = _answers(server)
    _wait_for(lambda: _counts(path)[0] == total, "the rest indexed")
    full = _answers(server)
    server.daemon.stop()
    server = start_server(root, tls_files, {"fts": {"enabled": False}}, name="imapd-no-fts")
    scanned = _answers(server)
    server.daemon.stop()
    assert half == scanned
    assert full == scanned
    assert sum(len(a.split()) - 2 for a in scanned) > total  # the programs find mail
