# -*- test-case-name: tests.storage.maildir.test_maildir_store -*-
"""
UIDVALIDITY for new mailboxes, the way Dovecot picks it
(C{mailbox-uidvalidity.c}): the current time, or one more than the last
value given under this mail root if that is larger, so that a mailbox
deleted and created again within a second still gets a new UIDVALIDITY
(RFC 3501 section 2.3.1.1).

The last value lives in C{dovecot-uidvalidity} (8 hex digits) in the mail
root, next to an empty marker file C{dovecot-uidvalidity.<hex>} that
Dovecot renames atomically to claim the next value.  We hold the
C{dovecot-uidvalidity.lock} dotlock between ourselves and also move the
marker, so that a Dovecot running on the same root steps past our values.
"""

from __future__ import annotations

import contextlib
import os
import time

from storage.maildir.files import atomic_write, locked, read_file
from storage.nfs import flush_dir, storage_flush

__all__ = ["UIDVALIDITY_NAME", "next_uidvalidity"]

UIDVALIDITY_NAME = "dovecot-uidvalidity"


def _last(root: str) -> tuple[int, list[str]]:
    best = 0
    data = read_file(os.path.join(root, UIDVALIDITY_NAME))
    if data:
        with contextlib.suppress(ValueError):
            best = int(data.strip() or b"0", 16)
    markers = []
    prefix = UIDVALIDITY_NAME + "."
    for entry in os.listdir(root):
        if entry.startswith(prefix) and len(entry) == len(prefix) + 8:
            with contextlib.suppress(ValueError):
                best = max(best, int(entry[len(prefix) :], 16))
                markers.append(entry)
    return best, markers


def next_uidvalidity(root: str, fsync: bool = True) -> int:
    """Claim and return the next UIDVALIDITY for a mailbox under C{root}."""
    path = os.path.join(root, UIDVALIDITY_NAME)
    with locked(path):
        if storage_flush(root):
            # Markers another node renamed are listed as they are now.
            flush_dir(root)
        last, markers = _last(root)
        value = max(int(time.time()), last + 1) & 0xFFFFFFFF or 1
        new_marker = os.path.join(root, f"{UIDVALIDITY_NAME}.{value:08x}")
        moved = False
        for marker in markers:
            try:
                os.rename(os.path.join(root, marker), new_marker)
                moved = True
                break
            except FileNotFoundError:
                continue
        if not moved:
            with contextlib.suppress(OSError):
                os.close(os.open(new_marker, os.O_WRONLY | os.O_CREAT, 0o400))
        atomic_write(path, f"{value:08x}".encode("ascii"), fsync=fsync)
        return value
