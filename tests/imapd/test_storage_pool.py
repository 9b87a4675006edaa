# -*- test-case-name: tests.imapd.test_storage_pool -*-
"""
L{imapd.server.StoragePool}: a stuck store takes a bounded share of the
storage threads, and the pool grows past stuck jobs, so other mailboxes
keep being served.  Driven by a fake thread pool whose jobs the test
finishes by hand, and a fake clock: no real threads, no timing.
"""

from __future__ import annotations

from imapd.server import StoragePool


class _Reactor:
    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class _FakeThreadPool:
    """
    Runs nothing until the test says so; enforces C{max} like ThreadPool.
    StoragePool hands it C{(work, cell, fn, args, kwargs)}; a job given a
    "thread" gets its start time written into C{cell}, as C{work} would.
    """

    def __init__(self, maxthreads, clock=lambda: 0.0):
        self.min = 0
        self.max = maxthreads
        self.clock = clock
        self.jobs = []      # (on_result, work, args) holding a "thread"
        self.backlog = []   # waiting for a free thread

    def callInThreadWithCallback(self, on_result, work, *args):
        self.backlog.append((on_result, work, args))
        self._assign()

    def _assign(self):
        while self.backlog and len(self.jobs) < self.max:
            job = self.backlog.pop(0)
            job[2][0][0] = self.clock()
            self.jobs.append(job)

    def adjustPoolsize(self, minthreads=None, maxthreads=None):
        self.max = maxthreads
        self._assign()

    def finish(self, fn):
        """Complete the first running job whose function is C{fn}."""
        for job in self.jobs:
            on_result, work, (cell, job_fn, args, kwargs) = job
            if job_fn is fn:
                self.jobs.remove(job)
                on_result(True, job_fn(*args, **kwargs))
                self._assign()
                return
        raise AssertionError(f"{fn} is not running")

    def running(self, fn):
        return sum(1 for job in self.jobs if job[2][1] is fn)


def _pool(threads=4, per_key=1, stuck_after=10.0, max_extra=None):
    now = [0.0]
    fake = _FakeThreadPool(threads, lambda: now[0])
    pool = StoragePool(threads, per_key=per_key, stuck_after=stuck_after,
                       max_extra=max_extra, pool=fake, clock=lambda: now[0])
    return pool, fake, now


def hung():
    return "hung"


def healthy():
    return "fine"


def test_one_key_gets_its_share_only():
    """Ten sessions on one hung mailbox hold one thread; another mailbox still runs at once."""
    pool, fake, _now = _pool(threads=4, per_key=1)
    reactor = _Reactor()
    stuck = [pool.run(reactor, ("a", "INBOX"), hung) for _ in range(10)]
    assert fake.running(hung) == 1
    assert pool.queued(("a", "INBOX")) == 9
    results = []
    for user in ("b", "c", "d"):
        pool.run(reactor, (user, "INBOX"), healthy).addCallback(results.append)
    assert fake.running(healthy) == 3
    for _ in range(3):
        fake.finish(healthy)
    assert results == ["fine"] * 3
    assert not any(d.called for d in stuck)
    # Unblocked: the queued jobs of the key follow one by one.
    for i in range(10):
        fake.finish(hung)
    assert all(d.called for d in stuck)
    assert pool.queued(("a", "INBOX")) == 0


def test_pool_grows_past_stuck_jobs():
    """With every thread stuck on different keys, a new job gets a new thread once they count as stuck."""
    pool, fake, now = _pool(threads=2, per_key=1, stuck_after=10.0)
    reactor = _Reactor()
    pool.run(reactor, ("a", "X"), hung)
    pool.run(reactor, ("b", "X"), hung)
    now[0] = 5.0
    early = pool.run(reactor, ("c", "X"), healthy)
    # Not stuck yet by the rule: the job waits for a thread like any other.
    assert fake.running(healthy) == 0
    now[0] = 60.0
    later = []
    pool.run(reactor, ("d", "X"), healthy).addCallback(later.append)
    assert fake.max == 4
    assert fake.running(healthy) == 2
    fake.finish(healthy)
    fake.finish(healthy)
    assert early.called and later == ["fine"]
    fake.finish(hung)
    fake.finish(hung)
    assert fake.max == 2


def test_growth_is_bounded():
    """The extra threads for stuck jobs stop at max_extra."""
    pool, fake, now = _pool(threads=2, per_key=1, stuck_after=1.0, max_extra=3)
    reactor = _Reactor()
    for user in range(10):
        pool.run(reactor, (str(user), "X"), hung)
        now[0] += 5
    assert fake.max == 5
    assert fake.running(hung) == 5


def test_failure_reaches_the_caller():
    """An exception in the job fails the Deferred, and the share is given back."""
    pool, fake, _now = _pool(threads=2, per_key=1)
    reactor = _Reactor()

    def boom():
        raise ValueError("no")

    errors = []
    pool.run(reactor, "k", boom).addErrback(lambda f: errors.append(f.value))
    second = pool.run(reactor, "k", healthy)
    on_result, work, args = fake.jobs.pop(0)
    from twisted.python.failure import Failure
    try:
        work(*args)
    except ValueError:
        on_result(False, Failure())
    assert isinstance(errors[0], ValueError)
    assert fake.running(healthy) == 1
    fake.finish(healthy)
    assert second.called


def test_default_share():
    """By default a key gets a quarter of the threads, at least one."""
    assert StoragePool(8, pool=_FakeThreadPool(8)).per_key == 2
    assert StoragePool(2, pool=_FakeThreadPool(2)).per_key == 1


def test_stop_does_not_wait_forever():
    """Stopping with a job stuck in a hung read gives up after the grace period."""
    import threading

    release = threading.Event()

    class _StuckPool(_FakeThreadPool):
        def stop(self):
            release.wait(30)

    pool = StoragePool(2, pool=_StuckPool(2))
    pool.stop(grace=0.2)
    assert not release.is_set()
    release.set()


def test_real_pool_threads_are_daemons():
    """The real pool's workers do not keep the process alive."""
    import threading

    pool = StoragePool(2)
    pool.start()
    try:
        seen = []
        done = threading.Event()
        pool.pool.callInThreadWithCallback(
            lambda ok, result: done.set(),
            lambda: seen.append(threading.current_thread().daemon))
        assert done.wait(30)
        assert seen == [True]
    finally:
        pool.stop()


def test_a_real_pool_leaves_no_cycle_per_job():
    """
    Each job of the real pool is freed when it ends, not by the cycle
    collector: Twisted's callInThreadWithCallback left a four-object cycle
    per job, which piled up between the daemon's rare collections (an
    idling session makes a job every poll).
    """
    import gc
    import threading

    pool = StoragePool(2, name="test-cycles")
    pool.start()
    results = []
    done = threading.Semaphore(0)

    def on_result(ok, result):
        results.append((ok, result if ok else result.value))
        done.release()

    def fail():
        raise ValueError("refused")

    gc.collect()
    gc.disable()
    try:
        for n in range(50):
            pool.pool.callInThreadWithCallback(on_result, pow, n, 2)
        pool.pool.callInThreadWithCallback(on_result, fail)
        for _ in range(51):
            assert done.acquire(timeout=30)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cyclic = [o for o in gc.garbage if callable(o) and not isinstance(o, type)
                  and getattr(o, "__name__", "") == "inContext"]
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
        gc.enable()
        pool.stop()
    assert sorted(r for ok, r in results if ok) == sorted(n * n for n in range(50))
    assert [type(r) for ok, r in results if not ok] == [ValueError]
    assert cyclic == []


def test_a_job_hands_its_result_over_before_the_work_after_the_reply():
    """
    A store call's housekeeping (an mbox writer's lock kept until the file
    clock ticks, storage.afterreply) runs in the job's thread after the
    result went to the reactor, not before: the caller does not wait for it.
    """
    from twisted.python import context

    from imapd.server import _Job
    from storage import afterreply

    order = []

    def call():
        afterreply.after_reply(lambda: order.append("after the reply"))
        order.append("call")
        return 42

    def on_result(ok, result):
        order.append(("result", ok, result))

    ctx = context.theContextTracker.currentContext().contexts[-1]
    _Job(ctx, call, (), {}, on_result)()
    assert order == ["call", ("result", True, 42), "after the reply"]
    # Nothing left collecting in this thread afterwards.
    afterreply.after_reply(lambda: order.append("at once"))
    assert order[-1] == "at once"
