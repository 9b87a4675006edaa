# -*- test-case-name: tests.index.test_index_cleanup -*-
"""
Tests for L{index.cleanup}: removing a mailbox's index, and the sweep of
the index directory by age and by total size.
"""

from __future__ import annotations

import os
import time

from index import MailboxIndex, index_path, remove_index, sweep


def _make(tmp_path, identity, rows=1, age=0.0):
    index_dir = str(tmp_path / "index")
    idx = MailboxIndex.open(index_dir, identity)
    idx.put_many(1, {uid: {"header": b"x" * 2000, "size": 10} for uid in range(1, rows + 1)})
    idx.close()
    path = index_path(index_dir, identity)
    if age:
        then = time.time() - age
        for p in (path, path + "-wal", path + "-shm"):
            if os.path.exists(p):
                os.utime(p, (then, then))
    return path


def _files(tmp_path):
    return sorted(os.listdir(tmp_path / "index"))


def test_remove_index(tmp_path):
    """A deleted mailbox's database, WAL and shared memory all go; others stay."""
    gone = _make(tmp_path, "u\0Old\0/m/Old")
    kept = _make(tmp_path, "u\0Keep\0/m/Keep")
    freed = remove_index(str(tmp_path / "index"), "u\0Old\0/m/Old")
    assert freed > 0
    assert not any(f.startswith(os.path.basename(gone)) for f in _files(tmp_path))
    assert os.path.exists(kept)
    assert remove_index(str(tmp_path / "index"), "u\0Old\0/m/Old") == 0


def test_sweep_by_age(tmp_path):
    """Databases unused for longer than max_age go; recent ones and foreign files stay."""
    old = _make(tmp_path, "old", age=40 * 86400)
    new = _make(tmp_path, "new", age=86400)
    (tmp_path / "index" / "README").write_text("not ours")
    result = sweep(str(tmp_path / "index"), max_age=30 * 86400)
    assert result.removed == 1 and result.freed > 0
    assert not os.path.exists(old)
    assert os.path.exists(new)
    assert "README" in _files(tmp_path)


def test_sweep_by_size_removes_least_recently_used(tmp_path):
    """Beyond max_bytes the oldest databases go first, until the directory fits."""
    paths = [_make(tmp_path, f"box{i}", rows=20, age=(5 - i) * 3600) for i in range(5)]
    total = sum(os.path.getsize(os.path.join(tmp_path, "index", f)) for f in _files(tmp_path))
    result = sweep(str(tmp_path / "index"), max_bytes=total * 3 // 5)
    assert result.kept_bytes <= total * 3 // 5
    present = [os.path.exists(p) for p in paths]
    assert present == [False] * result.removed + [True] * (5 - result.removed)
    assert 1 <= result.removed < 5


def test_sweep_counts_corrupt_leftovers(tmp_path):
    """Files moved aside as corrupt are swept like databases."""
    path = _make(tmp_path, "box")
    aside = path + ".corrupt-1234"
    os.rename(path, aside)
    then = time.time() - 100 * 86400
    os.utime(aside, (then, then))
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    sweep(str(tmp_path / "index"), max_age=86400)
    assert _files(tmp_path) == []


def test_no_limits_no_removal(tmp_path):
    """With neither limit, nothing is removed."""
    _make(tmp_path, "old", age=400 * 86400)
    assert sweep(str(tmp_path / "index")).removed == 0
    assert _files(tmp_path)


def test_missing_directory(tmp_path):
    """A missing index directory is logged, not raised."""
    assert sweep(str(tmp_path / "nope"), max_age=1).removed == 0


def test_open_touches_database(tmp_path):
    """Opening a database (even only to read it) makes it recently used for the sweep."""
    path = _make(tmp_path, "box", age=40 * 86400)
    idx = MailboxIndex.open(str(tmp_path / "index"), "box")
    assert idx.get_many(1, [1], ("size",)) == {1: {"size": 10}}
    assert time.time() - os.stat(path).st_mtime < 3600
    idx.close()
    assert sweep(str(tmp_path / "index"), max_age=30 * 86400).removed == 0


def test_removed_while_open_is_rebuilt(tmp_path):
    """A process whose database was swept away carries on with a fresh one."""
    _make(tmp_path, "box")
    idx = MailboxIndex.open(str(tmp_path / "index"), "box")
    assert idx.get_many(1, [1], ("size",))
    remove_index(str(tmp_path / "index"), "box")
    assert idx.get_many(1, [1], ("size",)) == {}
    idx.put_many(1, {1: {"size": 10}})
    assert idx.get_many(1, [1], ("size",)) == {1: {"size": 10}}
    idx.close()


class _InlinePool:
    """Runs the job at once (the sweep's own thread-safety is tested above)."""

    def __init__(self):
        self.keys = []

    def run(self, reactor, key, fn, *args, **kwargs):
        from twisted.internet import defer
        self.keys.append(key)
        return defer.maybeDeferred(fn, *args, **kwargs)


def test_sweep_service_runs_on_its_interval(tmp_path):
    """The server's sweep waits one interval after start, then sweeps every interval."""
    from twisted.internet import task

    from imapd.tap import IndexSweepService

    clock = task.Clock()
    pool = _InlinePool()
    old = _make(tmp_path, "old", age=40 * 86400)
    service = IndexSweepService(pool, clock, str(tmp_path / "index"), interval=3600,
                                max_age=30 * 86400, max_bytes=0)
    service.startService()
    assert os.path.exists(old) and pool.keys == []
    clock.advance(3600)
    assert not os.path.exists(old) and len(pool.keys) == 1
    older = _make(tmp_path, "older", age=50 * 86400)
    clock.advance(3600)
    assert not os.path.exists(older) and len(pool.keys) == 2
    service.stopService()
    assert not clock.getDelayedCalls()


def test_sweep_service_off_without_limits(tmp_path):
    """No age and no size limit (or no interval): no timer at all."""
    from twisted.internet import task

    from imapd.tap import IndexSweepService

    clock = task.Clock()
    for interval, age, size in ((3600, 0, 0), (0, 86400, 0)):
        service = IndexSweepService(_InlinePool(), clock, str(tmp_path), interval, age, size)
        service.startService()
        assert not clock.getDelayedCalls()
        service.stopService()
