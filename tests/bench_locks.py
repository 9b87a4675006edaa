# -*- test-case-name: tests.locking.test_contention -*-
"""
Benchmark: lock + unlock round trips per second for each lock method.

Not a test (pytest does not collect it: no C{test_} prefix).  Run::

    python tests/bench_locks.py [--dir DIR] [--seconds S] [--procs N]

For each of dotlock, fcntl, flock and the C{dotlock fcntl} chain it measures
one process locking and unlocking as fast as it can (uncontended), then
C{--procs} processes doing the same on one file at once (contended: the
total of all processes).  C{--dir} defaults to a temporary directory on
local disk; point it at an NFS mount to measure there.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from locking import DotLock, DotlockSettings, FcntlLock, FlockLock, LockChain  # noqa: E402

METHODS = ["dotlock", "fcntl", "flock", "dotlock fcntl"]
FORK = multiprocessing.get_context("fork")


def make_lock(method: str, path: str):
    """
    @return: a lock of the named method (space-separated names: a chain).
    """
    settings = DotlockSettings()
    if method == "dotlock":
        return DotLock(path, settings)
    if method == "fcntl":
        return FcntlLock(path)
    if method == "flock":
        return FlockLock(path)
    return LockChain.from_names(method.split(), path, settings)


def _loop(method, path, seconds, start, result):
    lock = make_lock(method, path)
    start.wait()
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lock.acquire(timeout=60)
        lock.release()
        count += 1
    result.put(count)


def measure(method: str, directory: str, procs: int, seconds: float) -> float:
    """
    @return: round trips per second, summed over C{procs} processes.
    """
    path = os.path.join(directory, "bench-" + method.replace(" ", "-"))
    with open(path, "w"):
        pass
    start = FORK.Event()
    result = FORK.Queue()
    workers = [FORK.Process(target=_loop, args=(method, path, seconds, start, result))
               for _ in range(procs)]
    for w in workers:
        w.start()
    began = time.monotonic()
    start.set()
    total = sum(result.get() for _ in workers)
    elapsed = max(time.monotonic() - began, seconds)
    for w in workers:
        w.join()
    os.unlink(path)
    return total / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--dir", help="directory to lock in (default: a temp dir)")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--procs", type=int, default=8, help="contending processes")
    args = parser.parse_args(argv)
    directory = args.dir or tempfile.mkdtemp(prefix="bench-locks-")
    try:
        print(f"directory: {directory}  cpus: {os.cpu_count()}  seconds: {args.seconds}")
        # Warm up first: the first file creations in a fresh directory are
        # much slower and would penalize whichever method runs first.
        for method in METHODS:
            measure(method, directory, 1, 0.5)
        print(f"| method | uncontended (1 proc) | contended ({args.procs} procs, total) |")
        print("|---|---:|---:|")
        for method in METHODS:
            alone = measure(method, directory, 1, args.seconds)
            crowd = measure(method, directory, args.procs, args.seconds)
            print(f"| {method} | {alone:,.0f}/s | {crowd:,.0f}/s |", flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(directory)


if __name__ == "__main__":
    main()
