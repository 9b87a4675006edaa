"""
L{imapd.fts.indexer.schedule}: indexing waits for a pause in a mailbox's
new mail, runs one job per mailbox at a time, and runs again once when
asked meanwhile.  A fake clock and a pool that runs jobs when told.
"""

from __future__ import annotations

from twisted.internet import defer, task

from imapd.fts import indexer


class _Pool:
    """A StoragePool stand-in: jobs wait until L{finish}."""

    per_key = 1

    def __init__(self) -> None:
        self.waiting: list[tuple] = []

    def run(self, clock, key, job):
        d = defer.Deferred()
        self.waiting.append((job, d))
        return d

    def finish(self) -> None:
        job, d = self.waiting.pop(0)
        d.callback(job())


def test_a_burst_is_indexed_once_after_it_ends():
    clock, pool, runs = task.Clock(), _Pool(), []
    for _ in range(50):  # an APPEND every 100 ms for 5 s
        indexer.schedule(clock, pool, "box", "key", lambda: runs.append(clock.seconds()))
        clock.advance(0.1)
    assert pool.waiting == []
    clock.advance(indexer.QUIET)
    assert len(pool.waiting) == 1
    pool.finish()
    assert len(runs) == 1 and indexer._pending == {}


def test_a_burst_never_waits_longer_than_max_wait():
    clock, pool = task.Clock(), _Pool()
    for _ in range(int(indexer.MAX_WAIT * 2 / 0.5)):
        indexer.schedule(clock, pool, "box", "key", lambda: None)
        clock.advance(0.5)
    # Started at MAX_WAIT although requests kept coming.
    assert len(pool.waiting) == 1
    pool.finish()
    pool.waiting.clear()
    indexer._pending.clear()


def test_asked_while_running_runs_once_more_after_a_pause():
    clock, pool, runs = task.Clock(), _Pool(), []
    indexer.schedule(clock, pool, "box", "key", lambda: runs.append(1))
    clock.advance(indexer.QUIET)
    assert len(pool.waiting) == 1
    for _ in range(3):
        indexer.schedule(clock, pool, "box", "key", lambda: runs.append(1))
    pool.finish()
    assert pool.waiting == []
    clock.advance(indexer.QUIET)
    pool.finish()
    assert len(runs) == 2 and indexer._pending == {}


def test_mailboxes_are_independent():
    clock, pool = task.Clock(), _Pool()
    indexer.schedule(clock, pool, "a", "key", lambda: "a")
    clock.advance(indexer.QUIET / 2)
    indexer.schedule(clock, pool, "b", "key", lambda: "b")
    clock.advance(indexer.QUIET / 2)
    assert [job() for job, _d in pool.waiting] == ["a"]
    clock.advance(indexer.QUIET / 2)
    assert [job() for job, _d in pool.waiting] == ["a", "b"]
    pool.finish()
    pool.finish()
    assert indexer._pending == {}
