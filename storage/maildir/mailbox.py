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
listing is made through flushed caches and a message is called gone only
after a flushed re-check.  The "nothing changed, the directories settled"
shortcut then takes the directories' attributes as the server has them
(flushed), and judges "settled" by how long we have seen them unchanged on
our own clock, never by comparing our clock with the server's mtimes
(issue 20: the server stamps files by its own clock).
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
from storage.crlf import CHUNK, crlf_chunks, cut_chunks, header_length
from storage.maildir.content import crlf_size, to_crlf
from storage.maildir.filename import INFO_SEP, LETTER_FLAGS, save_time, size_field
from storage.maildir.keywords import KeywordsFile
from storage.maildir.save import MaildirTransaction
from storage.maildir.sync import Entry, confirm_missing, scan, update_uidlist
from storage.maildir.uidlist import Uidlist, UidlistFile
from storage.modseq import modseq_log
from storage.nfs import flush_dir, fresh_stat, storage_flush

__all__ = ["MaildirMailbox", "clean_tmp", "TMP_MAX_AGE", "TMP_CLEAN_INTERVAL", "DIRTY_WINDOW",
           "FINE_WINDOW", "MODSEQ_FILE"]

#: The modseq log (L{storage.modseq}) beside C{dovecot-uidlist}; Dovecot
#: ignores files it does not know in a Maildir.
MODSEQ_FILE = "imapd-modseq"

#: A directory changed less than this many seconds before our listing may
#: change again within the same timestamp tick (NFS servers and some file
#: systems keep whole seconds), so an unchanged mtime proves nothing for
#: that long: such a directory is listed again at every sync.
DIRTY_WINDOW = 2.0
#: The same where the newest mtime has digits below 10 ms: the file system
#: keeps fine times, and the tick is the kernel's clock tick (at most 10 ms
#: on Linux), as for the mbox store's C{FINE_WINDOW}.  A Maildir written a
#: few times a second is then listed again only after it changed, not at
#: every sync for two seconds.
FINE_WINDOW = 0.05

#: The clock L{MaildirMailbox._settled} compares local mtimes with.
_now = time.time

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
    #: (signature, monotonic time this process first saw it), for the
    #: NFS test of L{MaildirMailbox._settled_nfs}.
    first_seen: tuple | None = None
    #: Whether C{entries} was listed once C{signature} had settled (NFS).
    settled_listing: bool = False
    #: When (monotonic) a writable open last ran L{clean_tmp} here.
    tmp_cleaned: float | None = None


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

    def save_date(self, base: str):
        """
        RFC 8514: the time the unique name starts with (see
        L{storage.maildir.filename.save_time}); C{None} (the record then
        gives the INTERNALDATE, the file's mtime at delivery) for a name
        without one.  No I/O.
        """
        return save_time(base)

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


def _newest(messages, floor: int) -> list[int]:
    """The UIDs at or above C{floor} of UID-ordered C{messages}, ascending."""
    out = []
    for record in reversed(messages):
        if record.uid < floor:
            break
        out.append(record.uid)
    out.reverse()
    return out


def _stat_key(path: str, stat_=os.stat) -> tuple:
    try:
        st = stat_(path)
    except FileNotFoundError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _fresh_key(path: str) -> tuple:
    """L{_stat_key} by open and fstat: revalidated over NFS (close-to-open)."""
    return _stat_key(path, fresh_stat)

#: The Maildir spec: a file in tmp/ untouched for 36 hours is left over
#: from a crashed delivery and may be removed.
TMP_MAX_AGE = 36 * 3600

#: Seconds between two L{clean_tmp} runs on one Maildir in one process
#: (see L{MaildirMailbox._clean_tmp}).
TMP_CLEAN_INTERVAL = 3600.0


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
        self.uidlist_file = UidlistFile(directory, fsync=fsync, nfs=self.nfs)
        self.keywords = KeywordsFile(directory, fsync=fsync, nfs=self.nfs)
        # One realpath for both process-wide caches: it costs an lstat per
        # component of the path, at every open.
        real = os.path.realpath(directory)
        self.modseqs = modseq_log(os.path.join(real, MODSEQ_FILE), fsync=fsync, resolved=True)
        self._entries: dict[str, Entry] = {}
        self._uidlist: Uidlist | None = None
        self._by_uid: dict[int, str] = {}
        self._records: dict[int, MessageRecord] = {}
        self._shared = _shared_for(real, self.nfs)
        #: Base names this object has as \Recent.
        self._recent: set[str] = set()
        #: Base names the last sync moved out of new/ (see _claim_new).
        self._moved: set[str] = set()
        #: Set by L{_signature} with NFS: the server's times show both
        #: directories unchanged for L{DIRTY_WINDOW} seconds.
        self._server_quiet = False
        self._closed = False
        #: The snapshot of the last L{sync}.
        self.last_snapshot: MailboxSnapshot | None = None
        if not readonly:
            self._clean_tmp()

    def _clean_tmp(self) -> None:
        """
        L{clean_tmp} at most once per L{TMP_CLEAN_INTERVAL} per Maildir in
        this process: it lists C{tmp/}, and files become stale only after
        L{TMP_MAX_AGE}, so looking at every writable open (each SELECT,
        APPEND and COPY) finds nothing new.  Dovecot looks every 8 hours.
        """
        shared = self._shared
        now = time.monotonic()
        if shared.tmp_cleaned is not None and now - shared.tmp_cleaned < TMP_CLEAN_INTERVAL:
            return
        shared.tmp_cleaned = now
        clean_tmp(self.directory)

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
        Then C{\\Recent} (RFC 3501 section 2.3.2): a writable open takes
        the messages no session has taken yet, as the modseq log's floor
        says (L{storage.modseq.ModseqLog.claim_recent}); a read-only one
        (EXAMINE, STATUS) shows them as recent and takes nothing, so the
        next SELECT still gets them.
        """
        # A sync that gives new messages their MODSEQs and then claims them
        # as \Recent appends to the modseq log twice: one fsync for both.
        with self.modseqs.one_fsync():
            return self._sync_and_claim()

    def _sync_and_claim(self) -> MailboxSnapshot:
        snapshot = self._sync_files()
        messages = snapshot.messages
        moved, self._moved = self._moved, set()
        floor = self.modseqs.recent_floor(snapshot.uidvalidity)
        if self.readonly:
            if floor is None:
                # No floor yet: files still in new/ are the unclaimed ones.
                entries = self._entries
                by_uid = self._by_uid
                unclaimed = frozenset(u for u, b in by_uid.items()
                                      if entries.get(b) is not None
                                      and entries[b].subdir == "new")
            else:
                unclaimed = frozenset(_newest(messages, floor))
            if not unclaimed:
                return snapshot
            snapshot = replace(snapshot, recent=snapshot.recent | unclaimed)
        else:
            if floor is not None and (not messages or messages[-1].uid < floor):
                return snapshot
            newest = _newest(messages, floor or 0)
            by_uid = self._by_uid
            claimed = self.modseqs.claim_recent(
                snapshot.uidvalidity, newest,
                lambda: [u for u in newest if by_uid.get(u) in moved])
            if not claimed:
                return snapshot
            self._recent.update(by_uid[u] for u in claimed if u in by_uid)
            snapshot = replace(snapshot, recent=snapshot.recent | frozenset(claimed))
        self.last_snapshot = snapshot
        return snapshot

    def _sync_files(self) -> MailboxSnapshot:
        """
        The listing part of L{sync}.

        C{new/} and C{cur/} are listed unless the directories, the uidlist
        and the keywords file look exactly as they did at a listing made
        once they had settled: locally by their mtimes' age, over NFS by
        their attributes as the server has them now and by the server's
        own times or our monotonic clock (L{_settled_nfs}), never by an
        attribute cache or a comparison of our clock with the server's.
        """
        self._check_open()
        signature = self._signature()
        shared = self._shared
        # Judged now, before listing: what matters is whether a change
        # made after the listing starts must show in the signature.
        settled = self._settled_nfs(signature) if self.nfs else self._settled(signature)
        if (
            signature == shared.signature
            and shared.uidlist is not None
            and shared.settled_listing
            and (self.readonly or not shared.has_new)
        ):
            # Nothing changed since a listing made after the directories
            # settled: reuse it rather than list 10,000 files again.
            # Our own snapshot is current only if it was made from this very
            # listing: another session of this process may have refreshed the
            # shared listing (seeing flag changes or expunges) while the
            # uidlist stayed the same object.
            if (shared.uidlist is self._uidlist and self._entries is shared.entries
                    and self.last_snapshot is not None):
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
        # A lock-free read older than what this process already saw (a
        # short read through an NFS client's stale size) is not shown:
        # the read under the lock decides.
        if (uidlist is None or self.uidlist_file.behind(uidlist)
                or not entries.keys() <= self._listed(uidlist)):
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
            shared.settled_listing = settled
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
        shared.settled_listing = settled
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
        """
        Identity and mtimes of cur/, new/, the uidlist and keywords; with
        NFS, as the file server has them now (flushed directories, files
        opened), never from the client's attribute cache.
        """
        d = self.directory
        if self.nfs:
            keys = []
            quiet = True
            for sub in ("cur", "new"):
                path = os.path.join(d, sub)
                flush_dir(path)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    keys.append((0, 0, 0))
                    continue
                keys.append((st.st_ino, st.st_size, st.st_mtime_ns))
                # The chown of flush_dir() made the ctime the server's
                # "now": a ctime well after the mtime is the server's own
                # word that the directory's last change is past.
                quiet = quiet and st.st_ctime_ns - st.st_mtime_ns > DIRTY_WINDOW * 1e9
            self._server_quiet = quiet
            return (*keys, _fresh_key(self.uidlist_file.path), _fresh_key(self.keywords.path))
        return (
            _stat_key(os.path.join(d, "cur")),
            _stat_key(os.path.join(d, "new")),
            _stat_key(self.uidlist_file.path),
            _stat_key(self.keywords.path),
        )

    def _settled_nfs(self, signature: tuple) -> bool:
        """
        Whether a listing made now shows every change that leaves the
        directories with C{signature}, judged without comparing our clock
        with the file server's: changes within one timestamp tick of the
        server can share an mtime, so a signature proves nothing until it
        has stayed the same for L{DIRTY_WINDOW} seconds of our own
        (monotonic) clock.  By then the server's clock has passed that
        tick too, whatever its offset from ours, and every change with
        that mtime happened before the listing that follows.  L{_signature}
        may already know that from the server's own times.
        """
        shared = self._shared
        now = time.monotonic()
        seen = shared.first_seen
        if seen is None or seen[0] != signature:
            shared.first_seen = seen = (signature, now)
        # Or the server says so itself: both directories' ctimes, just set
        # to its "now" by the flush, are past their mtimes by the window
        # (two times of the server's clock, so no offset matters).
        return self._server_quiet or now - seen[1] >= DIRTY_WINDOW

    @staticmethod
    def _settled(signature: tuple) -> bool:
        """
        On a local file system: whether every change from now on gets an
        mtime other than those of C{signature}, so that a listing started
        now can be trusted for as long as the signature stays the same.
        That holds once the newest mtime is a timestamp tick in the past:
        L{FINE_WINDOW} where it has digits below 10 ms (the tick is then
        the kernel's clock tick), else L{DIRTY_WINDOW}.  It must hold when
        the listing is made, not merely later: a change in the tick of a
        listing made too early leaves the signature as it was.
        """
        newest = max(key[2] for key in signature)
        window = FINE_WINDOW if newest % 10_000_000 else DIRTY_WINDOW
        return _now() - newest / 1e9 > window

    @staticmethod
    def _listed(uidlist: Uidlist) -> set[str]:
        return {r.base for r in uidlist.records}

    def _claim_new(self, entries: dict[str, Entry]) -> None:
        """
        Move files from new/ to cur/ (the Maildir way of saying "a mail
        reader has seen it").  Which session has them as C{\\Recent} is
        the modseq log's floor's to say; these are the candidates only
        while a log has no floor yet (L{sync}).
        """
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
            self._moved.add(base)
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

    def locate(self, base: str, fresh: bool = False) -> Entry | None:
        """
        The current file of a message, looking again on disk if the name we
        know is stale (another process renamed it to change flags).

        @param fresh: the name we know just failed (ENOENT): list at once.
            An C{lstat} of it could still succeed from an NFS client's
            attribute cache, and the caller would retry the same dead name.
        """
        entry = self._entries.get(base)
        if not fresh and entry is not None and os.path.lexists(entry.path(self.directory)):
            return entry
        fresh = scan(self.directory, self._entries, flush=self.nfs)
        entry = fresh.get(base)
        if entry is not None:
            if self._entries is self._shared.entries:
                self._entries = dict(self._entries)
            self._entries[base] = entry
        return entry

    def known_entries(self) -> dict[str, Entry]:
        """The last listing (read only): lets a new listing reuse its entries."""
        return self._entries

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
            entry = self.locate(base, fresh=True)
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

    def shown(self, uids) -> tuple[int | None, dict[int, str]]:
        """
        The UIDVALIDITY of the last sync and the base name it showed for
        each of C{uids} it knew (L{UidlistFile.read_locked} checks them).
        """
        if self._uidlist is None:
            return None, {}
        by_uid = self._by_uid
        return self._uidlist.uidvalidity, {u: by_uid[u] for u in uids if u in by_uid}

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

    def read_chunks(self, uid: int, offset: int = 0, length: int | None = None):
        """
        L{read}'s octets C{[offset, offset + length)}, a chunk at a time;
        see L{IMailbox.read_chunks}.  The file is opened at once (a gone
        message raises here), read as the pieces are consumed.
        """
        self._check_open()
        f = self._open(self.base_of(uid))
        return cut_chunks(crlf_chunks(_file_chunks(f)), offset, length)

    def flags_of(self, entry: Entry) -> frozenset[str]:
        """The flags a message file's name carries (keywords by name)."""
        keywords = self.keywords.names(entry.letters) if entry.letters else frozenset()
        return entry.parsed.system_flags() | keywords

    def read_with_flags(self, uid: int) -> tuple[bytes, frozenset[str]]:
        """
        L{read}, and the flags of the very file read, from its name: what
        COPY must give the copy (RFC 3501 section 6.4.7) even when another
        session or program changed them since our last sync.
        """
        self._check_open()
        base = self.base_of(uid)
        for _ in range(3):
            entry = self.locate(base)
            if entry is None:
                break
            try:
                with open(entry.path(self.directory), "rb") as f:
                    data = to_crlf(f.read())
            except FileNotFoundError:
                continue
            return data, self.flags_of(entry)
        raise MessageExpunged(f"message {base} is gone from {self.name!r}")

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
        How many messages of the last sync no session has taken as
        C{\\Recent} yet (STATUS RECENT): those at or above the modseq
        log's floor, or, while it has none, those still in C{new/}.
        """
        snapshot = self.last_snapshot
        floor = self.modseqs.recent_floor(snapshot.uidvalidity) if snapshot else None
        if floor is None:
            return sum(1 for e in self._entries.values() if e.subdir == "new")
        return len(_newest(snapshot.messages, floor))

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


def _file_chunks(f):
    """The content of the open file C{f}, a chunk at a time; closed at the end."""
    with f:
        while chunk := f.read(CHUNK):
            yield chunk
