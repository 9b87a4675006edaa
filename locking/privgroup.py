# -*- test-case-name: tests.locking.test_privgroup -*-
"""
The privileged group (C{[service] mail_privileged_group}, Dovecot's setting
of the same name), held only while a dotlock is made or removed.

A system user's mail worker runs as the user
(L{imapd.process.privileges.become_user}), with the privileged group
(e.g. C{mail}) kept as its I{saved} gid only.  A spool such as Debian's
C{/var/mail} is mode 2775 C{root:mail}: the user's mbox in it is the
user's, but creating C{alice.lock} beside it needs the C{mail} group.  So
around the few calls that create or remove entries of such a directory,
the effective gid becomes the saved one, and then goes back: a bug
elsewhere never runs with the group.

Threads: the storage pool runs several threads in one worker.  POSIX
says ids are per process, and glibc's C{setegid} makes every thread take
the new id (it signals them all), so a thread writing a Maildir file
during another thread's dotlock would create it with group C{mail}.  The
Linux kernel itself keeps credentials per thread, though: on Linux this
module calls the C{setresgid} system call directly (not glibc's wrapper),
which changes the calling thread only.  The window is the calling
thread's alone, and needs no lock (Samba's per-thread credentials are
the same technique).  Elsewhere (another kernel, an unknown system call
number) it falls back to C{setegid} for the whole process, serialised by
a process-wide lock so that two windows never overlap and the window is
never closed under another thread's feet; the window stays as short as
the calls it covers.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

__all__ = ["available", "held", "per_thread"]

#: setresgid's system call number (the 32-bit-id one where the old one
#: takes 16-bit ids), by machine.
_SYS_SETRESGID = {
    "x86_64": 119,
    # The generic table (asm-generic/unistd.h).
    "aarch64": 149,
    "arm64": 149,
    "riscv64": 149,
}

_syscall = None
if sys.platform.startswith("linux"):
    _number = _SYS_SETRESGID.get(platform.machine())
    if _number is not None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _syscall = _libc.syscall
        except (OSError, AttributeError):
            _syscall = None

_KEEP = -1
#: The process-wide fallback's lock (reentrant: a break-lock is taken
#: inside a lock's window).
_process_lock = threading.RLock()


def per_thread() -> bool:
    """Whether the window is the calling thread's alone (Linux)."""
    return _syscall is not None


def available() -> Optional[int]:
    """
    The privileged group's id if this process has one (a saved gid other
    than the real one, as L{become_user} leaves it), else None.
    """
    real, _effective, saved = os.getresgid()
    return saved if saved != real else None


def _thread_setegid(gid: int) -> None:
    if _syscall(_number, _KEEP, gid, _KEEP) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def held() -> Iterator[None]:
    """
    Make the saved gid the effective one for the calling thread (or, off
    Linux, for the process) while the block runs; nothing if there is no
    privileged group or it is held already.
    """
    if _syscall is not None:
        real, effective, saved = os.getresgid()
        if saved == real or effective == saved:
            yield
            return
        _thread_setegid(saved)
        try:
            yield
        finally:
            _thread_setegid(effective)
        return
    with _process_lock:
        real, effective, saved = os.getresgid()
        if saved == real or effective == saved:
            yield
            return
        os.setegid(saved)
        try:
            yield
        finally:
            os.setegid(effective)
