# -*- test-case-name: tests.storage.mbox.test_mbox_store -*-
"""
Write transactions on an mbox (L{ITransaction}).  Nothing touches the file
before L{MboxTransaction.commit}, which hands everything to
L{storage.mbox.mailbox.MboxMailbox.write} in one locked write
(L{storage.mbox.rewrite}): appends, copies, flag changes and expunges of a
transaction become visible together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from zope.interface import implementer

from storage.errors import MailboxReadOnly, MessageExpunged, StoreError
from storage.interfaces import CommitResult, IMailbox, ITransaction
from storage.mbox.headers import split_flags
from storage.mbox.rewrite import Changes, prepare_new

__all__ = ["MboxTransaction"]


@implementer(ITransaction)
class MboxTransaction:
    """Queued writes on one L{storage.mbox.mailbox.MboxMailbox}."""

    def __init__(self, mailbox) -> None:
        self.mailbox = mailbox
        self._changes = Changes()
        self._sources: list[int | None] = []
        self._finished = False

    def _check(self) -> None:
        if self._finished:
            raise StoreError("the transaction is finished")
        if self.mailbox.readonly:
            raise MailboxReadOnly(f"mailbox {self.mailbox.name!r} is open read-only")

    def append(self, data: bytes, flags: Iterable[str] = (),
               internaldate: datetime | None = None) -> None:
        """Queue a new message (converted now, written at commit)."""
        self._check()
        flags = frozenset(flags)
        split_flags(flags)
        self._changes.appends.append(
            prepare_new(data, _stored(flags), internaldate, self.mailbox.sender))
        self._sources.append(None)

    def copy_from(self, source: IMailbox, uids: Iterable[int]) -> None:
        """Queue copies, keeping flags and INTERNALDATE (read now)."""
        self._check()
        for uid in uids:
            record = _record(source, uid)
            self._changes.appends.append(prepare_new(
                source.read(uid), _stored(record.flags), record.internaldate,
                self.mailbox.sender))
            self._sources.append(uid)

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        """Queue a full replacement of the flags of C{uid}."""
        self._check()
        split_flags(flags)
        self._changes.flags[uid] = _stored(flags)

    def expunge(self, uid: int) -> None:
        """Queue the removal of C{uid}."""
        self._check()
        self._changes.expunge.add(uid)

    def rollback(self) -> None:
        """Forget everything queued."""
        self._changes = Changes()
        self._sources = []
        self._finished = True

    def commit(self) -> CommitResult:
        """Apply everything in one locked write; see L{storage.mbox.rewrite}."""
        if self._finished:
            raise StoreError("the transaction is finished")
        self._finished = True
        changes = self._changes
        if not (changes.appends or changes.flags or changes.expunge):
            return CommitResult(uidvalidity=self.mailbox.uidvalidity)
        outcome, uidvalidity = self.mailbox.write(lambda state: changes)
        copies = [s for s in self._sources if s is not None]
        return CommitResult(
            uidvalidity=uidvalidity,
            appended=outcome.appended,
            source_uids=tuple(copies) if copies else (),
            expunged=outcome.expunged,
            flags_changed=outcome.flags_changed,
        )


def _stored(flags) -> frozenset[str]:
    system, keywords = split_flags(flags)
    return system | frozenset(keywords)


def _record(source: IMailbox, uid: int):
    record = getattr(source, "record", None)
    if record is not None:
        return record(uid)
    for r in source.sync().messages:
        if r.uid == uid:
            return r
    raise MessageExpunged(f"message UID {uid} is gone from {source.name!r}")
