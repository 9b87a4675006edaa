# -*- test-case-name: tests.nfs.test_nfs_options,tests.nfs.test_maildir_nfs -*-
"""
Coherence on shared filesystems (NFS, SMB, FUSE): when the stores may
trust what the kernel tells them about files other nodes change.

An NFS client caches a file's attributes and a directory's listing for
seconds (C{acregmin}/C{acdirmin}) and revalidates a file only when it is
opened (close-to-open consistency).  A store that decides anything from a
listing or a stat (a message is gone, nothing changed) must first flush
those caches, as Dovecot's C{mail_nfs_storage} does:

  - a directory: C{chown} it to its own owner and group.  The change
    goes to the server, and the reply's attributes replace the cached
    ones, which drops the cached listing with them.  Nothing changes on
    disk.
  - a file: open it and C{fstat} the descriptor (close-to-open), never
    C{stat} the name.  An open descriptor's attributes are flushed the
    way a directory's are, by C{fchown} to the file's own owner
    (L{flush_fd}): after a read, that is what tells whether the read
    stopped at the file's real end or at a size the client had cached.

L{configure} sets the two switches once at start-up from C{[mail]
nfs_storage} and C{nfs_index} (C{true}, C{false} or C{"auto"}); "auto"
asks L{is_shared} of the mail root or index directory.  The stores then
ask L{storage_flush} (or L{index_flush}) for the path they work on.  The
default lock methods of mbox files (C{[mail] mbox_read_locks},
C{mbox_write_locks}) are decided the same way, by L{mbox_locks}: on a
shared filesystem readers take the dotlock too, since fcntl and flock
locks may stay on one client (NFS without a lock manager).
"""

from __future__ import annotations

import os
import threading
import time

__all__ = [
    "SHARED_FSTYPES", "fstype", "is_shared", "configure", "storage_flush", "index_flush",
    "flush_dir", "flush_fd", "fresh_stat", "STALE_READS", "STALE_PAUSES",
    "stale_pause", "decide", "mbox_locks", "DEFAULT_READ_LOCKS",
    "SHARED_READ_LOCKS", "DEFAULT_WRITE_LOCKS",
]

#: Dovecot's mbox_read_locks and mbox_write_locks defaults.
DEFAULT_READ_LOCKS = ("fcntl",)
DEFAULT_WRITE_LOCKS = ("dotlock", "fcntl")
#: Readers on a shared filesystem: the dotlock is the lock that reaches
#: the other nodes (DESIGN.md rule 3).
SHARED_READ_LOCKS = ("dotlock", "fcntl")

#: Filesystem types whose clients cache attributes or listings, or whose
#: locks are not those of one kernel: network filesystems and FUSE (a FUSE
#: daemon may be anything, sshfs or a cluster client; nothing says it is
#: coherent).  C{fuse.<subtype>} counts through its C{fuse} prefix.
SHARED_FSTYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre",
    "gpfs", "ocfs2", "gfs2", "afs", "beegfs", "fuse", "fuseblk",
})

#: A file read under its lock that came out shorter or older than what the
#: process knows of it (a stale size served by the client): how many reads
#: are made, with the caches flushed before each, before the store gives
#: up (L{storage.errors.StaleRead}), and the pause before each retry.  A
#: stale size put back by a racing attribute fetch is gone at the next
#: flush; a lagging server within a second.
STALE_READS = 4
STALE_PAUSES = (0.0, 0.1, 0.5)

_mu = threading.Lock()
#: "storage" / "index" -> True, False or "auto"
_settings: dict[str, object] = {"storage": "auto", "index": "auto",
                                "read_locks": "auto", "write_locks": "auto"}
#: device number -> shared?
_by_device: dict[int, bool] = {}


def _unescape(field: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def fstype(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """
    The filesystem type of the mount that holds C{path} (the longest mount
    point above it in C{mountinfo}), or C{None} if it cannot be told.
    """
    try:
        real = os.path.realpath(path)
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best, best_type = "", None
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and len(point) >= len(best):
            best, best_type = point, right.split(" ", 1)[0]
    return best_type


def is_shared(path: str) -> bool:
    """
    Whether C{path} is on a filesystem other clients may change behind
    our back (L{SHARED_FSTYPES}).  Answers are kept per device.  A path
    that does not exist yet is judged by its nearest existing parent.
    """
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        dev = os.stat(probe).st_dev
    except OSError:
        dev = None
    if dev is not None:
        with _mu:
            known = _by_device.get(dev)
        if known is not None:
            return known
    kind = fstype(probe) or ""
    shared = kind in SHARED_FSTYPES or kind.split(".", 1)[0] in SHARED_FSTYPES
    if dev is not None:
        with _mu:
            _by_device[dev] = shared
    return shared


def decide(value: object, path: str) -> bool:
    """C{true}/C{false} as they are; C{"auto"}: L{is_shared} of C{path}."""
    if value == "auto":
        return is_shared(path)
    return bool(value)


def _lock_names(value: object) -> tuple[str, ...] | str:
    if value == "auto":
        return "auto"
    return tuple(n for n in str(value).replace(",", "+").split("+") if n)


def configure(storage: object = "auto", index: object = "auto",
              read_locks: object = "auto", write_locks: object = "auto") -> None:
    """
    Set C{[mail] nfs_storage}, C{nfs_index}, C{mbox_read_locks} and
    C{mbox_write_locks} for this process.
    """
    for name, value in (("storage", storage), ("index", index)):
        if value not in (True, False, "auto"):
            raise ValueError(f"nfs_{name} must be true, false or \"auto\", not {value!r}")
    with _mu:
        _settings["storage"] = storage
        _settings["index"] = index
        _settings["read_locks"] = _lock_names(read_locks)
        _settings["write_locks"] = _lock_names(write_locks)


def mbox_locks(path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """
    The default (read, write) lock methods for mbox files under C{path}:
    the configured ones, or for "auto" Dovecot's defaults on a local
    filesystem and L{SHARED_READ_LOCKS} for readers on a shared one.
    """
    with _mu:
        read, write = _settings["read_locks"], _settings["write_locks"]
    if read == "auto":
        read = SHARED_READ_LOCKS if is_shared(path) else DEFAULT_READ_LOCKS
    if write == "auto":
        write = DEFAULT_WRITE_LOCKS
    return read, write


def storage_flush(path: str) -> bool:
    """Whether mail under C{path} needs the flushes (C{nfs_storage})."""
    with _mu:
        value = _settings["storage"]
    return decide(value, path)


def index_flush(path: str) -> bool:
    """Whether an index under C{path} is on shared storage (C{nfs_index})."""
    with _mu:
        value = _settings["index"]
    return decide(value, path)


def flush_dir(path: str) -> None:
    """
    Drop the client's cached attributes and listing of the directory
    C{path} (see the module docstring).  Errors are ignored: a directory
    we may not chown (not its owner) or one that is gone is simply listed
    as it is, which is what a local filesystem gives anyway.
    """
    try:
        st = os.stat(path)
        os.chown(path, st.st_uid, st.st_gid)
    except OSError:
        pass


def flush_fd(fd: int) -> os.stat_result:
    """
    Drop the client's cached attributes of the open file C{fd} and return
    them as the server has them now: C{fchown} to its own owner and group
    (a SETATTR whose reply carries the server's attributes, as for
    L{flush_dir}), then C{fstat}.  A file we may not chown is only
    C{fstat}ed, which is what a local filesystem gives anyway.
    """
    st = os.fstat(fd)
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except OSError:
        return st
    return os.fstat(fd)


def fresh_stat(path: str) -> os.stat_result:
    """
    The attributes of the file C{path} as the server has them now: open
    and C{fstat} (close-to-open revalidation), not C{stat} of the name.

    @raises OSError: as C{open} would (C{FileNotFoundError} if it is gone).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def stale_pause(attempt: int) -> None:
    """Wait before read number C{attempt} (from 1) of a file that looked stale."""
    pause = STALE_PAUSES[min(attempt, len(STALE_PAUSES)) - 1]
    if pause > 0:
        time.sleep(pause)
