"""
The cost of one delivery's store call, without the daemon (not a test: run
it by hand)::

    python tests/bench/delivery_cost.py [--store mbox|maildir]
        [--messages 10000] [--deliveries 500] [--gap SECONDS] [--profile]

It fills an INBOX with C{--messages} messages, lets one read of the store
give them all their UIDs (as a client's SELECT does), then times
C{--deliveries} calls of L{imapd.delivery.core.Deliverer.deliver_batch}
with one 2 kB message each.  Each call runs in a thread as the storage
pool runs it, and the work a store leaves until after its reply
(L{storage.afterreply}: an mbox writer keeping its lock until the clock
ticks) runs there after the result is handed over, as in the daemon.
C{--gap} waits between deliveries (the daemon's rate over one LMTP
connection is one every 3 to 4 ms); C{--profile} prints where the store
threads spent their time (cProfile, by own time).

It prints the wall time and the CPU time (all threads) per delivery.  On a
machine whose speed drifts, count instructions instead; callgrind counts
the same for the same work whatever else runs::

    for n in 0 300; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python tests/bench/delivery_cost.py --deliveries $n 2>&1 | grep Collected; done

and divide the difference by 300.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "delivery")]

from bench_lmtp import fill_maildir, fill_mbox, message  # noqa: E402

from imapd.delivery.core import Deliverer, Message, Recipient  # noqa: E402
from storage import afterreply  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["mbox", "maildir"], default="mbox")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--gap", type=float, default=0.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="imapd-delivery-cost-"))
    pool = ThreadPoolExecutor(2)
    profiles: dict[int, cProfile.Profile] = {}
    #: Profiled only once warm (the first calls import and compile).
    timing = threading.Event()
    try:
        if args.store == "mbox":
            fill_mbox(scratch / "mail" / "bench.inbox", args.messages)
            (scratch / "mail" / "bench").mkdir()
            location = f"mbox:{scratch}/mail/%u:INBOX={scratch}/mail/%u.inbox"
        else:
            fill_maildir(scratch / "mail" / "bench", args.messages)
            location = f"maildir:{scratch}/mail/%u"
        deliverer = Deliverer(location, lambda name: None, str(scratch / "index"))
        recipient = Recipient("bench@example.org", "bench", str(scratch))
        store = deliverer.open_store(recipient)
        try:
            box = store.open("INBOX", False)
            box.sync()
            box.close()
        finally:
            store.close()

        def job(n: int, result: Future) -> None:
            profile = None
            if args.profile and timing.is_set():
                profile = profiles.setdefault(threading.get_ident(), cProfile.Profile())
                profile.enable()
            try:
                mail = Message.from_bytes(message(n).replace(b"\n", b"\r\n"))
                with afterreply.collecting() as later:
                    outcome = deliverer.deliver_batch([(recipient, mail, "s@example.net")])
                result.set_result(outcome)
                afterreply.run(later)
            finally:
                if profile is not None:
                    profile.disable()

        def deliver(n: int) -> None:
            result: Future = Future()
            pool.submit(job, n, result)
            (outcome,) = result.result()
            assert isinstance(outcome, tuple), outcome
            if args.gap:
                time.sleep(args.gap)

        for n in range(3):
            deliver(n)
        timing.set()
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(args.deliveries):
            deliver(n)
        if args.deliveries:
            per = 1000 / args.deliveries
            print(f"{args.store}: {(time.perf_counter() - wall - args.gap * args.deliveries) * per:.3f}"
                  f" ms wall, {(time.process_time() - cpu) * per:.3f} ms CPU per delivery")
        if profiles:
            stats = pstats.Stats(*profiles.values())
            stats.sort_stats("tottime").print_stats(30)
    finally:
        pool.shutdown()
        # After the last reply the lock may still be kept until the tick.
        time.sleep(0.05)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
