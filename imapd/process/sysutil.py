"""
Small operating-system calls the processes make: the parent-death signal
(prctl PR_SET_PDEATHSIG), the process title, and adopting a listener the
master bound.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

# (Neither installs a reactor: the spawner imports this.)
from twisted.internet import tcp, unix

__all__ = ["adopt_listener", "die_with_parent", "set_title"]

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


def adopt_listener(reactor, fd: int, family: int, factory):
    """
    Listen on the master's listening socket C{fd} (duplicated: the caller
    closes C{fd}) with C{factory}; the listening port.

    A UNIX socket's path belongs to the master, which made it with the
    configured mode: Twisted's own adoption would set it to 0666 and
    remove the path when the port closes, so that a retiring process
    (SIGHUP) took the listener away from its successor.
    """
    import socket

    if family != socket.AF_UNIX:
        return reactor.adoptStreamPort(fd, family, factory)
    port = _AdoptedUNIXPort._fromListeningDescriptor(reactor, fd, factory)
    port.startListening()
    return port


class _AdoptedUNIXPort(unix.Port):
    """A listening UNIX socket whose path another process owns."""

    def startListening(self) -> None:
        tcp._reservedFD.reserve()
        self.factory.doStart()
        skt, self._preexistingSocket = self._preexistingSocket, None
        # No shutdown(2) at the end: it would stop the socket for all.
        self._shouldShutdown = False
        self.connected = True
        self.socket = skt
        self.fileno = skt.fileno
        self.numberAccepts = 100
        self.startReading()

    def connectionLost(self, reason) -> None:
        tcp.Port.connectionLost(self, reason)
