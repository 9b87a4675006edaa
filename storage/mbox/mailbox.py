# -*- test-case-name: tests.storage.mbox.test_mbox_sync -*-
"""
An open mbox (L{IMailbox}).

L{MboxMailbox.sync} is cheap when nothing changed: one C{stat()} compared
with what the last parse saw (device, inode, size, mtime and ctime in
nanoseconds).  A stat cannot see a same-size change made in the same
timestamp tick as the one we read (whole seconds on some NFS servers and
file systems, a clock tick of a few ms on Linux's local ones): while the
file's last change is less than L{DIRTY_WINDOW} (L{FINE_WINDOW} where the
times have sub-second digits) older than our last look at its content, a
sync re-reads the flag lines of every message (a few hundred bytes each,
as before an incremental parse) instead of trusting the stat.  Opening a
mailbox does not: its first sync, or the write, does.  When the
file only grew and its old last bytes are unchanged, an MDA appended mail:
only the tail, from the old last message on, is parsed again.  Anything
else is a full parse under the read lock chain; UIDs come from the file
(C{X-UID}), so they survive.  A change that was neither an append nor a
write of ours is logged as "Unexpected changes to mailbox".

Writable L{MboxMailbox.sync} calls (not the one when the object is
made) store what only exists in memory: UIDs of new mail
(C{X-UID}) and C{Status: O} on messages no session had yet; the object
that writes C{O} owns the message's C{\\Recent} (RFC 3501 section 2.3.2),
and the write lock makes that happen once.

Reading a message uses the offsets of the last parse after checking that
they still hold the same message; files are read with C{pread}, never
mapped (DESIGN.md rule 3).

A write of ours that a crash interrupted left a journal
(L{storage.mbox.journal}): the next writer, or a reader when the file
changed, repairs the file under the write lock before anything else; a
reader that cannot take the write lock hides a torn append.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Callable

from twisted.logger import Logger
from zope.interface import implementer

from locking import CannotLock, DotlockSettings, LockChain, LockError, LockTimeout, privgroup
from storage import nfs
from storage.afterreply import after_reply
from storage.crlf import CHUNK, crlf_chunks, cut_chunks, header_length
from storage.errors import (
    LockUnavailable, MailboxNotFound, MessageExpunged, StaleRead, StoreError,
)
from storage.interfaces import IMailbox, MailboxSnapshot, MessageRecord
from storage.mbox.headers import client_bytes, read_meta, unquote_chunks
from storage.mbox.journal import JOURNAL_DIR, Journal, pread_all, recover, torn_append
from storage.mbox.reader import RawMessage, split
from storage.mbox.rewrite import TEMP_PREFIX, Changes, Outcome, replace, write_changes
from storage.mbox.save import MboxTransaction
from storage.mbox.state import Entry, MboxState, parse_file, reparse_entry
from storage.modseq import modseq_log
from storage.nfs import fresh_stat

__all__ = ["MboxMailbox", "LockSettings", "EMPTY_STATE"]

_log = Logger(namespace="storage.mbox")

#: Bytes before the old end of file compared to tell an append from a rewrite.
_TAIL = 256


class LockSettings:
    """
    The lock chains of a store (Dovecot's mbox_read_locks/mbox_write_locks).

    @ivar shared: the files are on a shared filesystem (NFS): their
        attributes are cached by the client and may be stale, so every
        decision is made from an C{fstat()} of a descriptor opened just
        before (close-to-open revalidates), and the content is checked
        under the lock; see L{MboxMailbox}.
    """

    def __init__(self, read=("fcntl",), write=("dotlock", "fcntl"),
                 dotlock: DotlockSettings | None = None, timeout: float | None = None,
                 shared: bool = False):
        self.read = tuple(read)
        self.write = tuple(write)
        self.dotlock = dotlock
        self.timeout = timeout
        self.shared = shared

    def chain(self, path: str, write: bool) -> LockChain:
        """A new (unheld) read or write chain for C{path}."""
        return LockChain.from_names(list(self.write if write else self.read), path,
                                    dotlock_settings=self.dotlock, exclusive=write)


# The last state each file was parsed to in this process, by path:
# (identity, state, last bytes).  Sessions share it, so that opening a
# mailbox for one APPEND costs a stat, and a writer stores here what it
# wrote: other sessions of this process then take its state as it is,
# including flag changes made in place that an append could hide.
_CACHE: dict[str, tuple[tuple, MboxState, bytes]] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 512

#: A file whose last change (mtime or ctime) is less than this many
#: seconds older than our last read of its content may have changed again
#: within the same timestamp tick, invisibly to stat (the same rule as the
#: Maildir store's).  The time of the read is the file server's clock
#: where a dotlock was held (its mtime, L{LockChain.server_time}), so that
#: a server clock seconds ahead does not make every sync re-read every
#: flag line, nor one behind hide a change; else our own clock.
DIRTY_WINDOW = 2.0
#: The same where the file's times have sub-second digits: the tick is
#: then the kernel's clock tick (at most 10 ms on Linux), not a second.
FINE_WINDOW = 0.05
# path -> (identity, when its content was last read: the file server's
# clock, from our dotlock's mtime, where we held one; else time.time()).
_VERIFIED: dict[str, tuple[tuple, float]] = {}


def _create_empty(path: str) -> None:
    """
    Create a missing mbox, empty.  In a spool the user may not write (a
    2775 root:mail /var/mail before any mail was delivered), with the
    privileged group if the process has one (L{locking.privgroup}; what
    Dovecot's mail_privileged_group is for besides dotlocks).
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, 0o600))
    except PermissionError:
        if privgroup.available() is None:
            raise
        with privgroup.held():
            os.close(os.open(path, flags, 0o600))


def _identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _cached(path: str) -> tuple[tuple, MboxState, bytes] | None:
    with _CACHE_LOCK:
        return _CACHE.get(path)


def _remember(path: str, ident: tuple, state: MboxState, tail: bytes,
              when: float | None = None) -> None:
    with _CACHE_LOCK:
        _CACHE.pop(path, None)
        _CACHE[path] = (ident, state, tail)
        while len(_CACHE) > _CACHE_MAX:
            del _CACHE[next(iter(_CACHE))]
    _verified(path, ident, when)


def _verified(path: str, ident: tuple, when: float | None = None) -> None:
    """
    Note that the content of C{path} at C{ident} was read just now
    (C{when}, by the file server's clock if known).
    """
    with _CACHE_LOCK:
        _VERIFIED.pop(path, None)
        _VERIFIED[path] = (ident, time.time() if when is None else when)
        while len(_VERIFIED) > _CACHE_MAX:
            del _VERIFIED[next(iter(_VERIFIED))]


def _dirty(path: str, st: os.stat_result) -> bool:
    """Whether a stat equal to C{st} may hide a change (see DIRTY_WINDOW)."""
    with _CACHE_LOCK:
        seen = _VERIFIED.get(path)
    if seen is None or seen[0] != _identity(st):
        return True
    window = FINE_WINDOW if _fine_times(st) else DIRTY_WINDOW
    return seen[1] - max(st.st_mtime, st.st_ctime) <= window


def _fine_times(st: os.stat_result) -> bool:
    """Whether the file system keeps sub-second digits in the file's times."""
    return bool(st.st_mtime_ns % 1_000_000_000 or st.st_ctime_ns % 1_000_000_000)


#: Linux's CLOCK_REALTIME_COARSE (not named by the time module): the clock
#: the kernel stamps file times with.  Elsewhere no settling.
_COARSE_CLOCK = 5 if sys.platform.startswith("linux") else None
#: Its tick (the kernel's jiffy: 1 to 10 ms), in ns.
_TICK_NS = (int(time.clock_getres(_COARSE_CLOCK) * 1e9) or 1_000_000
            if _COARSE_CLOCK is not None else 1_000_000)


class _Held:
    """
    A write lock kept after a write of ours until the kernel's file clock
    has ticked past the file's new times (a few ms at most), so that any
    later change, which must wait for our lock, gets later times and a
    stat tells it apart.  Our state of the file is then conclusive, and
    the next APPEND need not re-read every flag line, as it did while the
    change was recent (L{DIRTY_WINDOW}): that made each APPEND of a burst
    cost the size of the mailbox.

    Only where the file's times come from this kernel's clock (not a
    shared file system, whose server stamps them) and have sub-second
    digits (waiting a whole second per write would cost more than the
    re-read).  The wait runs after the reply (L{MboxMailbox._hold});
    before, inside the write, it held one session or LMTP connection to
    one write per clock tick.
    """

    __slots__ = ("path", "chain", "ident", "last_ns", "taken", "pid", "since")

    def __init__(self, path: str, chain: LockChain, ident: tuple, last_ns: int,
                 since: float) -> None:
        self.path, self.chain, self.ident, self.last_ns = path, chain, ident, last_ns
        #: When the chain was taken (C{time.monotonic}), before any takeover.
        self.since = since
        #: A child forked meanwhile inherits the table, not the lock.
        self.pid = os.getpid()
        #: A write of this process took the lock over (L{_take_held}).
        self.taken = threading.Event()

    def settle(self) -> None:
        """
        The work after the reply: wait for the tick (unless taken over),
        note the state conclusive, let go.
        """
        settled = self._wait(stop_when_taken=True)
        with _HELD_LOCK:
            if _HELD.get(self.path) is not self:
                return  # taken over: the lock is the new holder's
            del _HELD[self.path]
        self._finish(settled)

    def _wait(self, stop_when_taken: bool) -> bool:
        """
        Until the file clock has passed our write: whether it did (not
        gone back).  The coarse clock reads the time of its last tick and
        ticks every L{_TICK_NS}, so the next tick is due at that reading
        plus one tick: one sleep until then (and a little after), not a
        poll every half millisecond, whose wake-ups each took the GIL
        from the threads doing the work.
        """
        give_up = time.monotonic() + FINE_WINDOW
        while (coarse := time.clock_gettime_ns(_COARSE_CLOCK)) <= self.last_ns:
            if time.monotonic() > give_up:
                return False  # the clock went back: keep the re-read
            due = (coarse + _TICK_NS - time.time_ns()) / 1e9
            pause = min(max(due, 0.0) + 0.0002, FINE_WINDOW)
            if stop_when_taken:
                if self.taken.wait(pause):
                    return False
            else:
                time.sleep(pause)
        return True

    def _finish(self, settled: bool) -> None:
        try:
            if settled and _identity(os.stat(self.path)) == self.ident:
                _conclusive(self.path, self.ident)
        except OSError:
            pass
        finally:
            self.chain.release()


#: path -> the write lock held after a write of this process (L{_Held}).
_HELD: dict[str, _Held] = {}
_HELD_LOCK = threading.Lock()
#: Seconds one lock may pass from write to write of this process
#: (L{_take_held}); then it is let go, so that a stream of our writes does
#: not keep a local delivery agent (procmail, mail.local) out for good.
#: Letting go waits for the clock's tick on the writer's path (up to 4 ms
#: at HZ=250): at 50 ms, a stream of LMTP deliveries into one mbox spent
#: 3% of its time in that wait.  Half a second is still well inside any
#: dotlocking agent's patience (procmail sleeps 8 s between tries).
HOLD_MAX = 0.5


def _take_held(path: str) -> tuple[LockChain | None, float]:
    """
    The write lock of C{path} if this process still holds it after a
    write (L{MboxMailbox._hold}): the next write goes on under it.
    Nobody else can have written meanwhile, so the state that write left
    is as conclusive as a settled one.

    @return: the chain and when it was first taken (C{time.monotonic}),
        or C{(None, 0.0)}: not held, held by the process we were forked
        from, or held longer than L{HOLD_MAX} already.
    """
    with _HELD_LOCK:
        held = _HELD.get(path)
        if (held is None or held.pid != os.getpid()
                or time.monotonic() - held.since > HOLD_MAX):
            return None, 0.0  # the caller lets it go first (L{_let_go_held})
        del _HELD[path]
    held.taken.set()
    _conclusive(path, held.ident)
    return held.chain, held.since


def _let_go_held(path: str) -> None:
    """
    Before any other lock of C{path} is taken here (a read, a repair):
    settle and let go a write lock this process still holds after a
    write (L{MboxMailbox._hold}), waiting for the tick as the write used
    to.  Else a read in the same job as the write, whose settling runs
    only after the job, would wait for it forever.
    """
    with _HELD_LOCK:
        held = _HELD.get(path)
        if held is None or held.pid != os.getpid():
            return
        del _HELD[path]
    held.taken.set()  # the write's own settling stops waiting
    held._finish(held._wait(stop_when_taken=False))


def _conclusive(path: str, ident: tuple) -> None:
    """Note that our state of C{path} at C{ident} cannot hide a change (L{_Held})."""
    _verified(path, ident, float("inf"))


def _default_uidvalidity(st: os.stat_result | None) -> int:
    """UIDVALIDITY of a file that stores none yet: the same for every reader."""
    value = int(st.st_mtime) if st is not None else 1
    return min(max(value, 1), 2**32 - 1)


def EMPTY_STATE(uidvalidity: int) -> MboxState:
    """The state of an empty file (or a missing INBOX)."""
    return MboxState(uidvalidity=uidvalidity, last_uid=0, stored_last_uid=None,
                     base_digits=None, base_in=None, keywords=(), pseudo=None,
                     garbage=None, entries=(), size=0, stored_uidvalidity=False)


@implementer(IMailbox)
class MboxMailbox:
    """One open mbox file."""

    def __init__(self, name: str, path: str, locks: LockSettings, readonly: bool = False,
                 fsync: bool = True, sender: str = "MAILER-DAEMON",
                 must_exist: bool = True, modseq_path: str | None = None,
                 journal_dir: str | None = None, in_place: bool = False) -> None:
        if must_exist and not os.path.isfile(path):
            raise MailboxNotFound(f"mailbox {name!r} does not exist")
        self.name = name
        self.path = path
        self.locks = locks
        self.readonly = readonly
        self.fsync = fsync
        self.sender = sender
        #: Recovery journals: in the folder root (the store passes it), else
        #: beside the file.
        self.journal = Journal(journal_dir or os.path.join(os.path.dirname(path), JOURNAL_DIR),
                               name)
        self.in_place = in_place
        self._state: MboxState | None = None
        self._ident: tuple | None = None
        # The identity of a file whose torn tail our state hides.
        self._hiding: tuple | None = None
        self._tail = b""
        self._records: dict[int, MessageRecord] = {}
        self._recent: set[int] = set()
        self._closed = False
        self._fixup_failed: tuple | None = None
        #: While a lock chain with a dotlock is held: the server's clock
        #: at its acquisition (see DIRTY_WINDOW).
        self._read_at: float | None = None
        self._snapshot: MailboxSnapshot | None = None
        #: The modseq log (L{storage.modseq}); None: no MODSEQs.
        self.modseqs = modseq_log(modseq_path, fsync=fsync) if modseq_path else None
        if not readonly:
            _clean_temp(path)
        # No fix-up write here: a mailbox opened only to APPEND or COPY
        # into must not take \Recent from the session that has it selected.
        # Nor a same-tick re-check: the first sync, or the write, does it.
        self._opening = True
        try:
            self._check_open()
            # The records and the snapshot (MODSEQs) wait until someone
            # asks (L{last_snapshot}, L{record}, L{read}): a mailbox opened
            # to APPEND never does, and building them cost the size of the
            # mailbox per APPEND.
            self._unbuilt: MboxState | None = self._read_state()
        finally:
            self._opening = False

    @property
    def uidvalidity(self) -> int:
        """The UIDVALIDITY as of the last sync."""
        assert self._state is not None
        return self._state.uidvalidity

    @property
    def uidvalidity_stored(self) -> bool:
        """
        Whether the file holds its UIDVALIDITY (C{X-IMAPbase}, UW's
        C{X-IMAP}) as of the last sync; if not, L{uidvalidity} is only
        derived from its mtime, and changes with the next write.
        """
        assert self._state is not None
        return self._state.stored_uidvalidity

    # -- loading --------------------------------------------------------------

    def _load(self, fd: int, st: os.stat_result) -> MboxState:
        """
        The state of the file open as C{fd}: from the process cache if a
        session of ours parsed or wrote exactly this file, incrementally if
        it only grew, else by a full parse.
        """
        ident = _identity(st)
        cached = _cached(self.path)
        if cached is not None and cached[0] == ident:
            self._adopt(ident, cached[1], cached[2])
            if self._opening or not _dirty(self.path, st):
                return self._state
            return self._verify(fd, st)
        for base_ident, old, tail in (cached or (None, None, b""),
                                      (self._ident, self._state, self._tail)):
            if (old is not None and old.entries and base_ident is not None
                    and base_ident[:2] == ident[:2] and st.st_size > old.size
                    and os.pread(fd, len(tail), old.size - len(tail)) == tail):
                old = _refresh_headers(fd, old)
                if old is None:
                    break
                start = old.entries[-1].raw.start
                state = parse_file(fd, start, st.st_size, old.uidvalidity, _mtime(st),
                                   previous=old)
                return self._adopt(ident, state, _tail(fd, st.st_size), remember=True)
        state = parse_file(fd, 0, st.st_size, _default_uidvalidity(st), _mtime(st))
        if self._state is not None and self._ident != ident:
            why = "; ".join(state.problems) or "the file was rewritten or changed in place"
            _log.warn("Unexpected changes to mailbox {path}: full resync ({why})",
                      path=self.path, why=why)
        elif state.problems:
            _log.warn("mbox {path}: {problems}", path=self.path,
                      problems="; ".join(state.problems))
        return self._adopt(ident, state, _tail(fd, st.st_size), remember=True)

    def _verify(self, fd: int, st: os.stat_result) -> MboxState:
        """
        Under a lock, with our state at C{st}'s identity: re-read the flag
        lines (and the last bytes) that a same-tick change could have
        altered unseen; a moved message or UID means a full parse.
        """
        state = self._state
        assert state is not None
        fresh = _refresh_headers(fd, state, everything=True) if state.entries else state
        if fresh is None or _tail(fd, st.st_size) != self._tail:
            _log.warn("Unexpected changes to mailbox {path}: full resync (changed within "
                      "one timestamp tick)", path=self.path)
            return self._adopt(_identity(st), _parse_all(fd, st), _tail(fd, st.st_size),
                               remember=True)
        if fresh.stored_last_uid != state.stored_last_uid or any(
                a.flags != b.flags or a.old != b.old
                for a, b in zip(fresh.entries, state.entries)):
            return self._adopt(_identity(st), fresh, self._tail, remember=True)
        _verified(self.path, _identity(st), self._read_at)
        return state

    def _same_bytes(self, fd: int, st: os.stat_result) -> bool:
        """
        On a shared filesystem, under the lock, before a write trusts a
        state whose identity (size, times) still matches: whether the
        bytes say so too, the file's last bytes and the last UID of
        C{X-IMAPbase} (two small reads).  Attributes can be stale or,
        from a server with coarse times, equal across a change; the
        content cannot.  Always true on a local filesystem.
        """
        state = self._state
        if not self.locks.shared or state is None:
            return True
        if _tail(fd, st.st_size) != self._tail:
            return False
        if state.base_digits is not None:
            start, end = state.base_digits
            digits = os.pread(fd, end - start, start)
            if not digits.isdigit() or int(digits) != state.stored_last_uid:
                return False
        return True

    def _adopt(self, ident: tuple, state: MboxState, tail: bytes,
               remember: bool = False) -> MboxState:
        self._state, self._ident, self._tail = state, ident, tail
        if remember:
            _remember(self.path, ident, state, tail, self._read_at)
        return state

    def _stat(self) -> os.stat_result:
        """
        The file's attributes, fresh: on a shared filesystem a C{stat()}
        answers from the client's attribute cache (seconds old: an append
        or rewrite by another node unseen), so open the file and C{fstat()}
        it, which revalidates them (close-to-open consistency, as Dovecot's
        C{mail_nfs_storage} flushes them).
        """
        if not self.locks.shared:
            return os.stat(self.path)
        try:
            return fresh_stat(self.path)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
        # A symlinked mbox (fresh_stat will not follow): open it through the link.
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def _read_state(self) -> MboxState:
        try:
            st = self._stat()
        except FileNotFoundError:
            self._state = EMPTY_STATE(self._state.uidvalidity if self._state else 1)
            self._ident = None
            return self._state
        cached = _cached(self.path)
        if cached is not None and cached[0] == _identity(st):
            # The latest state of this process for exactly this file.
            self._adopt(cached[0], cached[1], cached[2])
        if self._state is not None and _identity(st) == self._ident:
            if self._hiding == self._ident or self._opening or not _dirty(self.path, st):
                return self._state
            return self._with_read_lock(lambda fd: self._verify(fd, os.fstat(fd))
                                        if _identity(os.fstat(fd)) == self._ident
                                        else self._load(fd, os.fstat(fd)))
        repaired = not self.journal.pending() or self._repair()

        def load(fd: int) -> MboxState:
            torn = None if repaired else torn_append(fd, self.journal)
            if torn is not None:
                # Never show a torn append; mail after it waits for a
                # writer to repair the file.
                st = os.fstat(fd)
                self._hiding = _identity(st)
                return self._adopt(_identity(st), parse_file(
                    fd, 0, torn[0], _default_uidvalidity(st), _mtime(st)), b"")
            return self._load(fd, os.fstat(fd))

        return self._with_read_lock(load)

    def _with_read_lock(self, work: Callable[[int], MboxState]) -> MboxState:
        """
        C{work(fd)} under the read lock chain, with the file opened after
        the lock was taken: a descriptor (and the size it shows) from
        before the lock may predate a writer that held it, and over NFS
        only an open revalidates what the client cached.
        """
        _let_go_held(self.path)
        chain = self.locks.chain(self.path, write=False) if self.locks.read else None
        if chain is not None:
            _acquire(chain, self.path, self.locks.timeout)
            self._read_at = chain.server_time
        try:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                fd = None
            except OSError as e:
                raise StoreError(f"cannot open {self.path}: {e.strerror or e}") from e
            if fd is not None:
                try:
                    return work(fd)
                finally:
                    os.close(fd)
        finally:
            self._read_at = None
            if chain is not None:
                chain.release()
        return self._read_state()

    # -- IMailbox -------------------------------------------------------------

    def sync(self) -> MailboxSnapshot:
        """See the module docstring."""
        return self._sync(fixup=True)

    def _sync(self, fixup: bool) -> MailboxSnapshot:
        self._check_open()
        fixup = fixup and not self.readonly
        state = None
        if fixup and self.locks.shared and self._lock_needed():
            # Shared storage: read (or re-check) the file and store UIDs and
            # \Recent in one hold of the write lock, not a read lock and
            # then a write lock (each a dotlock there, which an MDA waits for).
            state = self._fixup()
        if state is None:
            state = self._read_state()
            if fixup and self._fixup_failed != self._ident and _unclaimed(state):
                state = self._fixup() or state
        return self._build(state)

    @property
    def last_snapshot(self) -> MailboxSnapshot:
        """The snapshot of the last sync (or of the open)."""
        self._built()
        assert self._snapshot is not None
        return self._snapshot

    def _built(self) -> None:
        """Build the records and snapshot of the state read at the open, if not yet."""
        if self._unbuilt is not None:
            self._build(self._unbuilt)

    def _build(self, state: MboxState) -> MailboxSnapshot:
        """The records and the snapshot of C{state}, kept as the last sync's."""
        self._unbuilt = None
        view = _records_of(self.path, state)
        self._view = view
        self._records = view.by_uid
        if self._recent:
            self._recent &= view.by_uid.keys()
        recent = frozenset(self._recent)
        if self.readonly:
            # RFC 3501 section 2.3.2 for EXAMINE: what no session took yet
            # (no C{Status: O}) is shown as recent and left for the next
            # writable open, as Dovecot does.
            recent = view.unclaimed
        snapshot = MailboxSnapshot(
            uidvalidity=state.uidvalidity, uidnext=state.uidnext,
            messages=view.records, recent=recent,
            keywords=view.keywords)
        if self.modseqs is not None:
            snapshot = self.modseqs.stamp(snapshot)
        self._snapshot = snapshot
        return snapshot

    def _lock_needed(self) -> bool:
        """
        For a writable sync on shared storage: whether this sync needs the
        file's lock at all (it changed into a version no session of this
        process has read, or may have changed unseen within a timestamp
        tick, or holds mail whose UID or \\Recent is not stored yet), and
        a fix-up was not refused for this very version.
        """
        try:
            st = self._stat()
        except FileNotFoundError:
            return False
        ident = _identity(st)
        if self._fixup_failed == ident:
            return False
        cached = _cached(self.path)
        if cached is not None and cached[0] == ident != self._ident:
            self._adopt(cached[0], cached[1], cached[2])
        if self._state is None or ident != self._ident:
            return True
        return _dirty(self.path, st) or _unclaimed(self._state)

    def _fixup(self) -> MboxState | None:
        """
        Under the write lock, with the state read there: store the UIDs of
        new mail (C{X-UID}) and claim C{\\Recent} (C{Status: O}) of every
        message nobody had yet.

        @return: the state as written, or C{None} if the write failed
            (logged; not tried again until the file changes).
        """
        claimed: set[int] = set()

        def claim_all(fresh: MboxState) -> Changes:
            claimed.update(e.uid for e in fresh.entries if not e.old)
            return Changes(claim=set(claimed))

        try:
            self.write(claim_all)
        except (LockUnavailable, StoreError) as e:
            # Try again only once the file changed: no warning per sync.
            try:
                self._fixup_failed = _identity(self._stat())
            except OSError:
                self._fixup_failed = self._ident
            _log.warn("Cannot store UIDs and \\Recent in {path}: {error}",
                      path=self.path, error=str(e))
            return None
        self._recent |= claimed
        # The write left our state as it wrote it, under the lock: no
        # second look (a change since is the next sync's).
        return self._state if self._ident is not None else None

    def expunged_since(self, modseq: int) -> list[int] | None:
        """See L{storage.interfaces.IMailbox.expunged_since}."""
        if self.modseqs is None:
            return None
        return self.modseqs.expunged_since(modseq, self.uidvalidity)

    def record(self, uid: int) -> MessageRecord:
        """The record of C{uid} as of the last sync."""
        self._built()
        record = self._records.get(uid)
        if record is None:
            raise MessageExpunged(f"no message with UID {uid} in {self.name!r}")
        return record

    def unclaimed(self) -> int:
        """Messages no session has had as C{\\Recent} (STATUS RECENT)."""
        assert self._state is not None
        return sum(1 for e in self._state.entries if not e.old)

    def read_header(self, uid: int) -> bytes:
        """
        The header block; see L{IMailbox.read_header}.  The message sits
        in one file with the others, so reading it all costs one pread.
        """
        data = self.read(uid)
        length = header_length(data)
        return data if length is None else data[:length]

    def read(self, uid: int) -> bytes:
        """The message with CRLF line endings; see L{IMailbox.read}."""
        return self.read_with_flags(uid)[0]

    def read_chunks(self, uid: int, offset: int = 0, length: int | None = None):
        """
        L{read}'s octets C{[offset, offset + length)}, a chunk at a time;
        see L{IMailbox.read_chunks}.  The header is read and checked at
        once (the message must still be where our last sync saw it, with
        its UID: else the whole L{read}, which finds it again); the body
        is read, unquoted (mboxrd) and given CRLFs as it is consumed.
        """
        self._check_open()
        self.record(uid)
        entry = self._view.entries.get(uid)
        fd = None
        if entry is not None:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise MessageExpunged(f"mailbox {self.name!r} is gone") from None
            raw = entry.raw
            head = pread_all(fd, raw.start, raw.body_start - raw.start)
            # The header alone (client_bytes then gives it without a body).
            h_end = raw.header_end - raw.start
            local = dataclasses.replace(raw, start=0, header_start=raw.header_start - raw.start,
                                        header_end=h_end, body_start=h_end, end=h_end,
                                        next=h_end)
            meta = read_meta(head, local)
            after = os.pread(fd, 5, raw.next)
            if (len(head) == raw.body_start - raw.start and head.startswith(raw.from_line)
                    and (meta.uid == uid if entry.stored_uid else meta.uid is None)
                    and (not after or after == b"From ")):
                header = client_bytes(head, local, meta)
                body = raw.body_start > raw.header_end
                chunks = _MessageChunks(fd, header + (b"\r\n" if body else b""),
                                        raw.body_start, raw.end if body else raw.body_start)
                return cut_chunks(chunks, offset, length)
            os.close(fd)
        data = self.read(uid)
        return iter([data[offset:] if length is None else data[offset:offset + length]])

    def read_with_flags(self, uid: int) -> tuple[bytes, frozenset[str]]:
        """
        L{read}, and the flags the message's header holds in the same
        bytes: what COPY must give the copy (RFC 3501 section 6.4.7) even
        when another session or program changed them since our last sync.
        """
        self._check_open()
        self.record(uid)
        entry = self._view.entries.get(uid)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise MessageExpunged(f"mailbox {self.name!r} is gone") from None
        try:
            if entry is not None:
                raw = entry.raw
                length = raw.next - raw.start
                # Five octets more: the old extent holds the message only
                # if the next one (or the end of the file) still follows
                # it.  A rewrite elsewhere can leave our From line at the
                # same offset with the message grown or shrunk around it,
                # and the old extent would then cut it short.
                data = pread_all(fd, raw.start, length + 5)
                tail, data = data[length:], data[:length]
                got = None
                if not tail or tail.startswith(b"From "):
                    got = _message_at(data, raw, uid, entry.stored_uid)
                if got is not None:
                    return got
            # The file was rewritten since our sync: find the UID again.
            st = os.fstat(fd)
            fresh = parse_file(fd, 0, st.st_size, self.uidvalidity, _mtime(st))
            if fresh.uidvalidity == self.uidvalidity:
                for e in fresh.entries:
                    if e.uid == uid:
                        data = pread_all(fd, e.raw.start, e.raw.next - e.raw.start)
                        got = _message_at(data, e.raw, uid, e.stored_uid)
                        if got is not None:
                            return got
        finally:
            os.close(fd)
        raise MessageExpunged(f"message UID {uid} is gone from {self.name!r}")

    def transaction(self) -> MboxTransaction:
        """Begin a write transaction; see L{storage.mbox.save}."""
        self._check_open()
        return MboxTransaction(self)

    def close(self) -> None:
        """Forget the caches; the object is unusable afterwards."""
        self._closed = True
        self._records = {}

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"mailbox {self.name!r} is closed")

    # -- writing --------------------------------------------------------------

    def _recover(self, fd: int) -> None:
        """Under the write lock: repair what a crashed write of ours left."""
        notes = recover(fd, self.journal, self.fsync,
                        lambda old, new: replace(fd, self.path, old, new, self.fsync,
                                                 self.journal, self.in_place))
        if notes:
            _log.warn("Recovered {path} after an interrupted write: {what}",
                      path=self.path, what="; ".join(notes))

    def _repair(self) -> bool:
        """
        A reader found a journal: repair under the write lock if possible.

        @return: whether the file is whole now.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            _let_go_held(self.path)
            chain = self.locks.chain(self.path, write=True)
            try:
                _acquire(chain, self.path, self.locks.timeout)
            except LockUnavailable:
                return False
            try:
                self._recover(fd)
                return True
            except OSError as e:
                _log.warn("Cannot repair {path}: {error}", path=self.path, error=str(e))
                return False
            finally:
                chain.release()
        finally:
            os.close(fd)

    def _after_write(self, fd: int, state: MboxState, outcome: Outcome) -> None:
        """
        Bring our state (and the process cache) to what we just wrote,
        still under the lock, without a full parse unless we rewrote.
        """
        if outcome.rewritten or not state.entries:
            try:
                new_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._ident = None
                return
            try:
                st = os.fstat(new_fd)
                self._adopt(_identity(st), _parse_all(new_fd, st), _tail(new_fd, st.st_size),
                            remember=True)
            finally:
                os.close(new_fd)
            return
        entries = state.entries
        if outcome.patched:
            entries = list(entries)
            patched = set(outcome.patched)
            for i, e in enumerate(entries):
                if e.uid in patched:
                    entries[i] = _patched_entry(fd, e)
        if outcome.cut_from is not None:
            # Written again from there on: parsed again below.
            entries = entries[:outcome.cut_from]
        changed: dict = {"entries": tuple(entries)}
        if outcome.stored_last_uid is not None:
            changed["stored_last_uid"] = outcome.stored_last_uid
        if outcome.keywords is not None:
            changed["keywords"] = outcome.keywords
        new = dataclasses.replace(state, **changed)
        st = os.fstat(fd)
        if outcome.grew:
            # Only the appended tail (and our last message before it) is
            # parsed, a window at a time: an APPEND of 100 MB costs a few
            # MB here, not a copy of what it wrote.
            start = new.entries[-1].raw.start
            new = parse_file(fd, start, st.st_size, new.uidvalidity, _mtime(st), previous=new)
        self._adopt(_identity(st), new, _tail(fd, st.st_size), remember=True)

    def _locked_stat(self, fd: int) -> os.stat_result:
        """
        The attributes of the file open (under the write lock) as C{fd}.
        On a shared filesystem the name is opened once more first
        (L{fresh_stat}: close-to-open revalidation), so that an old size
        the client put back in its cache after our own open is dropped
        again: a write planned on a size short of the file's end appends
        over another node's mail, or renames a copy without it over the
        file (issue 20).
        """
        if self.locks.shared:
            try:
                fresh_stat(self.path)
            except OSError:
                pass
        return os.fstat(fd)

    def _state_to_end(self, fd: int, st: os.stat_result) -> MboxState:
        """
        Under the write lock: the state of the file, checked to reach its
        end.  The size C{fstat} gives is the client's word; a byte past it
        means the size was stale, and the file is looked at again (flushed,
        L{_locked_stat}), a bounded number of times.

        @raises StaleRead: the size stayed short of the file's end; nothing
            was written.
        """
        for attempt in range(nfs.STALE_READS):
            if attempt:
                nfs.stale_pause(attempt)
                st = self._locked_stat(fd)
            if st.st_size == 0:
                prior = (self._state.uidvalidity
                         if self._state and self._state.stored_uidvalidity else None)
                state = EMPTY_STATE(prior or _default_uidvalidity(st))
                self._adopt(_identity(st), state, b"")
            elif self._state is not None and _identity(st) == self._ident:
                state = (self._verify(fd, st)
                         if _dirty(self.path, st) or not self._same_bytes(fd, st)
                         else self._state)
            else:
                state = self._load(fd, st)
            # Read, not stat: nothing may follow the bytes the state covers.
            if not os.pread(fd, 1, st.st_size):
                return state
            # Forget the short state: it must not stand for this file.
            self._ident = None
        raise StaleRead(
            f"{self.path}: the file goes on past the {st.st_size} bytes its attributes "
            f"say ({nfs.STALE_READS} looks under the lock, caches flushed); nothing was "
            f"changed, try again"
        )

    def _hold(self, fd: int, chain: LockChain, since: float) -> bool:
        """
        After our write, under its lock: keep the lock until the file's
        clock has ticked past our write (L{_Held}), but after the reply
        (L{storage.afterreply}), so the caller does not wait for the tick.
        A write of this process that comes meanwhile takes the lock over
        (L{_take_held}).

        @return: whether C{chain} is now held for later (else the caller
            releases it, the file needing no settling).
        """
        if self._ident is None or self.locks.shared or _COARSE_CLOCK is None:
            return False
        st = os.fstat(fd)
        if not _fine_times(st) or _identity(st) != self._ident:
            return False
        held = _Held(self.path, chain, self._ident, max(st.st_mtime_ns, st.st_ctime_ns),
                     since)
        with _HELD_LOCK:
            _HELD[self.path] = held
        after_reply(held.settle)
        return True

    def write(self, make: Callable[[MboxState], Changes]) -> tuple[Outcome, int]:
        """
        Take the write lock chain, bring the state up to date with the file
        and apply C{make(state)}.  The lock is held only for this call.

        @return: what was written, and the UIDVALIDITY.
        """
        if not os.path.exists(self.path):
            # The kernel locks of the chain need the file: create it (empty).
            try:
                _create_empty(self.path)
            except OSError as e:
                raise StoreError(f"cannot create {self.path}: {e.strerror or e}") from e
        chain, since = _take_held(self.path)
        if chain is None:
            # Ours but held past HOLD_MAX: settled and let go now, so that
            # another writer gets its turn (and a job that writes again
            # after that does not wait for its own lock).
            _let_go_held(self.path)
            chain = self.locks.chain(self.path, write=True)
            _acquire(chain, self.path, self.locks.timeout)
            since = time.monotonic()
        self._read_at = chain.server_time
        # Opened only now, under the lock: never a descriptor or a size from
        # before it (another node may have written while we waited, and over
        # NFS the open is what revalidates the size; an append at a stale
        # size overwrites the mail appended meanwhile).
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            self._read_at = None
            chain.release()
            raise StoreError(f"cannot open {self.path} for writing: {e.strerror or e}") from e
        try:
            try:
                if self.journal.pending():
                    self._recover(fd)
                st = self._locked_stat(fd)
                try:
                    current = os.stat(self.path)
                except FileNotFoundError:
                    current = None
                if current is None or _identity(current)[:2] != _identity(st)[:2]:
                    # Replaced (renamed over) right after our open: start again.
                    chain.release()
                    chain = None
                    return self.write(make)
                state = self._state_to_end(fd, st)
                outcome = write_changes(fd, self.path, state, make(state), fsync=self.fsync,
                                        journal=self.journal, in_place=self.in_place)
                self._after_write(fd, state, outcome)
                if self._hold(fd, chain, since):
                    chain = None  # released after the reply
                return outcome, state.uidvalidity
            finally:
                self._read_at = None
                if chain is not None:
                    chain.release()
        finally:
            os.close(fd)


#: A rewrite's temporary file untouched this long was left by a crash.
TEMP_MAX_AGE = 3600


#: Seconds between two looks for a path's old temporary files: each look
#: lists the whole directory, which in a /var/mail spool of 10,000 users
#: cost every APPEND and delivery as much as the write itself.  A file
#: must be L{TEMP_MAX_AGE} old to go, so looking less often only lets it
#: go up to this much later.
CLEAN_EVERY = 300.0
#: path -> when (C{time.monotonic}) its directory was last looked at.
_CLEANED: dict[str, float] = {}
_CLEANED_MAX = 4096


def _clean_temp(path: str) -> None:
    """Remove temporary files of rewrites of C{path} that crashed long ago."""
    now = time.monotonic()
    with _CACHE_LOCK:
        last = _CLEANED.get(path)
        if last is not None and now - last < CLEAN_EVERY:
            return
        _CLEANED.pop(path, None)
        _CLEANED[path] = now
        while len(_CLEANED) > _CLEANED_MAX:
            del _CLEANED[next(iter(_CLEANED))]
    directory = os.path.dirname(path) or "."
    prefix = f"{TEMP_PREFIX}{os.path.basename(path)}."
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        temp = os.path.join(directory, name)
        try:
            # Judged against a fresh file's mtime (the file server's clock),
            # never against our own clock.
            if os.stat(path).st_mtime - os.stat(temp).st_mtime > TEMP_MAX_AGE:
                os.unlink(temp)
        except OSError:
            continue


@dataclasses.dataclass(frozen=True)
class _View:
    """What sessions derive from one state, built once per state."""

    state: MboxState
    records: tuple[MessageRecord, ...]
    by_uid: dict[int, MessageRecord]
    entries: dict[int, Entry]
    keywords: tuple[str, ...]
    #: UIDs without C{Status: O}: no session took them as \Recent yet.
    unclaimed: frozenset[int]


_RECORDS: dict[str, _View] = {}


def _records_of(path: str, state: MboxState):
    """
    The records of C{state} in UID order and by UID, built once per state
    and shared by the sessions of this process (a sync stays O(1)).
    """
    with _CACHE_LOCK:
        cached = _RECORDS.get(path)
    if cached is not None and cached.state is state:
        return cached
    records = tuple(MessageRecord(e.uid, e.flags, e.internaldate, e.size, str(e.raw.start))
                    for e in sorted(state.entries, key=lambda e: e.uid))
    view = _View(state, records, {r.uid: r for r in records},
                 {e.uid: e for e in state.entries}, _all_keywords(state),
                 frozenset(e.uid for e in state.entries if not e.old))
    with _CACHE_LOCK:
        _RECORDS.pop(path, None)
        _RECORDS[path] = view
        while len(_RECORDS) > _CACHE_MAX:
            del _RECORDS[next(iter(_RECORDS))]
    return view


def _all_keywords(state: MboxState) -> tuple[str, ...]:
    """The keywords X-IMAPbase lists, then any others the messages use."""
    known = list(state.keywords)
    seen = set(known)
    for e in state.entries:
        for f in sorted(e.flags):
            if not f.startswith("\\") and f not in seen:
                seen.add(f)
                known.append(f)
    return tuple(known)


def _unclaimed(state: MboxState) -> bool:
    """Whether a message of C{state} has no stored UID or no C{Status: O} yet."""
    return any(not e.old or not e.stored_uid for e in state.entries)


def _refresh_headers(fd: int, old: MboxState, everything: bool = False) -> MboxState | None:
    """
    Before an incremental parse: re-read what another process may have
    changed in place, without moving anything (flag blocks, or whole
    headers where the flag fields are not contiguous, and the last UID of
    X-IMAPbase), so that an append cannot hide a flag change.  Much less
    than a parse: a few hundred bytes per message.  The last message is
    left to the parse unless C{everything}.

    @return: the refreshed state, or C{None} if a UID changed (then only
        a full parse will do).
    """
    entries = list(old.entries)
    todo = entries if everything else entries[:-1]
    spans = _Spans(fd, [e.block if e.block else (e.raw.header_start, e.raw.header_end)
                        for e in todo])
    for i, e in enumerate(todo):
        data = spans.read(i)
        has_fields, uid_now, flags, is_old = _block_meta(data)
        if e.block is not None or has_fields:
            if (e.stored_uid and uid_now != e.uid) or (not e.stored_uid and uid_now is not None):
                return None
            if flags == e.flags and is_old == e.old:
                continue
        elif not e.flags and not e.old and not e.stored_uid:
            continue  # still no metadata field at all (fresh mail), as parsed
        data = pread_all(fd, e.raw.start, e.raw.next - e.raw.start)
        if not data.startswith(e.raw.from_line):
            return None
        entries[i] = reparse_entry(data, e)
    state = dataclasses.replace(old, entries=tuple(entries))
    if old.base_digits is not None:
        start, end = old.base_digits
        digits = os.pread(fd, end - start, start)
        if not digits.isdigit():
            return None
        stored = int(digits)
        state = dataclasses.replace(state, stored_last_uid=stored,
                                    last_uid=max(state.last_uid, stored))
    return state


#: What L{read_meta} said of flag blocks (or headers) read before: block
#: bytes -> (any metadata field, X-UID, flags, Status O).  read_meta is a
#: function of the bytes alone, so an unchanged block needs no new parse.
#: After every write the file is within DIRTY_WINDOW of its last read, so
#: the next write re-checks every message's flags (L{MboxMailbox._verify});
#: without this, that check parsed 10,000 headers for each LMTP delivery
#: into a 10,000-message mbox.  Bounded by L{_BLOCK_META_BYTES} of keys
#: (emptied when full); shared by the storage threads (dict operations are
#: atomic; a lost entry only costs a parse).
_BLOCK_META: dict[bytes, tuple] = {}
_BLOCK_META_BYTES = 16 << 20
_block_meta_size = 0


def _block_meta(data: bytes) -> tuple:
    """L{read_meta} of one flag block, as L{_refresh_headers} compares it."""
    global _block_meta_size
    known = _BLOCK_META.get(data)
    if known is None:
        meta = read_meta(data, RawMessage(0, 0, len(data), len(data), len(data), len(data),
                                          b"", False))
        known = (bool(meta.fields), meta.uid, meta.flags, meta.old)
        if _block_meta_size + len(data) > _BLOCK_META_BYTES:
            _BLOCK_META.clear()
            _block_meta_size = 0
        _BLOCK_META[data] = known
        _block_meta_size += len(data)
    return known


class _Spans:
    """
    Small spans of a file, read in few C{pread}s: neighbours less than
    L{_SPAN_GROUP} bytes apart share one read (a round trip each over NFS
    made re-checking the flag lines of every message cost one per message).
    """

    def __init__(self, fd: int, spans: list[tuple[int, int]]) -> None:
        self.fd, self.spans = fd, spans
        self.base, self.data, self.upto = 0, b"", 0

    def read(self, i: int) -> bytes:
        start, end = self.spans[i]
        if i >= self.upto:
            j = i + 1
            while j < len(self.spans) and self.spans[j][1] - start <= _SPAN_GROUP:
                j += 1
            last = max(e for _, e in self.spans[i:j])
            self.base, self.data, self.upto = start, pread_all(self.fd, start, last - start), j
        return self.data[start - self.base:end - self.base]


#: Bytes one read of L{_Spans} may cover.
_SPAN_GROUP = 1 << 16


def _patched_entry(fd: int, e: Entry) -> Entry:
    """
    C{e} after we overwrote its flag block with the same length: only the
    block is read again (the message's size and other fields are as they
    were), not the whole message.
    """
    assert e.block is not None
    start, end = e.block
    data = os.pread(fd, end - start, start)
    meta = read_meta(data, RawMessage(0, 0, len(data), len(data), len(data), len(data),
                                      b"", False))
    if meta.uid != e.uid:
        return reparse_entry(pread_all(fd, e.raw.start, e.raw.next - e.raw.start), e)
    return dataclasses.replace(e, flags=meta.flags, old=meta.old, stored_uid=True)


class _MessageChunks:
    """
    C{header} (already as the client sees it), then the body C{[start,
    end)} of the file open as C{fd} as the client sees it (mboxrd
    unquoted, CRLF), read a chunk at a time.  C{fd} is closed once all is
    read, or when the object goes, read or not.
    """

    def __init__(self, fd: int, header: bytes, start: int, end: int) -> None:
        self._fd, self._header, self._span = fd, header, (start, end)

    def __iter__(self):
        try:
            yield self._header
            yield from crlf_chunks(unquote_chunks(_body_chunks(self._fd, *self._span)))
        finally:
            self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    __del__ = close


def _body_chunks(fd: int, start: int, end: int):
    while start < end:
        chunk = os.pread(fd, min(CHUNK, end - start), start)
        if not chunk:
            raise MessageExpunged("the message was cut short while read")
        start += len(chunk)
        yield chunk


def _parse_all(fd: int, st: os.stat_result) -> MboxState:
    """A full parse of the file open as C{fd} (a window at a time)."""
    return parse_file(fd, 0, st.st_size, _default_uidvalidity(st), _mtime(st))


def _tail(fd: int, size: int) -> bytes:
    n = min(_TAIL, size)
    return os.pread(fd, n, size - n)


def _acquire(chain: LockChain, path: str, timeout: float | None) -> None:
    try:
        chain.acquire(timeout)
    except LockTimeout as e:
        raise LockUnavailable(f"{path} stays locked: {e}") from e
    except CannotLock as e:
        raise LockUnavailable(f"cannot lock {path}: {e}") from e
    except LockError as e:
        raise LockUnavailable(f"cannot lock {path}: {e}") from e


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, timezone.utc)


def _message_at(data: bytes, raw: RawMessage, uid: int,
                stored: bool) -> tuple[bytes, frozenset[str]] | None:
    """
    The client bytes and the flags of the message that should start
    C{data} (read at the offsets of the last parse), or C{None} if it is
    not there any more.
    """
    if not data.startswith(raw.from_line):
        return None
    parts = split(data)
    if not parts.messages or parts.garbage is not None:
        return None
    msg = parts.messages[0]
    meta = read_meta(data, msg)
    if stored and meta.uid != uid:
        return None
    if not stored and meta.uid is not None:
        return None
    return client_bytes(data, msg, meta), meta.flags
