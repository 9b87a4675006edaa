# -*- test-case-name: tests.storage.mbox.test_mbox_store -*-
"""
One user's mbox mail (L{IStore}): the mailbox list (L{layout}),
subscriptions, and opening mailboxes (L{mailbox}).

A new mailbox is a file holding only UW-IMAP's pseudo message "DON'T
DELETE THIS MESSAGE -- FOLDER INTERNAL DATA" with a fresh UIDVALIDITY, so
that the file is the only truth (DESIGN.md rule 1) even while it is empty;
Dovecot and UW-IMAP both read and hide it.
"""

from __future__ import annotations

import errno
import os
import threading
import time

from zope.interface import implementer

from storage.base import SubscriptionsMixin
from storage.errors import InvalidMailboxName, MailboxExists, MailboxNotFound, StoreError
from storage.interfaces import IStore, MailboxInfo, MailboxStatus
from storage.location import MailLocation
from storage.mbox.layout import INBOX, SEP, MboxLayout, normalize
from storage.mbox.journal import JOURNAL_DIR, Journal
from storage.mbox.mailbox import EMPTY_STATE, LockSettings, MboxMailbox
from storage.mbox.rewrite import Changes, render_all
from storage.mbox.subscriptions import Subscriptions
from storage.nfs import mbox_locks, storage_flush

__all__ = ["MboxStore", "open_mbox_store"]

DIR_MODE = 0o700
FILE_MODE = 0o600
_UIDVALIDITY_LOCK = threading.Lock()
_last_uidvalidity = 0


def new_uidvalidity() -> int:
    """A fresh UIDVALIDITY: the time, strictly growing within the process."""
    global _last_uidvalidity
    with _UIDVALIDITY_LOCK:
        _last_uidvalidity = max(int(time.time()), _last_uidvalidity + 1)
        return _last_uidvalidity


def pseudo_content(uidvalidity: int, last_uid: int = 0) -> bytes:
    """A file holding only the pseudo message."""
    state = EMPTY_STATE(uidvalidity)
    return render_all(b"", state, Changes(), {}, (), last_uid)


#: The directory under the mail root that holds the modseq logs.
MODSEQ_DIR = ".imapd"


@implementer(IStore)
class MboxStore(SubscriptionsMixin):
    """
    The mbox store of one user.

    @ivar root: the directory of the mailboxes other than INBOX.
    @ivar inbox: the INBOX file.
    """

    _normalize = staticmethod(normalize)

    def __init__(self, root: str, user: str, inbox: str | None = None,
                 index_dir: str | None = None, fsync: bool = True,
                 locks: LockSettings | None = None, rewrite_in_place: bool = False) -> None:
        self.root = root
        self.user = user
        self.index_dir = index_dir
        self.fsync = fsync
        self.locks = locks or LockSettings()
        #: Rewrite files in place (with a journal) even where a rename works.
        self.rewrite_in_place = rewrite_in_place
        self.journal_dir = os.path.join(root, JOURNAL_DIR)
        self.layout = MboxLayout(root, inbox or os.path.join(root, "inbox"))
        self._subscriptions = Subscriptions(root, fsync=fsync)

    def _create_file(self, path: str, uidvalidity: int | None = None,
                     last_uid: int = 0) -> None:
        """Create an mbox holding only the pseudo message (O_EXCL: never clobbers)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            data = pseudo_content(uidvalidity or new_uidvalidity(), last_uid)
            os.write(fd, data)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _ensure_inbox(self) -> None:
        path = self.layout.inbox
        if os.path.exists(path):
            return
        try:
            os.makedirs(os.path.dirname(path), DIR_MODE, exist_ok=True)
            self._create_file(path)
        except FileExistsError:
            pass
        except OSError:
            pass  # a spool we cannot write to: INBOX reads as empty

    # -- IStore ------------------------------------------------------------

    def list_mailboxes(self) -> list[MailboxInfo]:
        """Every mailbox, with \\Noselect parents and child attributes."""
        existing = self.layout.scan()
        names = set(existing) | {INBOX}
        for name in list(names):
            parts = name.split(SEP)
            for i in range(1, len(parts)):
                names.add(SEP.join(parts[:i]))
        parents = {n.rsplit(SEP, 1)[0] for n in names if SEP in n}
        result = []
        for name in sorted(names):
            attrs = {"\\HasChildren" if name in parents else "\\HasNoChildren"}
            if name != INBOX and not existing.get(name):
                attrs.add("\\Noselect")
            if name != INBOX and existing.get(name):
                # A file cannot hold children in this layout.
                attrs.add("\\NoInferiors")
            result.append(MailboxInfo(name, frozenset(attrs)))
        return result

    def create(self, name: str) -> None:
        """Create C{name} and its missing parents (RFC 3501 section 6.3.3)."""
        name = normalize(name)
        if name == INBOX:
            raise MailboxExists("INBOX exists already")
        path = self.layout.path(name)
        parent = os.path.dirname(path)
        try:
            os.makedirs(parent, DIR_MODE, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            # Permanent, not a failing subsystem: RFC 5530 CANNOT (the
            # layout's invariant), as Dovecot answers, not UNAVAILABLE.
            raise InvalidMailboxName(f"a parent of {name!r} is a mailbox, which cannot hold "
                                     f"other mailboxes in the mbox layout") from None
        except OSError as e:
            raise StoreError(f"cannot create {parent}: {e.strerror or e}") from e
        if os.path.isdir(path):
            raise MailboxExists(f"{name!r} exists already as a \\Noselect parent; "
                                f"an mbox cannot be both")
        try:
            self._create_file(path)
        except FileExistsError:
            raise MailboxExists(f"mailbox {name!r} exists already") from None
        except OSError as e:
            raise StoreError(f"cannot create {path}: {e.strerror or e}") from e

    def delete(self, name: str) -> None:
        """Delete a mailbox (RFC 3501 section 6.3.4); INBOX is refused."""
        name = normalize(name)
        if name == INBOX:
            raise StoreError("INBOX cannot be deleted")
        path = self.layout.path(name)
        if os.path.isdir(path) and not os.path.islink(path):
            try:
                os.rmdir(path)
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise StoreError(f"mailbox {name!r} has children and is \\Noselect") from None
                raise StoreError(f"cannot delete {path}: {e.strerror or e}") from e
            return
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            # A name below a mailbox file ("box/child") cannot exist in the
            # mbox layout: it is missing (NONEXISTENT), not an I/O failure.
            raise MailboxNotFound(f"mailbox {name!r} does not exist") from None
        except OSError as e:
            raise StoreError(f"cannot delete {path}: {e.strerror or e}") from e

    def rename(self, old: str, new: str) -> None:
        """Rename a mailbox and its children (RFC 3501 section 6.3.5)."""
        old, new = normalize(old), normalize(new)
        if new == INBOX or new == old:
            raise MailboxExists(f"mailbox {new!r} exists already")
        if new.startswith(old + SEP):
            raise InvalidMailboxName(f"cannot rename {old!r} into its own child {new!r}")
        src, dst = self.layout.path(old), self.layout.path(new)
        if os.path.lexists(dst):
            raise MailboxExists(f"mailbox {new!r} exists already")
        if old != INBOX and not os.path.lexists(src):
            raise MailboxNotFound(f"mailbox {old!r} does not exist")
        try:
            os.makedirs(os.path.dirname(dst), DIR_MODE, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the parent of {new!r}: {e.strerror or e}") from e
        if old == INBOX:
            self._rename_inbox(dst)
            return
        # Journals are kept by name: repair the mailbox and its children
        # before their names change, or a torn write would lose its record.
        names = [old] + sorted(info.name for info in self.list_mailboxes()
                               if info.name.startswith(old + SEP))
        for name in names:
            path = self.layout.path(name)
            if os.path.isfile(path) and Journal(self.journal_dir, name).pending():
                MboxMailbox(name, path, self.locks, fsync=self.fsync,
                            journal_dir=self.journal_dir, in_place=self.rewrite_in_place).close()
        try:
            os.rename(src, dst)
        except OSError as e:
            raise StoreError(f"cannot rename {src}: {e.strerror or e}") from e

    def _rename_inbox(self, dst: str) -> None:
        """
        Move INBOX's messages to C{dst} and leave INBOX empty, keeping its
        UIDVALIDITY and last UID so that no UID is ever given twice.
        """
        self._ensure_inbox()
        box = MboxMailbox(INBOX, self.layout.inbox, self.locks, readonly=False,
                          fsync=self.fsync, must_exist=False, journal_dir=self.journal_dir,
                          in_place=self.rewrite_in_place)

        def move(state):
            # Under INBOX's write lock: copy it out, then empty it.
            with open(self.layout.inbox, "rb") as f:
                data = f.read()
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            try:
                os.write(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            return Changes(expunge={e.uid for e in state.entries})

        try:
            box.write(move)
        except FileExistsError:
            raise MailboxExists(f"{dst} exists already") from None
        finally:
            box.close()

    def status(self, name: str) -> MailboxStatus:
        """STATUS from a read-only sync; RECENT counts messages without C{O}."""
        box = self.open(name, readonly=True)
        try:
            snapshot = box.last_snapshot
            assert snapshot is not None
            recent = box.unclaimed()
        finally:
            box.close()
        return MailboxStatus(
            messages=len(snapshot.messages), recent=recent, uidnext=snapshot.uidnext,
            uidvalidity=snapshot.uidvalidity,
            unseen=sum(1 for m in snapshot.messages if "\\Seen" not in m.flags),
            size=sum(m.size for m in snapshot.messages),
            highestmodseq=snapshot.highestmodseq)

    def open(self, name: str, readonly: bool = False) -> MboxMailbox:
        """Open a mailbox; L{MailboxNotFound} if it is not a file."""
        name = normalize(name)
        path = self.layout.path(name)
        if name == INBOX:
            self._ensure_inbox()
        elif not os.path.isfile(path):
            raise MailboxNotFound(f"mailbox {name!r} does not exist")
        return MboxMailbox(name, path, self.locks, readonly=readonly, fsync=self.fsync,
                           sender=self.user, must_exist=name != INBOX,
                           modseq_path=self.modseq_path(name),
                           journal_dir=self.journal_dir, in_place=self.rewrite_in_place)

    def private_file(self, name: str) -> str:
        """
        A file of the store's own (URLAUTH keys, L{storage.urlauthkeys}):
        under C{<root>/.imapd/}, which LIST skips, like the modseq logs.
        """
        return os.path.join(self.root, MODSEQ_DIR, name)

    def modseq_path(self, name: str) -> str:
        """
        Where the modseq log (L{storage.modseq}) of C{name} lives: under
        C{<root>/.imapd/}, never beside the mbox file, because INBOX is
        often in a 1777 spool that must not collect our files (and LIST
        skips dot names).
        """
        name = normalize(name)
        if name == INBOX:
            rel = INBOX
        else:
            rel = os.path.relpath(self.layout.path(name), self.root)
        return os.path.join(self.root, MODSEQ_DIR, rel + ".modseq")

    def close(self) -> None:
        """Nothing is held between calls."""


#: Folder directories that pine, mutt and Dovecot's autodetection try in
#: this order; a configured one that is missing falls back to the other.
FOLDER_DIRS = ("mail", "Mail")


def folder_root(root: str) -> str:
    """
    The folder directory to use for a configured C{root}: C{root} itself if
    it exists; if it is missing and is a C{~/mail} or C{~/Mail} (by its last
    level), the other one when that exists, as pine and mutt users expect
    (Dovecot's mbox autodetection looks at C{~/mail}, then C{~/Mail}).
    """
    if os.path.isdir(root):
        return root
    parent, level = os.path.split(root)
    if level in FOLDER_DIRS:
        for other in FOLDER_DIRS:
            candidate = os.path.join(parent, other)
            if other != level and os.path.isdir(candidate):
                return candidate
    return root


def open_mbox_store(location: MailLocation, user: str, index_dir: str | None) -> MboxStore:
    """
    The registry's factory (L{storage.registry.STORES}): C{mbox:<root>} with
    INBOX at C{INBOX=} or C{<root>/inbox}.  Options C{READ_LOCKS} and
    C{WRITE_LOCKS} (lock method names separated by C{+} or C{,}) override
    the defaults of L{storage.nfs.mbox_locks} (Dovecot's C{fcntl} and
    C{dotlock+fcntl}; readers take the dotlock too on a shared filesystem,
    judged for the root and for INBOX's directory, often another mount
    such as C{/var/mail}); C{REWRITE_IN_PLACE}
    rewrites files in place (journaled, keeping inode and owner) even where
    a rename would work.  A missing C{~/mail} root falls back to an existing
    C{~/Mail} and the other way round (L{folder_root}); with neither, the
    configured one is created.
    """
    root = folder_root(location.root)
    try:
        os.makedirs(root, DIR_MODE, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the mail root {root}: {e.strerror or e}") from e
    read = location.option("READ_LOCKS")
    write = location.option("WRITE_LOCKS")

    def names(value, default):
        if value is None:
            return default
        return tuple(n for n in value.replace(",", "+").split("+") if n)

    # Defaults: [mail] mbox_read_locks / mbox_write_locks (storage.nfs).
    # With [mail] nfs_storage (or "auto" on a shared filesystem) the
    # mailboxes also trust no cached attribute (LockSettings.shared).
    places = [root] + ([os.path.dirname(location.inbox)] if location.inbox else [])
    defaults = [mbox_locks(p) for p in places]
    default_read = next((r for r, _ in defaults if "dotlock" in r), defaults[0][0])
    locks = LockSettings(read=names(read, default_read), write=names(write, defaults[0][1]),
                         shared=any(storage_flush(p) for p in places))
    return MboxStore(root, user, inbox=location.inbox, index_dir=index_dir, locks=locks,
                     rewrite_in_place=location.option("REWRITE_IN_PLACE") is not None)
