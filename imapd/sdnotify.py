# -*- test-case-name: tests.imapd.test_sdnotify -*-
"""
systemd's readiness protocol (sd_notify(3)), written here without
libsystemd: one datagram of C{KEY=VALUE} lines to the C{AF_UNIX} socket
named by C{$NOTIFY_SOCKET} (a path, or C{@name} in the abstract
namespace).  Without the variable (not under systemd, or not
C{Type=notify}) every call does nothing.

    READY=1                  the listeners accept and the processes that
                             serve them are up (the unit's start is done)
    RELOADING=1              SIGHUP: re-reading the configuration; with
                             MONOTONIC_USEC, as C{Type=notify-reload} wants
    STOPPING=1               shutting down
    STATUS=...               one line for C{systemctl status}

Used by the single process (L{imapd.tap.IMAPService}) and the master of
the multi-process server (L{imapd.process.master}), the unit's main
process (C{NotifyAccess=main}).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Mapping, Optional

__all__ = ["notify", "ready", "reloading", "stopping"]


def _address(value: str) -> str:
    # sd_notify(3): "@" at the start means the abstract namespace.
    return "\0" + value[1:] if value.startswith("@") else value


def notify(state: str, environ: Optional[Mapping[str, str]] = None) -> bool:
    """
    Send C{state} (newline-separated C{KEY=VALUE} assignments).

    @return: whether it was sent (False without C{$NOTIFY_SOCKET}, or when
        the socket is gone: the server runs on either way).
    """
    target = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not target:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(_address(target))
            sock.sendall(state.encode("utf-8", "replace"))
    except OSError:
        return False
    return True


def _status(text: str) -> str:
    return "STATUS=" + " ".join(text.split())


def ready(status: str) -> bool:
    """The server is ready; C{status} says what it serves."""
    return notify(f"READY=1\n{_status(status)}\nMAINPID={os.getpid()}")


def reloading() -> bool:
    """SIGHUP received; L{ready} follows when the new settings serve."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}\n{_status('Reloading')}")


def stopping() -> bool:
    return notify(f"STOPPING=1\n{_status('Stopping')}")
