"""
The processes of a running daemon, read from /proc: pid, parent, title,
uid, state.  Multi-process tests (issue 14) find the master's children
here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Proc", "processes", "tree", "titled", "wait_for", "alive"]


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    title: str
    uid: int
    state: str


def _read(pid: int):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    title = cmdline.replace(b"\x00", b" ").decode("utf-8", "replace").strip()
    return Proc(pid, int(fields["PPid"]), title, int(fields["Uid"].split()[0]),
                fields["State"].split()[0])


def processes() -> list[Proc]:
    result = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            proc = _read(int(name))
            if proc is not None:
                result.append(proc)
    return result


def tree(root: int) -> list[Proc]:
    """C{root} and all its descendants."""
    procs = processes()
    found = [p for p in procs if p.pid == root]
    pids = {root}
    changed = True
    while changed:
        changed = False
        for p in procs:
            if p.ppid in pids and p.pid not in pids:
                pids.add(p.pid)
                found.append(p)
                changed = True
    return found


def titled(root: int, title: str) -> list[Proc]:
    return [p for p in tree(root) if p.title == title]


def alive(pid: int) -> bool:
    proc = _read(pid)
    return proc is not None and proc.state != "Z"


def wait_for(predicate, what: str, timeout: float = 30.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process C{pid} has open."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def established_to(port: int) -> set[int]:
    """Inodes of established IPv4 TCP connections whose local port is C{port}."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], int(fields[9])
        if state == "01" and int(local.split(":")[1], 16) == port and inode:
            found.add(inode)
    return found
