# -*- test-case-name: tests.storage.mbox.test_mbox_store -*-
"""
Write transactions on an mbox (L{ITransaction}).  Nothing touches the file
before L{MboxTransaction.commit}, which hands everything to
L{storage.mbox.mailbox.MboxMailbox.write} in one locked write
(L{storage.mbox.rewrite}): appends, copies, flag changes and expunges of a
transaction become visible together.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import BinaryIO, Iterable

from zope.interface import implementer

import dataclasses

from storage.crlf import CHUNK
from storage.errors import MailboxReadOnly, MessageExpunged, StoreError
from storage.flagchange import FlagChange, read_with_flags
from storage.interfaces import CommitResult, IMailbox, ITransaction
from storage.mbox.headers import split_flags
from storage.mbox.rewrite import Changes, prepare_new, prepare_new_file

__all__ = ["MboxTransaction"]


@implementer(ITransaction)
class MboxTransaction:
    """Queued writes on one L{storage.mbox.mailbox.MboxMailbox}."""

    def __init__(self, mailbox) -> None:
        self.mailbox = mailbox
        self._changes = Changes()
        self._sources: list[int | None] = []
        #: uid -> the change queued for it, applied in L{commit} to the
        #: flags the file holds under the write lock.
        self._flag_changes: dict[int, FlagChange] = {}
        self._normalized: dict[int, FlagChange] = {}
        self._keep: list[FlagChange] = []
        self._finished = False

    def _check(self) -> None:
        if self._finished:
            raise StoreError("the transaction is finished")
        if self.mailbox.readonly:
            raise MailboxReadOnly(f"mailbox {self.mailbox.name!r} is open read-only")

    def append(self, data: bytes, flags: Iterable[str] = (),
               internaldate: datetime | None = None) -> None:
        """Queue a new message (converted now, written at commit)."""
        self._queue(*_preparation(data), flags, internaldate)

    def append_file(self, file: BinaryIO, flags: Iterable[str] = (),
                    internaldate: datetime | None = None) -> None:
        """
        As L{append} of the file's content, read in chunks: the body waits
        for the commit quoted in a temporary file of its own
        (L{storage.mbox.rewrite.prepare_new_file}).
        """
        self._queue(prepare_new_file, file, flags, internaldate)

    def _queue(self, prepare, content, flags: Iterable[str],
               internaldate: datetime | None) -> None:
        self._check()
        flags = frozenset(flags)
        split_flags(flags)
        self._changes.appends.append(
            prepare(content, _stored(flags), internaldate, self.mailbox.sender))
        self._sources.append(None)

    def copy_from(self, source: IMailbox, uids: Iterable[int]) -> None:
        """Queue copies, keeping flags and INTERNALDATE (read now)."""
        self._check()
        for uid in uids:
            record = _record(source, uid)
            # The flags stored now, read with the message, not those of
            # the source's last sync (another session may have changed them).
            data, flags = read_with_flags(source, uid, record.flags)
            prepare, content = _preparation(data)
            self._changes.appends.append(prepare(
                content, _stored(flags), record.internaldate, self.mailbox.sender))
            self._sources.append(uid)

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        """Queue a full replacement of the flags of C{uid}."""
        self.change_flags(uid, FlagChange(frozenset(flags)))

    def change_flags(self, uid: int, change: FlagChange) -> None:
        """Queue a flag change; see L{ITransaction.change_flags}."""
        self._check()
        # Normalised once per change object (a STORE queues one for all).
        given = change
        change = self._normalized.get(id(given))
        if change is None:
            change = given
            if given.replace is not None:
                change = dataclasses.replace(given, replace=_stored(given.replace))
            elif given.add:
                change = dataclasses.replace(given, add=_stored(given.add))
            self._normalized[id(given)] = change
            self._keep.append(given)  # so that its id is not reused
        earlier = self._flag_changes.get(uid)
        self._flag_changes[uid] = change if earlier is None else earlier.then(change)

    def expunge(self, uid: int) -> None:
        """Queue the removal of C{uid}."""
        self._check()
        self._changes.expunge.add(uid)

    def rollback(self) -> None:
        """Forget everything queued."""
        self._changes = Changes()
        self._sources = []
        self._flag_changes = {}
        self._finished = True

    def commit(self) -> CommitResult:
        """Apply everything in one locked write; see L{storage.mbox.rewrite}."""
        if self._finished:
            raise StoreError("the transaction is finished")
        self._finished = True
        changes = self._changes
        flag_changes = self._flag_changes
        if not (changes.appends or flag_changes or changes.expunge):
            return CommitResult(uidvalidity=self.mailbox.uidvalidity)
        modified: list[int] = []

        def make(state) -> Changes:
            # Under the write lock, with the state just brought up to date
            # with the file: each change applies to the flags stored now.
            # (Called again if the file was replaced before we locked it.)
            modified.clear()
            if not flag_changes:
                return changes
            entries = {e.uid: e for e in state.entries if e.uid in flag_changes}
            judge = None
            if self.mailbox.modseqs is not None and any(
                    c.unchangedsince is not None for c in flag_changes.values()):
                judge = self.mailbox.modseqs.judge(state.uidvalidity, entries)
            flags = {}
            # A STORE 1:* has few distinct (change, flags) pairs.
            results: dict[tuple, frozenset[str]] = {}
            for uid, change in flag_changes.items():
                entry = entries.get(uid)
                if entry is None:
                    continue
                since = change.unchangedsince
                if since is not None and judge is not None and judge(uid, entry.flags) > since:
                    modified.append(uid)
                    continue
                new = results.get((id(change), entry.flags))
                if new is None:
                    new = results[(id(change), entry.flags)] = change.apply(entry.flags)
                if new != entry.flags:
                    flags[uid] = new
            return dataclasses.replace(changes, flags=flags)

        outcome, uidvalidity = self.mailbox.write(make)
        copies = [s for s in self._sources if s is not None]
        return CommitResult(
            uidvalidity=uidvalidity,
            appended=outcome.appended,
            source_uids=tuple(copies) if copies else (),
            expunged=outcome.expunged,
            flags_changed=outcome.flags_changed,
            modified=tuple(sorted(modified)),
        )


def _preparation(data: bytes):
    """
    How to prepare C{data} for the file: a large message as a file is
    (L{prepare_new_file}: its body quoted into a temporary file a chunk at
    a time), not by L{prepare_new}, whose line-end conversion, header split
    and mboxrd quoting each made one more copy of it in memory (an APPEND
    of 120 MB cost 355 MB more on an mbox than on a Maildir).
    """
    if len(data) > CHUNK:
        return prepare_new_file, io.BytesIO(data)
    return prepare_new, data


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
