# -*- test-case-name: tests.index.test_mailbox_index -*-
"""
Tests for L{index.mailbox}: the per-node cache of parsed message data.

It is a cache (DESIGN.md rule 2), so besides reading back what was written
these tests damage the files in the ways disks and admins do and check that
the caller never sees an exception.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap

from twisted.logger import capturedLogs, formatEvent

from index import FIELDS, MailboxIndex, index_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _row(uid: int, size: int = 100) -> dict:
    return {"envelope": b"(env %d)" % uid, "body": b"(body %d)" % uid,
            "bodystructure": b"(bs %d)" % uid, "header": b"Subject: %d\r\n\r\n" % uid,
            "size": size, "search_from": "\0alice %d" % uid, "search_to": "",
            "search_cc": "", "search_bcc": "", "search_subject": "\0%d" % uid,
            "sortkeys": '["%d"]' % uid, "internaldate": 1.7e9 + uid,
            "preview": "preview %d" % uid}


def _open(tmp_path, identity="demo\0INBOX\0/mail/demo") -> MailboxIndex:
    return MailboxIndex.open(str(tmp_path / "index"), identity)


def test_put_then_get(tmp_path):
    """Rows written are read back, for the asked columns only."""
    idx = _open(tmp_path)
    idx.put_many(7, {1: _row(1), 2: _row(2)})
    got = idx.get_many(7, [1, 2, 3], ("envelope", "size"))
    assert got == {1: {"envelope": b"(env 1)", "size": 100},
                   2: {"envelope": b"(env 2)", "size": 100}}
    assert idx.get_many(7, [2], FIELDS)[2] == _row(2)
    idx.close()


def test_file_name_is_sha256_of_identity(tmp_path):
    """One database per mailbox, named by the SHA-256 of its identity."""
    idx = _open(tmp_path, "u\0Box\0/x")
    import hashlib
    assert idx.path == index_path(str(tmp_path / "index"), "u\0Box\0/x")
    assert os.path.basename(idx.path) == hashlib.sha256(b"u\0Box\0/x").hexdigest() + ".db"
    assert os.path.exists(idx.path)
    idx.close()


def test_files_are_private(tmp_path):
    """The database and its WAL hold mail headers: only the server's user may read them."""
    import stat
    idx = _open(tmp_path)
    idx.put_many(1, {1: _row(1)})
    for name in glob.glob(idx.path + "*"):
        assert stat.S_IMODE(os.stat(name).st_mode) & 0o077 == 0, name
    idx.close()


def test_wal_mode(tmp_path):
    """The database is in WAL mode, so readers in other processes never block on a writer."""
    import sqlite3
    idx = _open(tmp_path)
    idx.put_many(1, {1: _row(1)})
    conn = sqlite3.connect(idx.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    idx.close()


def test_partial_rows_merge(tmp_path):
    """A batch that computed only some columns keeps the others."""
    idx = _open(tmp_path)
    idx.put_many(1, {5: {"envelope": b"E", "size": 10}})
    idx.put_many(1, {5: {"bodystructure": b"B", "size": 10}})
    assert idx.get_many(1, [5], ("envelope", "bodystructure", "body")) == {
        5: {"envelope": b"E", "bodystructure": b"B", "body": None}}
    idx.close()


def test_other_size_replaces_row(tmp_path):
    """A row written with another size belonged to another message: none of its columns survive."""
    idx = _open(tmp_path)
    idx.put_many(1, {5: {"envelope": b"E", "bodystructure": b"B", "size": 10}})
    idx.put_many(1, {5: {"envelope": b"E2", "size": 11}})
    assert idx.get_many(1, [5], ("envelope", "bodystructure", "size")) == {
        5: {"envelope": b"E2", "bodystructure": None, "size": 11}}
    idx.close()


def test_uidvalidity_change_wipes(tmp_path):
    """Rows of an old UIDVALIDITY are not served and are dropped at the next write."""
    idx = _open(tmp_path)
    idx.put_many(1, {1: _row(1), 2: _row(2)})
    assert idx.get_many(2, [1, 2]) == {}
    idx.put_many(2, {3: _row(3)})
    assert idx.get_many(1, [1, 2]) == {}
    assert list(idx.get_many(2, [1, 2, 3])) == [3]
    idx.close()


def test_prune(tmp_path):
    """prune drops expunged UIDs and every other UIDVALIDITY's rows."""
    idx = _open(tmp_path)
    idx.put_many(1, {u: _row(u) for u in range(1, 11)})
    idx.prune(1, [2, 4, 6])
    assert sorted(idx.get_many(1, range(1, 11))) == [2, 4, 6]
    idx.prune(9, [2])
    assert idx.get_many(1, [2]) == {}
    idx.close()


def test_many_uids(tmp_path):
    """Lookups of more UIDs than SQLite takes parameters in one statement work."""
    idx = _open(tmp_path)
    idx.put_many(1, {u: {"envelope": b"e", "size": 1} for u in range(1, 3001)})
    assert len(idx.get_many(1, range(1, 3001), ("envelope",))) == 3000
    idx.close()


def _moved_aside(path: str) -> list[str]:
    return glob.glob(path + ".corrupt-*")


def test_corrupt_file_rebuilt_and_logged(tmp_path):
    """A file that is not a database is logged, moved aside and rebuilt empty; no exception."""
    path = index_path(str(tmp_path / "index"), "x")
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"this is not an SQLite database at all" * 100)
    with capturedLogs() as events:
        idx = MailboxIndex.open(str(tmp_path / "index"), "x")
        assert idx.get_many(1, [1]) == {}
        idx.put_many(1, {1: _row(1)})
        assert list(idx.get_many(1, [1])) == [1]
    assert _moved_aside(path)
    assert any("moved to" in formatEvent(e) for e in events)
    idx.close()


def test_scribbled_while_open(tmp_path):
    """A database overwritten with garbage under an open connection is rebuilt at the next call."""
    idx = _open(tmp_path)
    idx.put_many(1, {u: _row(u) for u in range(1, 200)})
    idx.close()
    idx = _open(tmp_path)
    assert len(idx.get_many(1, range(1, 200))) == 199
    with open(idx.path, "r+b") as f:
        f.write(os.urandom(8192))
    with capturedLogs():
        # Whatever SQLite makes of it, the caller gets rows or nothing.
        got = idx.get_many(1, range(1, 200))
        assert isinstance(got, dict)
        idx.put_many(1, {500: _row(500)})
        # A fresh connection notices the damage and starts over; the old
        # one goes on without raising.
        fresh = _open(tmp_path)
        fresh.put_many(1, {600: _row(600)})
        assert 600 in fresh.get_many(1, [600])
        assert isinstance(idx.get_many(1, [600]), dict)
        fresh.close()
    idx.close()


def test_truncated_file(tmp_path):
    """A database cut short (a crash, a full disk) never raises; it is rebuilt or read as far as valid."""
    idx = _open(tmp_path)
    idx.put_many(1, {u: _row(u) for u in range(1, 500)})
    idx.close()
    size = os.path.getsize(idx.path)
    with open(idx.path, "r+b") as f:
        f.truncate(size // 3)
    with capturedLogs():
        idx = _open(tmp_path)
        got = idx.get_many(1, range(1, 500))
        assert isinstance(got, dict)
        idx.put_many(1, {900: _row(900)})
        assert 900 in idx.get_many(1, [900])
    idx.close()


def test_truncated_to_nothing(tmp_path):
    """An empty file is an empty cache."""
    idx = _open(tmp_path)
    idx.put_many(1, {1: _row(1)})
    idx.close()
    open(idx.path, "wb").close()
    idx = _open(tmp_path)
    assert idx.get_many(1, [1]) == {}
    idx.put_many(1, {2: _row(2)})
    assert list(idx.get_many(1, [1, 2])) == [2]
    idx.close()


def test_deleted_while_open(tmp_path):
    """Rows written after the file was deleted under an open connection land in a new file, not a dead inode."""
    idx = _open(tmp_path)
    idx.put_many(1, {1: _row(1)})
    for name in glob.glob(idx.path + "*"):
        os.unlink(name)
    assert idx.get_many(1, [1]) == {}
    idx.put_many(1, {2: _row(2)})
    other = _open(tmp_path)
    assert list(other.get_many(1, [1, 2])) == [2]
    other.close()
    idx.close()


def test_directory_deleted(tmp_path):
    """The whole index directory removed under a connection is recreated."""
    import shutil
    idx = _open(tmp_path)
    idx.put_many(1, {1: _row(1)})
    shutil.rmtree(tmp_path / "index")
    idx.put_many(1, {2: _row(2)})
    assert list(idx.get_many(1, [1, 2])) == [2]
    idx.close()


def test_unwritable_directory(tmp_path):
    """An index directory that cannot be created costs one log line (not one per call) and no caching."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with capturedLogs() as events:
        idx = MailboxIndex.open(str(blocker / "index"), "x")
        idx.put_many(1, {1: _row(1)})
        assert idx.get_many(1, [1]) == {}
        idx.get_many(1, [1])
    assert len([e for e in events if "cannot open" in formatEvent(e)]) == 1
    idx.close()


_WRITER = textwrap.dedent("""
    import sys
    from index import MailboxIndex
    index_dir, start = sys.argv[1], int(sys.argv[2])
    idx = MailboxIndex.open(index_dir, "shared")
    for batch in range(40):
        base = start + batch * 25
        idx.put_many(1, {u: {"envelope": b"e%d" % u, "size": u} for u in range(base, base + 25)})
        idx.get_many(1, range(base, base + 25))
    idx.close()
""")


def test_two_processes_write_concurrently(tmp_path):
    """Two processes filling one database at once lose no rows and log no failures."""
    index_dir = str(tmp_path / "index")
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, index_dir, str(start)],
                              env=env, stderr=subprocess.PIPE)
             for start in (1, 100001)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    idx = MailboxIndex.open(index_dir, "shared")
    uids = list(range(1, 1001)) + list(range(100001, 101001))
    got = idx.get_many(1, uids, ("envelope",))
    assert len(got) == 2000
    assert got[100500] == {"envelope": b"e100500"}
    idx.close()


def test_imports_nothing_from_storage_or_imapd():
    """STYLE.md item 9: the index package depends on neither the stores nor the protocol."""
    code = ("import sys, index, index.mailbox; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('storage', 'imapd')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env=dict(os.environ, PYTHONPATH=ROOT))


def test_locked_database_not_moved_aside(tmp_path, monkeypatch):
    """A database another process holds locked past busy_timeout costs a miss and dropped writes, not the file."""
    import sqlite3

    import index.mailbox
    monkeypatch.setattr(index.mailbox, "BUSY_TIMEOUT_MS", 50)
    idx = _open(tmp_path)
    idx.put_many(1, {1: _row(1)})
    holder = sqlite3.connect(idx.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with capturedLogs():
            idx.put_many(1, {2: _row(2)})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not _moved_aside(idx.path)
    assert list(idx.get_many(1, [1, 2])) == [1]
    idx.close()


def test_sections(tmp_path):
    """Section answers are stored with the row's size, read back per spec, and go with prune and UIDVALIDITY."""
    idx = _open(tmp_path)
    idx.put_many(1, {1: {"size": 10, "sections": {"A": b"a1", "B": b"b1"}},
                     2: {"size": 20, "sections": {"A": b"a2"}}})
    assert idx.get_sections(1, [1, 2, 3], "A") == {1: (10, b"a1"), 2: (20, b"a2")}
    assert idx.get_sections(1, [1, 2], "B") == {1: (10, b"b1")}
    idx.put_many(1, {1: {"size": 10, "sections": {"A": b"a1bis"}}})
    assert idx.get_sections(1, [1], "A") == {1: (10, b"a1bis")}
    idx.prune(1, [2])
    assert idx.get_sections(1, [1, 2], "A") == {2: (20, b"a2")}
    idx.put_many(2, {5: {"size": 1, "sections": {"A": b"x"}}})
    assert idx.get_sections(1, [2], "A") == {}
    idx.close()


def test_old_schema_rebuilt(tmp_path):
    """A file from an older layout (another user_version) is rebuilt empty, not misread."""
    import sqlite3
    idx = _open(tmp_path)
    idx.put_many(1, {1: _row(1)})
    idx.close()
    conn = sqlite3.connect(idx.path)
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    idx = _open(tmp_path)
    assert idx.get_many(1, [1]) == {}
    idx.put_many(1, {1: _row(1)})
    assert list(idx.get_many(1, [1])) == [1]
    idx.close()


def test_open_waits_for_a_locked_new_database(tmp_path, monkeypatch):
    """
    Two processes creating one index at once: the loser of the WAL switch
    sees "database is locked" and must wait and retry, not give up its
    cache (and drop every write) for RETRY_AFTER seconds.
    """
    import sqlite3

    import index.mailbox

    real = index.mailbox.MailboxIndex._connect_once
    failures = iter([True, True, False])

    def flaky(self):
        if next(failures):
            raise sqlite3.OperationalError("database is locked")
        return real(self)

    monkeypatch.setattr(index.mailbox.MailboxIndex, "_connect_once", flaky)
    idx = MailboxIndex.open(str(tmp_path / "index"), "racing")
    idx.put_many(1, {7: {"envelope": b"e7", "size": 7}})
    assert idx.get_many(1, [7], ("envelope",)) == {7: {"envelope": b"e7"}}
    idx.close()
