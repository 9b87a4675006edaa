"""
An mbox writer keeps its write lock until the kernel's file clock has
ticked past its write (so that a later change gets later times), and
does that waiting after the reply when the store call runs in the
storage pool (L{storage.afterreply}).  Before, the wait was inside the
write, and one LMTP connection delivered at most one message per clock
tick (4 ms here): 250 a second.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

import storage.mbox.mailbox as mailbox_module
from storage import afterreply

from storage_mbox_testutil import new_store, read

pytestmark = pytest.mark.skipif(mailbox_module._COARSE_CLOCK is None,
                                reason="settling needs Linux's coarse clock")


def append(store, n: int) -> None:
    box = store.open("INBOX")
    try:
        t = box.transaction()
        t.append(b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n))
        t.commit()
    finally:
        box.close()


def lock_of(store) -> str:
    return store.layout.inbox + ".lock"


def verified(path: str) -> float | None:
    seen = mailbox_module._VERIFIED.get(path)
    return None if seen is None else seen[1]


def test_outside_the_pool_a_write_lets_go_before_it_returns(tmp_path):
    store = new_store(tmp_path)
    append(store, 1)
    path = store.layout.inbox
    assert b"body 1" in read(path)
    assert not os.path.exists(lock_of(store))
    assert path not in mailbox_module._HELD
    # Settled inside the call: the state is conclusive.
    assert verified(path) == float("inf")


def test_in_a_pool_job_the_lock_goes_after_the_reply(tmp_path):
    store = new_store(tmp_path)
    path = store.layout.inbox
    with afterreply.collecting() as later:
        append(store, 1)
        # What the caller is told rests on this: the message is written ...
        assert b"body 1" in read(path)
        # ... while the lock is still held, for the settling to come.
        assert os.path.exists(lock_of(store))
        assert path in mailbox_module._HELD
    assert len(later) == 1
    afterreply.run(later)
    assert not os.path.exists(lock_of(store))
    assert path not in mailbox_module._HELD
    assert verified(path) == float("inf")
    # The file clock has passed the write: a later change gets later times.
    st = os.stat(path)
    assert time.clock_gettime_ns(mailbox_module._COARSE_CLOCK) > max(st.st_mtime_ns,
                                                                     st.st_ctime_ns)


def test_the_next_write_of_the_process_takes_the_held_lock_over(tmp_path, monkeypatch):
    store = new_store(tmp_path)
    path = store.layout.inbox
    append(store, 1)  # the file exists, settled
    acquired, refreshed = [], []
    real_acquire, real_refresh = mailbox_module._acquire, mailbox_module._refresh_headers
    monkeypatch.setattr(mailbox_module, "_acquire",
                        lambda chain, p, timeout: (acquired.append(p),
                                                   real_acquire(chain, p, timeout)))
    monkeypatch.setattr(mailbox_module, "_refresh_headers",
                        lambda fd, old, everything=False: (refreshed.append(1),
                                                           real_refresh(fd, old, everything))[1])
    with afterreply.collecting() as later:
        append(store, 2)
        first = mailbox_module._HELD[path]
        append(store, 3)
        second = mailbox_module._HELD[path]
    # One lock taken for both writes; the second went on under it without
    # re-reading the flag lines (nobody could have written in between).
    assert acquired == [path]
    assert refreshed == []
    assert first is not second and first.taken.is_set() and first.chain is second.chain
    afterreply.run(later)  # the first finds itself taken over; the second lets go
    assert not os.path.exists(lock_of(store))
    assert path not in mailbox_module._HELD
    box = store.open("INBOX")
    try:
        assert [m.uid for m in box.last_snapshot.messages] == [1, 2, 3]
    finally:
        box.close()
    data = read(path)
    assert data.count(b"\nX-UID: ") + data.startswith(b"X-UID: ") == 3
    assert data.index(b"body 1") < data.index(b"body 2") < data.index(b"body 3")


def test_a_lock_held_too_long_is_let_go_before_the_next_write(tmp_path, monkeypatch):
    """
    A stream of our writes does not keep the lock from write to write for
    good (a local delivery agent waits for it too): past HOLD_MAX the next
    write settles and lets the held lock go, then takes the lock anew.
    """
    monkeypatch.setattr(mailbox_module, "HOLD_MAX", 0.0)
    store = new_store(tmp_path)
    path = store.layout.inbox
    append(store, 1)
    acquired, released = [], []
    real_acquire = mailbox_module._acquire
    monkeypatch.setattr(mailbox_module, "_acquire",
                        lambda chain, p, timeout: (acquired.append(p),
                                                   real_acquire(chain, p, timeout)))
    with afterreply.collecting() as later:
        append(store, 2)
    first = mailbox_module._HELD[path]
    real_release = first.chain.release
    first.chain.release = lambda: (released.append(1), real_release())
    time.sleep(0.01)
    # The next write, in another pool thread.
    other = threading.Thread(target=append, args=(new_store(tmp_path), 3))
    other.start()
    other.join(10)
    assert not other.is_alive()
    assert acquired == [path, path]  # a new lock, not the old one taken over
    assert released == [1] and first.taken.is_set()
    assert b"body 3" in read(path)
    afterreply.run(later)  # the first write's settling finds nothing left to do
    assert released == [1]
    assert not os.path.exists(lock_of(store))


def test_a_job_that_reads_after_its_write_does_not_wait_for_itself(tmp_path, monkeypatch):
    """
    A sync after a write in the same store call (the fix-up of a SELECT,
    an APPEND then a read) takes the read lock while the write's lock is
    held for settling after the call: the read lets it go first, or it
    would wait for the end of its own job.
    """
    store = new_store(tmp_path)
    append(store, 1)
    started = time.monotonic()
    with afterreply.collecting() as later:
        append(store, 2)
        assert store.layout.inbox in mailbox_module._HELD
        box = new_store(tmp_path).open("INBOX")
        try:
            # A read under the read lock chain (what a sync does when it
            # must look at the file again).
            assert box._with_read_lock(lambda fd: os.fstat(fd).st_size) > 0
            assert store.layout.inbox not in mailbox_module._HELD
            assert not os.path.exists(lock_of(store))
            assert [m.uid for m in box.sync().messages] == [1, 2]
        finally:
            box.close()
        # A write after HOLD_MAX in the same call neither waits.
        monkeypatch.setattr(mailbox_module, "HOLD_MAX", 0.0)
        append(store, 3)
        append(store, 4)
    afterreply.run(later)
    assert time.monotonic() - started < 5
    assert not os.path.exists(lock_of(store))
    assert b"body 4" in read(store.layout.inbox)


def test_another_process_waits_for_the_held_lock(tmp_path):
    """The lock kept after the write is a real lock: a writer elsewhere waits for it."""
    store = new_store(tmp_path)
    append(store, 1)
    with afterreply.collecting() as later:
        append(store, 2)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(read_end)
            code = 1
            try:
                started = time.monotonic()
                append(new_store(tmp_path), 3)
                os.write(write_end, b"%f" % (time.monotonic() - started))
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        time.sleep(0.3)
        # Still held (the settle has not run): the child waits.
        assert b"body 3" not in read(store.layout.inbox)
    afterreply.run(later)
    waited = float(os.read(read_end, 64))
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert waited >= 0.25
    assert b"body 3" in read(store.layout.inbox)


def test_work_after_the_reply_that_fails_is_logged_not_raised():
    done = []
    with afterreply.collecting() as later:
        afterreply.after_reply(lambda: 1 / 0)
        afterreply.after_reply(lambda: done.append(1))
        assert done == []
    afterreply.run(later)
    assert done == [1] and later == []
    # Nobody collecting: at once.
    afterreply.after_reply(lambda: done.append(2))
    assert done == [1, 2]


def test_the_wait_sleeps_until_the_next_tick_instead_of_polling(monkeypatch):
    """
    The coarse clock reads its last tick's time: with 1 ms of the tick
    gone, the wait sleeps once for the rest of it (and a little more),
    not in half-millisecond polls; taken over, it returns at once,
    unsettled.
    """
    coarse = mailbox_module._COARSE_CLOCK
    tick = mailbox_module._TICK_NS
    last = time.clock_gettime_ns(coarse)
    now = {"coarse": last, "fine": last + 1_000_000}
    real = time.clock_gettime_ns
    monkeypatch.setattr(time, "clock_gettime_ns",
                        lambda clock: now["coarse"] if clock == coarse else real(clock))
    monkeypatch.setattr(time, "time_ns", lambda: now["fine"])
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        now["coarse"] += tick
        now["fine"] += int(seconds * 1e9)
        return False
    monkeypatch.setattr(time, "sleep", pause)
    held = mailbox_module._Held("/nonexistent", None, (), last, time.monotonic())
    monkeypatch.setattr(held.taken, "wait", pause)
    assert held._wait(stop_when_taken=True) is True
    assert pauses == [pytest.approx((tick - 1_000_000) / 1e9 + 0.0002)]
    pauses.clear()
    now["fine"] = now["coarse"] + 1_000_000
    other = mailbox_module._Held("/nonexistent", None, (), now["coarse"], time.monotonic())
    assert other._wait(stop_when_taken=False) is True
    assert pauses == [pytest.approx((tick - 1_000_000) / 1e9 + 0.0002)]
    taken = mailbox_module._Held("/nonexistent", None, (), now["coarse"], time.monotonic())
    taken.taken.set()
    monkeypatch.undo()
    assert taken._wait(stop_when_taken=True) is False
