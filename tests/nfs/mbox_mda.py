# -*- test-case-name: tests.nfs.test_mbox_nfs -*-
"""
An mbox MDA for the NFS tests, delivering as procmail and mail.local do:
take the NFS-safe dotlock C{NAME.lock} (L{locking.dotlock}: unique file,
link, link count 2), open the mbox only then (close-to-open: the open
revalidates the size another node left), append a C{From } message after
a separating blank line, fsync, close, remove the lock.  The lock is held
for one append only, so a server that holds it briefly never starves it,
nor the other way round (DESIGN.md rule 6).

C{deliver(mount, message)} has the signature the two-node scenario's MDA
plug-in expects; L{deliver_to} takes the mbox path.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from locking import DotLock, DotlockSettings

__all__ = ["deliver", "deliver_to", "mbox_path", "USER"]

#: The scenario's user (L{scenario.USER}): INBOX is C{<mount>/alice/inbox}.
USER = "alice"
#: How long a delivery waits for the dotlock before it fails (the MTA
#: would defer the message and retry later).
LOCK_TIMEOUT = 30.0


def mbox_path(mount: Path) -> Path:
    """Where the scenario's user has INBOX under a mount."""
    return Path(mount) / USER / "inbox"


def _quote(body: bytes) -> bytes:
    """mboxrd quoting: a line matching C{>*From } gets one more C{>}."""
    out = []
    for line in body.splitlines(keepends=True):
        out.append(b">" + line if line.lstrip(b">").startswith(b"From ") else line)
    return b"".join(out)


def deliver_to(path: Path, message: bytes, sender: str = "mda@example.org") -> None:
    """
    Append C{message} (RFC 5322 bytes, LF or CRLF) to the mbox C{path}
    under its dotlock.  Returning means delivered and on disk.
    """
    text = message.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    head, sep, body = text.partition(b"\n\n")
    data = (b"From %s  %s\n" % (sender.encode(), time.strftime(
        "%a %b %e %H:%M:%S %Y", time.gmtime()).encode()) + head + sep + _quote(body))
    lock = DotLock(str(path), DotlockSettings(timeout=LOCK_TIMEOUT))
    lock.acquire()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # The size after the open, under the lock: an O_APPEND write
            # or a size from before the lock could land inside mail that
            # another node appended meanwhile.
            size = os.fstat(fd).st_size
            last = os.pread(fd, 2, size - 2) if size >= 2 else b""
            if size and not last.endswith(b"\n"):
                data = b"\n\n" + data
            elif size and last != b"\n\n":
                data = b"\n" + data
            view, offset = memoryview(data), size
            while view:
                n = os.pwrite(fd, view, offset)
                view, offset = view[n:], offset + n
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        lock.release()


def deliver(mount: Path, message: bytes) -> None:
    """The scenario's MDA plug-in: deliver to the user's INBOX on C{mount}."""
    deliver_to(mbox_path(mount), message)
