# -*- test-case-name: tests.storage.test_urlauthkeys -*-
"""
RFC 4467 mailbox access keys: one random secret per mailbox of a user,
from which URLAUTH tokens are computed (L{imapd.urlauth}).

The keys live in the user's mail store, not in the per-node index: a URL
made on one node must verify on every node, and must stop verifying
everywhere after RESETKEY.  One file per store holds them all, one line
per mailbox (C{<hex key> TAB <mailbox name>}), mode 0600, beside the
store's own control files (L{key_file}); it is rewritten whole, under the
NFS-safe dotlock, by writing a temporary file and renaming it (DESIGN.md
rules 3 and 4), so a reader sees the old or the new file, never a torn
one.  A mailbox without a key gets one the first time GENURLAUTH asks;
verifying never creates one (an unknown mailbox simply fails).
"""

from __future__ import annotations

import os
import secrets

from storage.maildir.files import atomic_write, locked, read_file

__all__ = ["MailboxKeys", "KEY_BYTES", "key_file"]

#: Octets of a mailbox key (Dovecot uses 16 as well).
KEY_BYTES = 16
FILE_NAME = "urlauth-keys"


def key_file(store) -> str:
    """
    Where C{store} keeps the keys: its C{private_file} (a file of the
    store's own beside its control files, never listed as a mailbox).
    """
    return store.private_file(FILE_NAME)


class MailboxKeys:
    """
    The access keys of one user's mailboxes.

    @param path: the key file (L{key_file}).
    @param fsync: whether writes are flushed to disk (the store's policy).
    """

    def __init__(self, path: str, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync

    def _read(self) -> dict[str, bytes]:
        data = read_file(self.path)
        keys: dict[str, bytes] = {}
        for line in (data or b"").splitlines():
            key, sep, name = line.partition(b"\t")
            if not sep:
                continue
            try:
                keys[name.decode("utf-8")] = bytes.fromhex(key.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                continue  # a damaged line: that mailbox gets a new key
        return keys

    def _write(self, keys: dict[str, bytes]) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        body = b"".join(key.hex().encode("ascii") + b"\t" + name.encode("utf-8") + b"\n"
                        for name, key in sorted(keys.items()))
        atomic_write(self.path, body, fsync=self.fsync, mode=0o600)

    def get(self, mailbox: str, create: bool = False) -> bytes | None:
        """
        The key of C{mailbox}; with C{create}, a new one is made (under
        the lock, so two nodes asking at once agree) when there is none.
        Blocking.
        """
        key = self._read().get(mailbox)
        if key is not None or not create:
            return key
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        with locked(self.path):
            keys = self._read()
            key = keys.get(mailbox)
            if key is None:
                key = keys[mailbox] = secrets.token_bytes(KEY_BYTES)
                self._write(keys)
        return key

    def reset(self, mailbox: str | None = None) -> None:
        """
        RFC 4467 RESETKEY: forget the key of C{mailbox}, or of every
        mailbox; URLs made with them no longer verify.  A new key is made
        on the next GENURLAUTH.  Blocking.
        """
        if not os.path.exists(self.path):
            return
        with locked(self.path):
            keys = {} if mailbox is None else self._read()
            keys.pop(mailbox, None)
            self._write(keys)
