# -*- test-case-name: tests.storage.maildir.test_maildir_store -*-
"""
One user's Maildir++ mail (L{IStore}): the mailbox list, subscriptions,
and opening mailboxes.

Directory operations are made atomic with renames where they can be: a new
mailbox is built under a temporary name and renamed into place (so nobody
sees it without C{cur/} or its uidlist), and a deleted one is renamed out
of the way before it is removed (so nobody delivers into half a mailbox).
Temporary names start with C{..}, which L{MaildirLayout.name_of} never
takes for a mailbox.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil

from zope.interface import implementer

from storage.base import SubscriptionsMixin
from storage.errors import InvalidMailboxName, MailboxExists, MailboxNotFound, StoreError
from storage.interfaces import IStore, MailboxInfo, MailboxStatus
from storage.maildir.files import atomic_write, locked, unique_name
from storage.maildir.keywords import KEYWORDS_NAME
from storage.maildir.layout import (
    FOLDER_MARKER,
    INBOX,
    SEP,
    SUBDIRS,
    MaildirLayout,
    normalize,
)
from storage.maildir.mailbox import MaildirMailbox
from storage.maildir.subscriptions import SubscriptionsFile
from storage.nfs import flush_dir, storage_flush
from storage.maildir.sync import new_uidlist, scan
from storage.maildir.uidlist import Uidlist, UidlistFile, UidlistRecord
from storage.maildir.uidlist import forget as forget_uidlists
from storage.maildir.uidvalidity import next_uidvalidity

__all__ = ["MaildirStore", "make_maildir"]

DIR_MODE = 0o700


def make_maildir(path: str) -> None:
    """Create C{cur/ new/ tmp/} under C{path} (and C{path}), mode 0700."""
    os.makedirs(path, DIR_MODE, exist_ok=True)
    for sub in SUBDIRS:
        os.makedirs(os.path.join(path, sub), DIR_MODE, exist_ok=True)


@implementer(IStore)
class MaildirStore(SubscriptionsMixin):
    """
    The Maildir++ store of one user.

    @ivar root: the root Maildir, which is INBOX unless C{inbox} is given.
    @ivar index_dir: the per-node index directory (unused until the index
        lands; kept so that callers can pass it today).
    """

    _normalize = staticmethod(normalize)

    def __init__(
        self,
        root: str,
        user: str,
        inbox: str | None = None,
        index_dir: str | None = None,
        fsync: bool = True,
    ) -> None:
        self.root = root
        self.user = user
        self.index_dir = index_dir
        self.fsync = fsync
        self.layout = MaildirLayout(root, inbox)
        self._subscriptions = SubscriptionsFile(root, fsync=fsync)

    def private_file(self, name: str) -> str:
        """
        A file of the store's own (URLAUTH keys, L{storage.urlauthkeys}):
        in the Maildir root beside C{dovecot-uidlist}, where only dot
        directories are mailboxes.
        """
        return os.path.join(self.root, "imapd-" + name)

    # -- helpers -------------------------------------------------------------

    def _new_uidvalidity(self) -> int:
        return next_uidvalidity(self.root, fsync=self.fsync)

    def _existing(self) -> dict[str, bool]:
        if storage_flush(self.root):
            # A folder another node made or removed is listed as it is now.
            flush_dir(self.root)
        return self.layout.scan()

    def _trash_path(self) -> str:
        return os.path.join(self.root, f"..deleted-{unique_name()}")

    def _build(self, path: str) -> None:
        """Create a selectable mailbox at C{path}, atomically."""
        staging = os.path.join(self.root, f"..creating-{unique_name()}")
        try:
            make_maildir(staging)
            atomic_write(os.path.join(staging, FOLDER_MARKER), b"", fsync=False)
            UidlistFile(staging, fsync=self.fsync).write(new_uidlist(self._new_uidvalidity()))
            try:
                os.rename(staging, path)
            except OSError as e:
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise MailboxExists(f"mailbox at {path} exists already") from None
                raise
        except OSError as e:
            raise StoreError(f"cannot create {path}: {e.strerror or e}") from e
        finally:
            if os.path.lexists(staging):
                shutil.rmtree(staging, ignore_errors=True)

    # -- IStore ----------------------------------------------------------------

    def list_mailboxes(self) -> list[MailboxInfo]:
        """Every mailbox, with \\Noselect parents and child attributes."""
        existing = self._existing()
        selectable = {name for name, ok in existing.items() if ok}
        names = set(existing) | {INBOX}
        for name in list(names):
            parts = name.split(SEP)
            for i in range(1, len(parts)):
                names.add(SEP.join(parts[:i]))
        parents = set()
        for name in names:
            if SEP in name:
                parents.add(name.rsplit(SEP, 1)[0])
        result = []
        for name in sorted(names):
            attrs = {"\\HasChildren" if name in parents else "\\HasNoChildren"}
            if name != INBOX and name not in selectable:
                attrs.add("\\Noselect")
            result.append(MailboxInfo(name, frozenset(attrs)))
        return result

    def create(self, name: str) -> None:
        """Create C{name} and its missing parents (RFC 3501 section 6.3.3)."""
        name = normalize(name)
        if name == INBOX:
            raise MailboxExists("INBOX exists already")
        existing = self._existing()
        if existing.get(name):
            raise MailboxExists(f"mailbox {name!r} exists already")
        parts = name.split(SEP)
        for i in range(1, len(parts) + 1):
            part = SEP.join(parts[:i])
            if part == INBOX or existing.get(part):
                continue
            path = self.layout.path(part)
            if part in existing:
                # A \Noselect leftover of DELETE: make it a mailbox again.
                make_maildir(path)
                atomic_write(os.path.join(path, FOLDER_MARKER), b"", fsync=False)
                uidfile = UidlistFile(path, fsync=self.fsync)
                with locked(uidfile.path):
                    if uidfile.read() is None:
                        uidfile.write(new_uidlist(self._new_uidvalidity()))
                continue
            try:
                self._build(path)
            except MailboxExists:
                if part == name:
                    raise MailboxExists(f"mailbox {name!r} exists already") from None

    def delete(self, name: str) -> None:
        """
        Delete a mailbox (RFC 3501 section 6.3.4).  With children, only its
        messages and control files go and it stays as a C{\\Noselect}
        directory, as Dovecot does.
        """
        name = normalize(name)
        if name == INBOX:
            raise StoreError("INBOX cannot be deleted")
        existing = self._existing()
        has_children = any(other.startswith(name + SEP) for other in existing)
        if name not in existing:
            if has_children:
                raise StoreError(f"mailbox {name!r} has children and is \\Noselect")
            raise MailboxNotFound(f"mailbox {name!r} does not exist")
        path = self.layout.path(name)
        if not existing[name]:
            if has_children:
                raise StoreError(f"mailbox {name!r} has children and is \\Noselect")
            shutil.rmtree(path, ignore_errors=True)
            forget_uidlists(path)
            return
        trash = self._trash_path()
        try:
            if has_children:
                # Take cur/ away first: without it the mailbox stops being
                # selectable at once, then the rest follows.
                os.makedirs(trash, DIR_MODE)
                for entry in ["cur", *sorted(set(os.listdir(path)) - {"cur"})]:
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(os.path.join(path, entry), os.path.join(trash, entry))
            else:
                os.rename(path, trash)
        except FileNotFoundError:
            raise MailboxNotFound(f"mailbox {name!r} does not exist") from None
        except OSError as e:
            raise StoreError(f"cannot delete {path}: {e.strerror or e}") from e
        finally:
            shutil.rmtree(trash, ignore_errors=True)
            # A Maildir made at this path later is a new one, not ours
            # with its uidlist "missing" (storage.maildir.uidlist.forget).
            forget_uidlists(path)

    def rename(self, old: str, new: str) -> None:
        """Rename a mailbox and its children (RFC 3501 section 6.3.5)."""
        old, new = normalize(old), normalize(new)
        if new == INBOX or new == old:
            raise MailboxExists(f"mailbox {new!r} exists already")
        if new.startswith(old + SEP):
            raise InvalidMailboxName(f"cannot rename {old!r} into its own child {new!r}")
        if old == INBOX:
            self._rename_inbox(new)
            return
        existing = self._existing()
        sources = [s for s in existing if s == old or s.startswith(old + SEP)]
        if not sources:
            raise MailboxNotFound(f"mailbox {old!r} does not exist")
        moves = []
        for source in sorted(sources):
            target = new + source[len(old) :]
            if target in existing or target == INBOX:
                raise MailboxExists(f"mailbox {target!r} exists already")
            moves.append((self.layout.path(source), self.layout.path(target)))
        for src, dst in moves:
            try:
                os.rename(src, dst)
            except OSError as e:
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise MailboxExists(f"{dst} exists already") from None
                raise StoreError(f"cannot rename {src}: {e.strerror or e}") from e
            forget_uidlists(src)
        self._create_parents(new)

    def _create_parents(self, name: str) -> None:
        """Create the missing parents of C{name}, as CREATE does."""
        parts = name.split(SEP)
        if len(parts) > 1:
            existing = self._existing()
            parent = SEP.join(parts[:-1])
            if parent != INBOX and not existing.get(parent):
                with contextlib.suppress(MailboxExists):
                    self.create(parent)

    def _rename_inbox(self, new: str) -> None:
        """
        RFC 3501 section 6.3.5: move INBOX's messages into C{new}, keeping
        their UIDs, and leave INBOX empty.  INBOX keeps its UIDVALIDITY
        and next UID, so its old UIDs are never given again.
        """
        if self._existing().get(new):
            raise MailboxExists(f"mailbox {new!r} exists already")
        self.create(new)
        src_dir = self.layout.path(INBOX)
        dst_dir = self.layout.path(new)
        src_list = UidlistFile(src_dir, fsync=self.fsync, nfs=storage_flush(src_dir))
        dst_list = UidlistFile(dst_dir, fsync=self.fsync, nfs=storage_flush(dst_dir))
        with locked(src_list.path), locked(dst_list.path):
            inbox = src_list.read_locked()
            target = dst_list.read_locked() or new_uidlist(self._new_uidvalidity())
            entries = scan(src_dir, flush=storage_flush(src_dir))
            keywords = os.path.join(src_dir, KEYWORDS_NAME)
            if os.path.exists(keywords):
                # The keyword letters of the moved files refer to INBOX's
                # keywords file: the new mailbox needs the same one.
                shutil.copyfile(keywords, os.path.join(dst_dir, KEYWORDS_NAME))
            moved = set()
            for base, entry in entries.items():
                try:
                    os.rename(entry.path(src_dir), entry.path(dst_dir))
                    moved.add(base)
                except FileNotFoundError:
                    continue
            records: tuple[UidlistRecord, ...] = ()
            nextuid = 1
            if inbox is not None:
                records = tuple(r for r in inbox.records if r.base in moved)
                nextuid = inbox.next_uid
            dst_list.write(
                Uidlist(
                    uidvalidity=target.uidvalidity,
                    nextuid=max(nextuid, target.next_uid),
                    guid=target.guid,
                    header_ext=target.header_ext,
                    records=records,
                )
            )

    def status(self, name: str) -> MailboxStatus:
        """
        STATUS from a read-only sync.  RECENT counts the files still in
        C{new/}: no session has claimed them yet.
        """
        mailbox = self.open(name, readonly=True)
        try:
            snapshot = mailbox.sync()
            assert snapshot is not None
            recent = mailbox.unclaimed()
        finally:
            mailbox.close()
        return MailboxStatus(
            messages=len(snapshot.messages),
            recent=recent,
            uidnext=snapshot.uidnext,
            uidvalidity=snapshot.uidvalidity,
            unseen=sum(1 for m in snapshot.messages if "\\Seen" not in m.flags),
            size=sum(m.size for m in snapshot.messages),
            highestmodseq=snapshot.highestmodseq,
        )

    def open(self, name: str, readonly: bool = False) -> MaildirMailbox:
        """Open a mailbox; L{MailboxNotFound} if it is not selectable."""
        name = normalize(name)
        path = self.layout.path(name)
        if name == INBOX and not os.path.isdir(os.path.join(path, "cur")):
            make_maildir(path)
        return MaildirMailbox(
            name, path, self._new_uidvalidity, readonly=readonly, fsync=self.fsync
        )

    def close(self) -> None:
        """Nothing is held between calls."""
