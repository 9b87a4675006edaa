# -*- test-case-name: tests.storage.migrate.test_migrate -*-
"""
Reading a migration's source without changing a byte of it.

 - mbox (C{mbox:} locations): the mbox store's own parser
   (L{storage.mbox.state}) through a read-only L{MboxMailbox} without a
   modseq log: C{X-IMAPbase}/C{X-IMAP} (UW's pseudo message), C{X-UID},
   C{Status}, C{X-Status}, C{X-Keywords}.  Messages without an C{X-UID}
   get the UIDs that parser computes, the ones UW-IMAP or Dovecot would
   store next.  INBOX is never created (the store's own open would).
 - Maildir (C{maildir:} locations, Maildir++ folders), judged per folder
   by the state files found: C{dovecot-uidlist} (Dovecot, and this
   server), C{courierimapuiddb} (L{storage.migrate.courier}), UW-IMAP's
   C{.uidlast} file or C{,u=} names (L{storage.migrate.uwmaildir}), or none
   (UIDs are given from 1).  The Maildir store would give UIDs to new
   files by writing the uidlist; here they are computed in memory
   instead, after the highest UID the folder knows, by (mtime, name).

The modseq log (L{storage.modseq}) of a mailbox this server served is
handed on as it is: the target then shows the same MODSEQs.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from storage.maildir.filename import LETTER_FLAGS, save_time, size_field
from storage.maildir.files import read_file
from storage.maildir.keywords import KeywordsFile
from storage.maildir.layout import INBOX, MaildirLayout
from storage.maildir.mailbox import MODSEQ_FILE
from storage.maildir.subscriptions import SUBSCRIPTIONS_NAME
from storage.maildir.subscriptions import parse as parse_maildir_subscriptions
from storage.maildir.sync import Entry, scan
from storage.maildir.uidlist import UIDLIST_NAME, Uidlist
from storage.migrate import courier, uwmaildir

__all__ = ["SourceMessage", "SourceMailbox", "MboxSource", "MaildirSource"]


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """
    One message of a source mailbox.

    @ivar size: RFC822.SIZE when it is known without reading the message.
    @ivar read: the message's bytes (LF or CRLF line ends).
    """

    uid: int
    flags: frozenset[str]
    internaldate: datetime
    size: int | None
    read: Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class SourceMailbox:
    """
    @ivar kind: where the UIDs came from (for the report): C{mbox},
        C{dovecot-uidlist}, C{courier}, C{uw-maildir}, C{maildir}
        (no UIDs stored).
    @ivar messages: ascending UIDs.
    @ivar modseq_log: this server's modseq log of the mailbox, if any.
    @ivar uidvalidity_stored: whether the source keeps its UIDVALIDITY;
        if not (a Maildir nobody gave UIDs, an mbox without
        C{X-IMAPbase}), it was made up for this run, and no client can
        have cached a UID under it.
    """

    name: str
    kind: str
    uidvalidity: int
    uidnext: int
    messages: tuple[SourceMessage, ...]
    modseq_log: bytes | None = None
    uidvalidity_stored: bool = True


class MboxSource:
    """The mbox mailboxes of one user."""

    def __init__(self, location, user: str) -> None:
        from storage.mbox.store import MboxStore, folder_root, open_mbox_store

        root = folder_root(location.root)
        if os.path.isdir(root):
            # The store's factory: its lock settings (NFS) are the ones
            # every other writer of these files uses.
            self.store = open_mbox_store(location, user, None)
        else:
            self.store = MboxStore(root, user, inbox=location.inbox)
        self.user = user

    def mailboxes(self) -> list[str]:
        names = [n for n, selectable in sorted(self.store.layout.scan().items()) if selectable]
        names = [n for n in names if n != INBOX]
        if os.path.isfile(self.store.layout.inbox):
            names.insert(0, INBOX)
        return names

    def subscriptions(self) -> list[str]:
        return self.store.subscriptions()

    def open(self, name: str) -> SourceMailbox:
        from storage.mbox.mailbox import MboxMailbox

        store = self.store
        box = MboxMailbox(name, store.layout.path(name), store.locks, readonly=True,
                          fsync=False, sender=self.user, must_exist=True, modseq_path=None,
                          journal_dir=store.journal_dir)
        snapshot = box.sync()
        messages = tuple(
            SourceMessage(r.uid, r.flags, r.internaldate, r.size,
                          functools.partial(box.read, r.uid))
            for r in snapshot.messages)
        return SourceMailbox(name, "mbox", snapshot.uidvalidity, snapshot.uidnext, messages,
                             read_file(store.modseq_path(name)),
                             uidvalidity_stored=box.uidvalidity_stored)


class MaildirSource:
    """The Maildir++ folders of one user."""

    def __init__(self, location, user: str) -> None:
        self.layout = MaildirLayout(location.root, location.inbox)
        self.root = location.root

    def mailboxes(self) -> list[str]:
        names = []
        if os.path.isdir(os.path.join(self.layout.path(INBOX), "cur")):
            names.append(INBOX)
        names += [n for n, selectable in sorted(self.layout.scan().items()) if selectable]
        return names

    def subscriptions(self) -> list[str]:
        names: list[str] = []
        data = read_file(os.path.join(self.root, SUBSCRIPTIONS_NAME))
        if data:
            names += parse_maildir_subscriptions(data)
        data = read_file(os.path.join(self.root, courier.SUBSCRIBED_NAME))
        if data:
            names += [n for n in courier.parse_subscribed(data) if n not in names]
        return names

    def open(self, name: str) -> SourceMailbox:
        directory = self.layout.path(name)
        entries = scan(directory)
        stored = True
        data = read_file(os.path.join(directory, UIDLIST_NAME))
        keywords: dict[str, frozenset[str]] = {}
        if data is not None:
            uidlist = Uidlist.parse(data, os.path.join(directory, UIDLIST_NAME))
            kind, uidvalidity, nextuid = "dovecot-uidlist", uidlist.uidvalidity, uidlist.next_uid
            uids = {r.base: r.uid for r in uidlist.records}
            names = KeywordsFile(directory).names
            keyword_of = lambda e: names(e.letters)  # noqa: E731
        elif (data := read_file(os.path.join(directory, courier.UIDDB_NAME))) is not None:
            kind = "courier"
            uidvalidity, nextuid, uids = courier.parse_uiddb(data)
            keywords = courier.read_keywords(directory)
            keyword_of = lambda e: keywords.get(e.base, frozenset())  # noqa: E731
        elif uwmaildir.is_uw_maildir(directory, (e.name for e in entries.values())):
            kind = "uw-maildir"
            uidlast = uwmaildir.read_uidlast(directory)
            stored = uidlast is not None
            last, uidvalidity = uidlast or (0, _now())
            uids = {}
            for base, entry in entries.items():
                uid = uwmaildir.uid_of_name(entry.name)
                if uid is not None and uid not in uids.values():
                    uids[base] = uid
            nextuid = last + 1
            keyword_of = lambda e: frozenset()  # noqa: E731
        else:
            stored = False
            kind, uidvalidity, nextuid, uids = "maildir", _now(), 1, {}
            keyword_of = lambda e: frozenset()  # noqa: E731
        listed = {b: u for b, u in uids.items() if b in entries}
        next_uid = max([nextuid, *(u + 1 for u in uids.values())])
        # Files without a UID: the next ones, in a stable order (the
        # Maildir store's own order for new files, L{storage.maildir.sync}).
        for entry in sorted((e for b, e in entries.items() if b not in listed),
                            key=lambda e: (_mtime(directory, e), e.base)):
            listed[entry.base] = next_uid
            next_uid += 1
        messages = []
        for base, uid in sorted(listed.items(), key=lambda item: item[1]):
            entry = entries[base]
            flags = frozenset(LETTER_FLAGS[c] for c in entry.letters if c in LETTER_FLAGS)
            path = entry.path(directory)
            when = _mtime(directory, entry)
            if kind == "uw-maildir":
                # The driver's INTERNALDATE is the time its file name starts with.
                stamp = save_time(base)
                when = stamp.timestamp() if stamp is not None else when
            messages.append(SourceMessage(
                uid, flags | keyword_of(entry),
                datetime.fromtimestamp(when, timezone.utc),
                size_field(base, "W"), functools.partial(_read_message, directory, entry)))
        return SourceMailbox(name, kind, uidvalidity, next_uid, tuple(messages),
                             read_file(os.path.join(directory, MODSEQ_FILE)),
                             uidvalidity_stored=stored)


def _now() -> int:
    return int(datetime.now(timezone.utc).timestamp())


def _mtime(directory: str, entry: Entry) -> float:
    try:
        return os.stat(entry.path(directory)).st_mtime
    except OSError:
        return 0.0


def _read_message(directory: str, entry: Entry) -> bytes:
    """The file's bytes; a file renamed since the listing is found by its base."""
    try:
        with open(entry.path(directory), "rb") as f:
            return f.read()
    except FileNotFoundError:
        moved = scan(directory).get(entry.base)
        if moved is None:
            raise
        with open(moved.path(directory), "rb") as f:
            return f.read()
