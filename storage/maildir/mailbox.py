# -*- test-case-name: tests.storage.maildir.test_maildir_sync,tests.storage.maildir.test_maildir_fixture -*-
"""
An open Maildir mailbox (L{IMailbox}).

Each object is one session's (or one APPEND's) handle; it first reads the
Maildir when something needs it, so an APPEND does not list the mailbox.
It keeps what it
learned at its last L{MaildirMailbox.sync}: the uidlist, the file of each
message, and caches keyed by base name (sizes, INTERNALDATEs) that stay
valid for the life of the object because the base never changes
(DESIGN.md rule 5).  A persistent per-node index is a later issue.

C{\\Recent} (RFC 3501 section 2.3.2) is "this session is the first to see
it".  In a Maildir that is the file's move from C{new/} to C{cur/}: the
object whose rename succeeds owns the message's C{\\Recent}, and a rename
can only succeed once.  Read-only opens (EXAMINE, STATUS) never move files,
so they never take C{\\Recent} away from anyone.

On a shared filesystem (C{[mail] nfs_storage}, L{storage.nfs}) every
listing is made through flushed caches, a message is called gone only
after a flushed re-check, and the "nothing changed, the directories
settled" shortcut is off: it trusts directory mtimes, which an NFS client
caches and which the file server stamps by its own clock (issue 20).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable

from zope.interface import implementer

from storage.errors import LockUnavailable, MailboxNotFound, MessageExpunged, StoreError
from storage.interfaces import IMailbox, IMessageFacts, MailboxSnapshot, MessageRecord
from storage.crlf import header_length
from storage.maildir.content import crlf_size, to_crlf
from storage.maildir.filename import INFO_SEP, LETTER_FLAGS, size_field
from storage.maildir.keywords import KeywordsFile
from storage.maildir.save import MaildirTransaction
from storage.maildir.sync import Entry, confirm_missing, scan, update_uidlist
from storage.maildir.uidlist import Uidlist, UidlistFile
from storage.modseq import modseq_log
from storage.nfs import storage_flush

__all__ = ["MaildirMailbox", "clean_tmp", "TMP_MAX_AGE", "DIRTY_WINDOW", "MODSEQ_FILE"]

#: The modseq log (L{storage.modseq}) beside C{dovecot-uidlist}; Dovecot
#: ignores files it does not know in a Maildir.
MODSEQ_FILE = "imapd-modseq"

#: A directory changed less than this many seconds before our listing may
#: change again within the same timestamp tick (NFS servers and some file
#: systems keep whole seconds), so an unchanged mtime proves nothing for
#: that long: such a directory is listed again at every sync.
DIRTY_WINDOW = 2.0

#: Maildirs whose listing this process keeps, most recently used last.
_MAX_SHARED = 4096


@dataclass
class _Shared:
    """
    What every open of one Maildir in this process may reuse: the last
    listing and uidlist with the stat signature they were made under, and
    per-message facts that never change for a base name (DESIGN.md rule 5:
    INTERNALDATE, size).  This is an in-memory cache only; the store stays
    the truth (rule 2), and the signature decides when it is stale.
    """

    signature: tuple = ()
    entries: dict = field(default_factory=dict)
    uidlist: Uidlist | None = None
    keyword_map: dict = field(default_factory=dict)
    dates: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    #: (uid, file name) -> MessageRecord, valid for one keyword map.
    records: dict = field(default_factory=dict)
    #: Whether C{entries} has files still in new/ (nobody claimed them).
    has_new: bool = False
    #: Bumped whenever C{uidlist} or C{entries} is replaced.
    generation: int = 0
    #: (generation, keyword map, snapshot without \Recent, uid -> base,
    #: uid -> record): the last snapshot built from C{entries}, so that
    #: a SELECT of an unchanged 10,000-message mailbox does not build
    #: 10,000 records again.
    snapshot: tuple | None = None
    #: Flag letters -> flags, valid for one keyword map.
    flag_sets: dict = field(default_factory=dict)
    #: Computes INTERNALDATE and size on first use (L{_Facts}).
    facts: "_Facts | None" = None


@implementer(IMessageFacts)
class _Facts:
    """
    L{IMessageFacts} for one Maildir: INTERNALDATE is the file's mtime
    (Dovecot's convention) and RFC822.SIZE the CRLF size of its content
    (or the C{,W=} of its name), both remembered per base name in the
    L{_Shared} state, since neither ever changes for a base (rule 5).

    It finds a file through the shared listing and lists the Maildir again
    when the name it knows is stale (another process changed the flags).
    """

    def __init__(self, directory: str, shared: "_Shared", flush: bool = False) -> None:
        self.directory = directory
        self.shared = shared
        #: List through flushed NFS caches (L{storage.nfs}).
        self.flush = flush
        #: The last listing made here for a stale name: when another
        #: program renamed many files, one listing serves them all.
        self._fresh: dict = {}

    def _path(self, base: str, attempt: int) -> str:
        if attempt == 0:
            entries = self.shared.entries
        elif attempt == 1 and base in self._fresh:
            entries = self._fresh
        else:
            entries = self._fresh = scan(self.directory, flush=self.flush)
        entry = entries.get(base)
        if entry is None:
            raise MessageExpunged(f"message {base} is gone from {self.directory}")
        return entry.path(self.directory)

    def internaldate(self, base: str) -> datetime:
        date = self.shared.dates.get(base)
        if date is None:
            for attempt in range(3):
                try:
                    mtime = os.stat(self._path(base, attempt)).st_mtime
                    break
                except FileNotFoundError:
                    continue
            else:
                raise MessageExpunged(f"message {base} is gone from {self.directory}")
            date = self.shared.dates[base] = datetime.fromtimestamp(mtime, timezone.utc)
        return date

    def size(self, base: str) -> int:
        size = self.shared.sizes.get(base)
        if size is None:
            size = size_field(base, "W")
            if size is None:
                for attempt in range(3):
                    try:
                        with open(self._path(base, attempt), "rb") as f:
                            size = crlf_size(f.read())
                        break
                    except FileNotFoundError:
                        continue
                else:
                    raise MessageExpunged(f"message {base} is gone from {self.directory}")
            self.shared.sizes[base] = size
        return size


_shared_lock = threading.Lock()
_shared: "OrderedDict[str, _Shared]" = OrderedDict()


def _shared_for(directory: str, flush: bool = False) -> _Shared:
    with _shared_lock:
        state = _shared.get(directory)
        if state is None:
            state = _shared[directory] = _Shared()
            state.facts = _Facts(directory, state, flush)
            while len(_shared) > _MAX_SHARED:
                _shared.popitem(last=False)
        else:
            _shared.move_to_end(directory)
        return state


def _stat_key(path: str) -> tuple:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)

#: The Maildir spec: a file in tmp/ untouched for 36 hours is left over
#: from a crashed delivery and may be removed.
TMP_MAX_AGE = 36 * 3600


def clean_tmp(directory: str) -> None:
    """
    Remove stale files from C{tmp/} (older than L{TMP_MAX_AGE} by their
    ctime, which a delivery in progress keeps fresh).  The margin is wide
    enough that clock skew between us and an NFS server does not matter.
    """
    tmp = os.path.join(directory, "tmp")
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    limit = time.time() - TMP_MAX_AGE
    for name in names:
        path = os.path.join(tmp, name)
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and max(st.st_ctime, st.st_mtime, st.st_atime) < limit:
                os.unlink(path)
        except OSError:
            continue


@implementer(IMailbox)
class MaildirMailbox:
    """
    One open Maildir.

    @ivar directory: the Maildir (the one with C{cur/ new/ tmp/}).
    """

    def __init__(
        self,
        name: str,
        directory: str,
        new_uidvalidity: Callable[[], int],
        readonly: bool = False,
        fsync: bool = True,
        nfs: bool | None = None,
    ) -> None:
        if not os.path.isdir(os.path.join(directory, "cur")):
            raise MailboxNotFound(f"mailbox {name!r} does not exist")
        self.name = name
        self.directory = directory
        self.readonly = readonly
        self.fsync = fsync
        #: Flush NFS caches before trusting a listing or a stat
        #: (C{[mail] nfs_storage}; C{None}: as configured for this path).
        self.nfs = storage_flush(directory) if nfs is None else nfs
        self._new_uidvalidity = new_uidvalidity
        self.uidlist_file = UidlistFile(directory, fsync=fsync)
        self.keywords = KeywordsFile(directory, fsync=fsync, nfs=self.nfs)
        self.modseqs = modseq_log(os.path.join(directory, MODSEQ_FILE), fsync=fsync)
        self._entries: dict[str, Entry] = {}
        self._uidlist: Uidlist | None = None
        self._by_uid: dict[int, str] = {}
        self._records: dict[int, MessageRecord] = {}
        self._shared = _shared_for(os.path.realpath(directory), self.nfs)
        self._recent: set[str] = set()
        self._closed = False
        #: The snapshot of the last L{sync}.
        self.last_snapshot: MailboxSnapshot | None = None
        if not readonly:
            clean_tmp(directory)

    @property
    def uidvalidity(self) -> int:
        """The UIDVALIDITY as of the last sync (syncing first if none yet)."""
        if self._uidlist is None:
            self.sync()
        assert self._uidlist is not None
        return self._uidlist.uidvalidity

    # -- sync -------------------------------------------------------------

    def sync(self) -> MailboxSnapshot:
        """
        Re-read the directories and the uidlist; see L{IMailbox.sync}.

        Every call lists C{new/} and C{cur/}: a directory's mtime is not a
        safe "nothing changed" test over NFS (coarse timestamps, attribute
        caching), and a per-node index will make this cheaper later.
        """
        self._check_open()
        signature = self._signature()
        shared = self._shared
        if (
            not self.nfs
            and signature == shared.signature
            and shared.uidlist is not None
            and self._settled(signature)
            and (self.readonly or not shared.has_new)
        ):
            # Nothing changed since a listing made after the directories
            # settled: reuse it rather than list 10,000 files again.
            if shared.uidlist is self._uidlist and self.last_snapshot is not None:
                return self.last_snapshot
            self._uidlist = shared.uidlist
            # Shared until locate() needs to change it (copy on write).
            self._entries = shared.entries
            self.last_snapshot = self._snapshot()
            return self.last_snapshot
        uidlist = self.uidlist_file.read()
        # The last listing (with the names our own commits renamed to)
        # only spares parsing names that did not change; see scan().
        entries = scan(self.directory, self._entries, flush=self.nfs)
        if not self.readonly:
            self._claim_new(entries)
        complete = True
        if uidlist is None or not entries.keys() <= self._listed(uidlist):
            try:
                uidlist, entries = update_uidlist(
                    self.directory, self.uidlist_file, self._new_uidvalidity, self.nfs
                )
            except LockUnavailable:
                # A read-only open of a Maildir we may not write (a shared
                # archive): show what already has UIDs; the rest waits for
                # someone who can take the lock.  Never invent UIDs unlocked.
                if not self.readonly or uidlist is None:
                    raise
                complete = False
            if not self.readonly:
                self._claim_new(entries)
        # A message we showed last time and cannot see now may only be
        # hidden by a concurrent flag rename: look again before calling it
        # gone, or the session would report an EXPUNGE for a live message.
        vanished = {b for b in self._entries if b not in entries}
        confirm_missing(self.directory, entries, vanished, self.nfs)
        same_entries, same_uidlist, built = shared.entries, shared.uidlist, shared.snapshot
        if (
            complete
            and built is not None
            and built[0] == shared.generation
            and entries == same_entries
            and (uidlist is same_uidlist or uidlist == same_uidlist)
            and self.modseqs.is_current(built[2])
        ):
            # This listing shows the very files of the shared one (a name
            # carries all of a message's flags), the uidlist is the same
            # and nobody wrote the modseq log since its snapshot was
            # stamped: that snapshot still holds.  Keep it rather than build
            # and stamp 10,000 records again (the sync right after a STORE's
            # own).  Only a listing proves "nothing changed" here, never an
            # mtime.
            shared.signature = signature
            self._uidlist = same_uidlist
            self._entries = same_entries
            self.last_snapshot = self._snapshot()
            return self.last_snapshot
        self._uidlist = uidlist
        self._entries = entries
        # The signature taken before listing: a change made while we listed
        # gives a different signature next time, so it cannot be missed.
        # A listing with files still waiting for UIDs must not be reused:
        # the next sync has to try to give them UIDs again.
        shared.signature = signature if complete else ()
        # Generation first: a thread that still sees the old entries then
        # cannot pair them with a snapshot of the new generation.
        shared.generation += 1
        shared.uidlist = uidlist
        shared.entries = dict(entries)
        shared.has_new = any(e.subdir == "new" for e in entries.values())
        self._entries = shared.entries
        self.last_snapshot = self._snapshot()
        return self.last_snapshot

    def _signature(self) -> tuple:
        """Identity and mtimes of cur/, new/, the uidlist and keywords."""
        d = self.directory
        return (
            _stat_key(os.path.join(d, "cur")),
            _stat_key(os.path.join(d, "new")),
            _stat_key(self.uidlist_file.path),
            _stat_key(self.keywords.path),
        )

    @staticmethod
    def _settled(signature: tuple) -> bool:
        newest = max(key[2] for key in signature) / 1e9
        return time.time() - newest > DIRTY_WINDOW

    @staticmethod
    def _listed(uidlist: Uidlist) -> set[str]:
        return {r.base for r in uidlist.records}

    def _claim_new(self, entries: dict[str, Entry]) -> None:
        """Move files from new/ to cur/; those we move are our \\Recent."""
        for base, entry in list(entries.items()):
            if entry.subdir != "new":
                continue
            name = entry.name if entry.info is not None else f"{base}{INFO_SEP}2,"
            try:
                os.rename(entry.path(self.directory), os.path.join(self.directory, "cur", name))
            except FileNotFoundError:
                # Someone else moved (or deleted) it first: it is theirs.
                continue
            except OSError as e:
                raise StoreError(f"cannot move {entry.path(self.directory)} to cur/: {e}") from e
            self._recent.add(base)
            entries[base] = Entry.of("cur", name)

    def _snapshot(self) -> MailboxSnapshot:
        assert self._uidlist is not None
        keyword_map = self.keywords.read()
        shared = self._shared
        if keyword_map != shared.keyword_map:
            shared.keyword_map = dict(keyword_map)
            shared.records = {}
            shared.flag_sets = {}
        if self._entries is shared.entries and shared.snapshot is not None:
            generation, kw, snapshot, by_uid, records = shared.snapshot
            if generation == shared.generation and kw == keyword_map:
                self._by_uid = by_uid
                self._records = records
                if self._recent:
                    recent = frozenset(u for u, b in by_uid.items() if b in self._recent)
                    snapshot = replace(snapshot, recent=recent)
                return snapshot
        cached = shared.records
        facts = shared.facts
        dates, sizes = shared.dates, shared.sizes
        flag_sets = shared.flag_sets
        modseqs = None  # the log's MODSEQs, read when a record must be built
        messages: list[MessageRecord] = []
        by_uid: dict[int, str] = {}
        # Locals and tuple unpacking: a cold SELECT runs this 10,000 times.
        entry_of = self._entries.get
        known_record = cached.get
        add = messages.append
        make = MessageRecord
        for uid, base, _ext in self._uidlist.records:
            entry = entry_of(base)
            if entry is None:
                continue
            name = entry.name
            known = known_record((uid, name))
            if known is not None:
                add(known)
                by_uid[uid] = base
                continue
            letters = entry.letters
            flags = flag_sets.get(letters)
            if flags is None:
                # Most messages share a handful of letter strings: one
                # frozenset each, for as long as the keyword map holds.
                flags = flag_sets[letters] = frozenset(
                    LETTER_FLAGS[c] for c in letters if c in LETTER_FLAGS) | frozenset(
                    keyword_map[ord(c) - 97]
                    for c in letters
                    if "a" <= c <= "z" and ord(c) - 97 in keyword_map
                )
            # INTERNALDATE and size only when someone asks (or already
            # known to this process): SELECT reads no message file.
            size = sizes.get(base)
            if size is None and ",W=" in base:
                size = size_field(base, "W")
            if modseqs is None:
                modseqs = self.modseqs.current()
            rec = make(uid, flags, dates.get(base), size, base, modseqs.get(uid, 0), facts)
            cached[(uid, name)] = rec
            add(rec)
            by_uid[uid] = base
        self._by_uid = by_uid
        # MODSEQs from the shared modseq log (storage.modseq); the stamped
        # snapshot is what every open of this listing reuses.
        snapshot = self.modseqs.stamp(MailboxSnapshot(
            uidvalidity=self._uidlist.uidvalidity,
            uidnext=self._uidlist.next_uid,
            messages=tuple(messages),
            keywords=tuple(keyword_map[i] for i in sorted(keyword_map)),
        ))
        self._records = {m.uid: m for m in snapshot.messages}
        if self._entries is shared.entries:
            shared.snapshot = (shared.generation, dict(keyword_map), snapshot,
                               by_uid, self._records)
        if self._recent:
            recent = frozenset(u for u, b in by_uid.items() if b in self._recent)
            snapshot = replace(snapshot, recent=recent)
        return snapshot

    def expunged_since(self, modseq: int) -> list[int] | None:
        """See L{storage.interfaces.IMailbox.expunged_since}."""
        return self.modseqs.expunged_since(modseq, self.uidvalidity)

    # -- files --------------------------------------------------------------

    def locate(self, base: str) -> Entry | None:
        """
        The current file of a message, looking again on disk if the name we
        know is stale (another process renamed it to change flags).
        """
        entry = self._entries.get(base)
        if entry is not None and os.path.lexists(entry.path(self.directory)):
            return entry
        fresh = scan(self.directory, self._entries, flush=self.nfs)
        entry = fresh.get(base)
        if entry is not None:
            if self._entries is self._shared.entries:
                self._entries = dict(self._entries)
            self._entries[base] = entry
        return entry

    def known_entry(self, base: str) -> Entry | None:
        """The file of a message as of the last listing, unchecked."""
        return self._entries.get(base)

    def renamed(self, base: str, entry: Entry) -> None:
        """Remember that this process just renamed a message's file."""
        if self._entries is self._shared.entries:
            self._entries = dict(self._entries)
        self._entries[base] = entry

    def _open_fd(self, base: str) -> int:
        """
        A descriptor of the message's file: the name of the last listing
        first (no lstat before the open: a cold SORT opens 10,000 files),
        then, if another process renamed it meanwhile, a fresh listing.
        """
        entry = self._entries.get(base)
        if entry is not None:
            try:
                return os.open(entry.path(self.directory), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                pass
        for _ in range(3):
            entry = self.locate(base)
            if entry is None:
                break
            try:
                return os.open(entry.path(self.directory), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
        raise MessageExpunged(f"message {base} is gone from {self.name!r}")

    def _open(self, base: str):
        return os.fdopen(self._open_fd(base), "rb")

    def record(self, uid: int) -> MessageRecord:
        """
        The record of C{uid} as of the last sync.

        @raises MessageExpunged: no such message in the last sync.
        """
        if self.last_snapshot is None:
            self.sync()
        record = self._records.get(uid)
        if record is None:
            raise MessageExpunged(f"no message with UID {uid} in {self.name!r}")
        return record

    def base_of(self, uid: int) -> str:
        """The base name of C{uid} as of the last sync."""
        return self.record(uid).key

    def read(self, uid: int) -> bytes:
        """The message with CRLF line endings; see L{IMailbox.read}."""
        self._check_open()
        base = self.base_of(uid)
        with self._open(base) as f:
            data = to_crlf(f.read())
        # The size comes free with the content: a FETCH or SORT that read
        # the message spares RFC822.SIZE a second read.
        self._shared.sizes.setdefault(base, len(data))
        return data

    def read_header(self, uid: int) -> bytes:
        """The header block with CRLF line endings; see L{IMailbox.read_header}."""
        self._check_open()
        base = self.base_of(uid)
        fd = self._open_fd(base)
        try:
            # Most headers fit in the first 8 kB; a message's body is
            # often many times that (attachments), and is not read.
            data = os.read(fd, 8192)
            while True:
                length = header_length(data)
                if length is not None:
                    return to_crlf(data[:length])
                more = os.read(fd, max(len(data), 8192))
                if not more:
                    break
                data += more
        finally:
            os.close(fd)
        data = to_crlf(data)  # all header: the whole message was read
        self._shared.sizes.setdefault(base, len(data))
        return data

    def unclaimed(self) -> int:
        """
        How many messages were still in C{new/} at the last sync: no
        session has taken them as C{\\Recent} yet (STATUS RECENT).
        """
        return sum(1 for e in self._entries.values() if e.subdir == "new")

    def add_recent(self, base: str) -> None:
        """Count a message this object added as its own \\Recent."""
        if not self.readonly:
            self._recent.add(base)

    # -- transactions --------------------------------------------------------

    def transaction(self) -> MaildirTransaction:
        """Begin a write transaction; see L{storage.maildir.save}."""
        self._check_open()
        return MaildirTransaction(self)

    def close(self) -> None:
        """Forget the caches; the object is unusable afterwards."""
        self._closed = True
        self._entries = {}
        self._records = {}

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"mailbox {self.name!r} is closed")
