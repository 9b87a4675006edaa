# -*- test-case-name: tests.storage.test_sharedfs -*-
"""
Is a mail location on a shared (network) filesystem?

The stores choose their safe NFS behaviour by default where the answer is
yes (issue 20): such a client caches attributes and listings for seconds,
revalidates them only at open (close-to-open), and does not share fcntl
locks with the other clients unless a lock manager runs.  The answer comes
from the kernel's mount table (C{/proc/self/mountinfo}): the filesystem
type of the mount that holds the path.
"""

from __future__ import annotations

import os

__all__ = ["SHARED_TYPES", "filesystem_type", "shared_filesystem"]

#: Filesystem types whose clients cache like NFS clients do.  Cluster
#: filesystems with coherent caches and locks (gfs2, ocfs2) are not here.
SHARED_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "afs", "9p", "glusterfs", "lustre",
    "fuse.sshfs", "fuse.glusterfs", "fuse.nfsfuse",
})

MOUNTINFO = "/proc/self/mountinfo"


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(path: str, mountinfo: str = MOUNTINFO) -> str | None:
    """
    The type of the filesystem that holds C{path} (its nearest existing
    ancestor if it does not exist yet), or C{None} if the mount table
    cannot be read.
    """
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    path = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        point = _unescape(fields[4])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, right.split()[0]
    return best_type


def shared_filesystem(path: str, mountinfo: str = MOUNTINFO) -> str | None:
    """The filesystem type of C{path} if it is a shared one, else C{None}."""
    kind = filesystem_type(path, mountinfo)
    return kind if kind in SHARED_TYPES else None
