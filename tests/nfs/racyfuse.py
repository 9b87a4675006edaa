#!/usr/bin/env python3
"""
nfsfuse (L{nfsmount.NFSFUSE}, used as it is) with its attribute race made
wide, for issue 20's one unexplained Maildir failure.

nfsfuse's C{getattr} takes a file's attributes outside its lock and
stores them in its cache afterwards.  When another node changes the file
in between and this node's C{open()} clears the cache entry meanwhile
(close-to-open), the old attributes (an old size) go back into the cache
for C{--acregmin} seconds: a reader holding the file's lock then reads the
file short, as from an NFS client that serves a stale size.  The window is
microseconds in nfsfuse; here, with probability C{--getattr-lag} a stat of
a regular file waits up to C{--lag-seconds} after it is taken, so that the
race happens often enough to test a store against it::

    racyfuse.py SOURCE MOUNTPOINT [nfsfuse options] --getattr-lag P [--lag-seconds S]
                [--lag-only NAME] [--lag-tids FILE] [--open-lag S]

C{--lag-only} limits the late stats to files of one name (the uidlist):
a late stat of every message file slows a whole node down, not the race.
C{--lag-tids} limits them to requests of the threads listed in FILE (read
at each stat), each then late by exactly C{--lag-seconds}: a test picks
which thread's attribute fetch loses the race.  C{--open-lag} makes an
open of such a file (with the same probability) return up to S seconds
after it dropped the cached attributes, which widens the other side.

Only the timing changes: every answer is one nfsfuse could give.
"""

from __future__ import annotations

import importlib.util
import os
import random
import stat
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nfsmount import NFSFUSE  # noqa: E402


class _LaggingOs:
    """The C{os} module, with C{lstat}/C{fstat} of regular files sometimes late."""

    def __init__(self, probability: float, seconds: float, only: str = "",
                 tids: str = "", caller=None) -> None:
        self.probability = probability
        self.seconds = seconds
        #: Only files of this name are late ("": all regular files).
        self.only = only
        #: A file of thread ids, one a line: only their requests are late
        #: ("": everyone's), and by exactly C{seconds} (a test's schedule).
        self.tids = tids
        self.caller = caller
        self.rng = random.Random()

    def __getattr__(self, name):
        return getattr(os, name)

    def _late(self, st: os.stat_result, name) -> os.stat_result:
        if not stat.S_ISREG(st.st_mode) or self.rng.random() >= self.probability:
            return st
        if self.only and os.path.basename(name()) != self.only:
            return st
        if self.tids:
            try:
                with open(self.tids) as f:
                    chosen = {int(t) for t in f.read().split()}
            except (OSError, ValueError):
                chosen = set()
            # The kernel sends the calling thread's id as the request's pid.
            if self.caller()[2] in chosen:
                time.sleep(self.seconds)
            return st
        time.sleep(self.rng.uniform(0, self.seconds))
        return st

    def lstat(self, path, *args, **kwargs):
        return self._late(os.lstat(path, *args, **kwargs), lambda: os.fspath(path))

    def fstat(self, fd):
        return self._late(os.fstat(fd), lambda: os.readlink(f"/proc/self/fd/{fd}"))


def _option(argv: list[str], name: str, default: float) -> float:
    if name in argv:
        i = argv.index(name)
        value = float(argv[i + 1])
        del argv[i:i + 2]
        return value
    return default


def _text_option(argv: list[str], name: str) -> str:
    if name in argv:
        i = argv.index(name)
        value = argv[i + 1]
        del argv[i:i + 2]
        return value
    return ""


def _late_opens(layer_class, lagging: _LaggingOs, seconds: float):
    """
    nfsfuse's layer, with an C{open} (of a file C{lagging} would make
    late) that returns up to C{seconds} after it dropped the file's cached
    attributes: the other side of the race, the window between that drop
    and the reader's first attribute fetch, made wide.
    """

    class LateOpens(layer_class):
        def open(self, path, flags):
            fd = super().open(path, flags)
            if (seconds > 0 and lagging.rng.random() < lagging.probability
                    and (not lagging.only or os.path.basename(path) == lagging.only)):
                time.sleep(lagging.rng.uniform(0, seconds))
            return fd

    return LateOpens


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    probability = _option(argv, "--getattr-lag", 0.0)
    seconds = _option(argv, "--lag-seconds", 0.2)
    open_lag = _option(argv, "--open-lag", 0.0)
    only = _text_option(argv, "--lag-only")
    tids = _text_option(argv, "--lag-tids")
    spec = importlib.util.spec_from_file_location("nfsfuse", NFSFUSE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.os = lagging = _LaggingOs(probability, seconds, only, tids,
                                     module.fuse.fuse_get_context)
    module.NFSLayer = _late_opens(module.NFSLayer, lagging, open_lag)
    module.main(argv)


if __name__ == "__main__":
    main()
