"""
Small operating-system calls the processes make: the parent-death signal
(prctl PR_SET_PDEATHSIG) and the process title.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

__all__ = ["die_with_parent", "set_title"]

_PR_SET_PDEATHSIG = 1
_libc = None


def die_with_parent(expected_parent: int) -> None:
    """
    Have the kernel SIGKILL this process when its parent dies, so that a
    SIGKILLed master leaves nothing behind.  Called after any change of
    uid (the kernel clears the setting then); if the parent already died
    before the call, exit at once.
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != expected_parent:
        os._exit(0)


def set_title(title: str) -> None:
    """What ps(1) and /proc/PID/cmdline show, e.g. C{imapd: login}."""
    try:
        import setproctitle
    except ImportError:  # the title is for people; serving goes on without it
        return
    setproctitle.setproctitle(title)
