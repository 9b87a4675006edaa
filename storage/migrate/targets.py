# -*- test-case-name: tests.storage.migrate.test_migrate -*-
"""
Writing a migration's target through the target store's own code:

 - Maildir: L{storage.maildir.restore} places messages under their UIDs
   (uidlist dotlock, files before lines);
 - mbox: one locked write of the mbox store (L{MboxMailbox.write}) with
   the UIDs given (L{storage.mbox.rewrite.Changes.uids}): C{X-UID} on each
   message, C{X-IMAPbase} with the source's UIDVALIDITY and last UID.

Flag changes and expunges of messages already copied go through the
store's ordinary transactions (L{storage.interfaces.ITransaction}).
"""

from __future__ import annotations

import os
from typing import Sequence

from storage.errors import StoreError
from storage.maildir.layout import INBOX
from storage.migrate.sources import SourceMailbox, SourceMessage

__all__ = ["MaildirTarget", "MboxTarget", "Placed"]

#: What a placement did: (UIDs placed, UIDs refused).
Placed = tuple[tuple[int, ...], tuple[int, ...]]


class _Target:
    """
    What both targets share: the store's mailbox list, subscriptions,
    flags, and the one mailbox open at a time (kept open from batch to
    batch: the mbox store then reads only what the last batch appended,
    not the whole file again).
    """

    def __init__(self, store) -> None:
        self.store = store
        self._open: tuple[str, object] | None = None

    def _box(self, name: str):
        """The writable target mailbox C{name}, opened once for its batches."""
        if self._open is not None and self._open[0] == name:
            return self._open[1]
        self.close()
        box = self.store.open(name)
        self._open = (name, box)
        return box

    def close(self) -> None:
        """Close the mailbox L{_box} keeps open."""
        if self._open is not None:
            box, self._open = self._open[1], None
            box.close()

    def ensure(self, name: str) -> None:
        """Create C{name} (and parents) if it is not there."""
        if name == INBOX:
            return
        known = {m.name for m in self.store.list_mailboxes() if "\\Noselect" not in m.attributes}
        if name not in known:
            self.store.create(name)

    def subscriptions(self) -> list[str]:
        return self.store.subscriptions()

    def subscribe(self, name: str) -> None:
        self.store.subscribe(name)

    def records(self, name: str):
        """The target's snapshot of C{name} (a writable sync)."""
        return self._box(name).sync()

    def carry_modseqs(self, name: str, log: bytes) -> bool:
        """
        Make the source's modseq log C{name}'s (L{storage.modseq}): the
        MODSEQs, HIGHESTMODSEQ and expunge history clients were given.
        The caller checks that the target holds the same UIDs and flags
        as the source.  Writes only if the two differ.

        @return: whether it wrote.
        """
        from storage.maildir.files import atomic_write, locked, read_file

        path = self._modseq_path(name)
        if read_file(path) == log:
            return False
        # Closed first: an open mailbox would append to the log it read.
        self.close()
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        # Under the log's own dotlock, the one its writers take.
        with locked(path):
            atomic_write(path, log)
        return True

    def change(self, name: str, flags: dict[int, frozenset[str]],
               expunge: Sequence[int]) -> None:
        """Set the flags of some messages and expunge others, in one commit."""
        box = self._box(name)
        box.sync()
        tx = box.transaction()
        for uid, new in flags.items():
            tx.set_flags(uid, new)
        for uid in expunge:
            tx.expunge(uid)
        tx.commit()


class MaildirTarget(_Target):
    """A Maildir++ store as the target."""

    def _modseq_path(self, name: str) -> str:
        from storage.maildir.mailbox import MODSEQ_FILE

        return os.path.join(self.store.layout.path(name), MODSEQ_FILE)

    def known(self, name: str) -> tuple[int | None, int, set[int]]:
        """C{(uidvalidity or None, uidnext, UIDs)} as the uidlist says (unlocked)."""
        from storage.maildir.uidlist import UidlistFile

        uidlist = UidlistFile(self.store.layout.path(name)).read()
        if uidlist is None:
            return None, 1, set()
        return uidlist.uidvalidity, uidlist.next_uid, {r.uid for r in uidlist.records}

    def place(self, name: str, source: SourceMailbox, messages: Sequence[SourceMessage],
              last: bool = True) -> Placed:
        """
        Place C{messages} under their UIDs; with C{last} (the mailbox's
        last batch) raise the next UID to the source's.
        """
        from storage.maildir.restore import Restored, restore

        result = restore(
            self._box(name), source.uidvalidity, source.uidnext if last else 0,
            [Restored(m.uid, m.flags, m.internaldate, m.read()) for m in messages],
            modseq_log=source.modseq_log)
        return result.placed, result.refused


class MboxTarget(_Target):
    """An mbox store as the target."""

    def _state(self, name: str):
        from storage.mbox.state import parse_file

        try:
            fd = os.open(self.store.layout.path(name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            return parse_file(fd, 0, os.fstat(fd).st_size, 1)
        finally:
            os.close(fd)

    def _modseq_path(self, name: str) -> str:
        return self.store.modseq_path(name)

    def known(self, name: str) -> tuple[int | None, int, set[int]]:
        """
        C{(uidvalidity or None, uidnext, UIDs)} as the file says, once the
        store's own reader has repaired what a killed run's write left
        (L{storage.mbox.journal}): the messages of a torn append are not
        counted as placed (the repair takes them away again).
        """
        path = self.store.layout.path(name)
        if os.path.exists(path) and os.path.getsize(path):
            self._box(name).sync()
        state = self._state(name)
        if state is None or not state.stored_uidvalidity:
            return None, 1, set()
        return state.uidvalidity, state.uidnext, {e.uid for e in state.entries}

    def place(self, name: str, source: SourceMailbox, messages: Sequence[SourceMessage],
              last: bool = True) -> Placed:
        """As L{MaildirTarget.place}."""
        from storage.mbox.headers import split_flags
        from storage.mbox.rewrite import Changes, prepare_new

        user = self.store.user
        prepared = []
        for m in messages:
            system, keywords = split_flags(m.flags)
            prepared.append((m.uid, prepare_new(m.read(), system | frozenset(keywords),
                                                m.internaldate, user)))
        refused: list[int] = []
        placed: list[int] = []

        def make(state) -> Changes:
            # Under the write lock, with the file as it is now.
            refused.clear()
            placed.clear()
            if state.entries and state.uidvalidity != source.uidvalidity:
                raise StoreError(
                    f"{self.store.layout.path(name)} holds mail under UIDVALIDITY "
                    f"{state.uidvalidity}, not {source.uidvalidity}: it is not a copy of "
                    f"this source; nothing was written")
            listed = {e.uid for e in state.entries}
            appends = []
            for uid, new in prepared:
                if uid in listed:
                    continue
                if uid <= state.last_uid:
                    refused.append(uid)
                    continue
                placed.append(uid)
                appends.append(new)
            return Changes(appends=appends, uids=tuple(placed),
                           last_uid=source.uidnext - 1 if last else 0,
                           uidvalidity=source.uidvalidity)

        self._box(name).write(make)
        return tuple(placed), tuple(refused)
