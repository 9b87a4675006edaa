# -*- test-case-name: tests.storage.test_interfaces -*-
"""
Errors raised by mail stores.  They know nothing of IMAP: the protocol
layer maps them to NO responses and response codes in one place
(L{imapd.errors}).
"""

from __future__ import annotations

__all__ = [
    "StoreError",
    "MailboxNotFound",
    "MailboxExists",
    "InvalidMailboxName",
    "MailboxReadOnly",
    "MessageExpunged",
    "BrokenMailbox",
    "LockUnavailable",
    "StaleRead",
]


class StoreError(Exception):
    """A store could not do what was asked; the message says why."""


class MailboxNotFound(StoreError):
    """The mailbox does not exist (or is only a \\Noselect parent)."""


class MailboxExists(StoreError):
    """The mailbox to create, or the target of a rename, exists already."""


class InvalidMailboxName(StoreError):
    """
    The name is not acceptable: it would escape the mail root (C{..},
    absolute paths), holds NUL or control characters, or is reserved.
    """


class MailboxReadOnly(StoreError):
    """A write was attempted on a mailbox opened read-only."""


class MessageExpunged(StoreError):
    """The message was removed from the store (by someone else)."""


class BrokenMailbox(StoreError):
    """
    The mailbox's files are damaged in a way the store will not repair on
    its own; they are left intact and the message says what was found.
    """


class LockUnavailable(StoreError):
    """The store could not take the lock it needs (timeout or permission)."""


class StaleRead(StoreError):
    """
    A file read under its lock is older or shorter than what this process
    already saw of it (an NFS client serving an old size or a short read),
    and stayed so after its caches were flushed and it was read again.
    Nothing was changed: acting on such a read would give UIDs out twice
    or drop lines (DESIGN.md rule 1), so the operation fails instead and
    may simply be tried again.
    """
