#!/usr/bin/env python3
"""
Speed of C{imapd-admin migrate} (issue 16's "Measure and report"): an mbox
INBOX of N corpus messages (default 10,000; the SpamAssassin corpus, used
again in turn) is migrated to a Maildir, that Maildir to a second mbox,
and each migration is run a second time (nothing to do).  Prints messages
per second for each direction.

A script, not a test (speed is measured, not asserted)::

    python3 tests/bench/migrate_speed.py [--count 10000] [--dir /tmp/migbench]

It writes under C{--dir} (removed first, left for a look afterwards) with
the stores' default fsync policy, as a sysadmin's run would.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from storage.migrate.engine import migrate, open_source, open_target  # noqa: E402

CORPUS = next(p / "shared" for p in ROOT.parents if (p / "shared" / "corpus").is_dir()) / (
    "corpus/spamassassin")


def write_mbox(path: Path, count: int) -> int:
    """An mbox of C{count} messages without X-UID (mboxrd quoting); its bytes."""
    files = sorted(CORPUS.glob("*/cur/*"))
    total = 0
    with open(path, "wb") as out:
        for i in range(count):
            data = files[i % len(files)].read_bytes().replace(b"\r\n", b"\n")
            if data.startswith(b"From "):
                data = data.split(b"\n", 1)[1]
            lines = [b">" + line if line.lstrip(b">").startswith(b"From ") else line
                     for line in data.split(b"\n")]
            data = b"\n".join(lines).rstrip(b"\n") + b"\n"
            out.write(b"From bench@example.org Mon Jan  5 10:00:00 2009\n")
            out.write(b"Status: RO\n" if i % 2 else b"")
            out.write(data + b"\n")
            total += len(data)
    return total


def timed(home: str, source: str, target: str) -> None:
    for label in ("", "  again (nothing to do): "):
        started = time.monotonic()
        report = migrate(open_source(source, "bench", home), open_target(target, "bench", home))
        seconds = time.monotonic() - started
        if not label:
            print(f"{source} -> {target}: {report.copied} messages in {seconds:.1f} s, "
                  f"{report.copied / seconds:.0f} messages/s")
        else:
            print(f"{label}{report.copied} copied, {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--dir", default="/tmp/migbench")
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    home = os.path.join(args.dir, "home")
    os.makedirs(os.path.join(home, "mail"))
    size = write_mbox(Path(home) / "mail" / "inbox", args.count)
    print(f"{args.count} messages, {size / 1e6:.1f} MB")
    timed(home, "mbox:~/mail:INBOX=~/mail/inbox", "maildir:~/Maildir")
    timed(home, "maildir:~/Maildir", "mbox:~/back:INBOX=~/back/inbox")


if __name__ == "__main__":
    main()
