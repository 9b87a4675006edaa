# -*- test-case-name: tests.storage.test_modseq -*-
"""
MODSEQs (RFC 7162) kept in the shared mail store: the per-mailbox modseq
log.

The issue demands that MODSEQs live in the shared store (or survive an
index rebuild) and never go backwards, for Maildir and mbox alike, and
whichever party changed the mail: this server on any node, mutt, an MDA.
Neither store format has room for a MODSEQ per message (Maildir keeps
flags in file names, mbox in Status/X-Status/X-Keywords headers), so each
mailbox gets a small append-only text file beside its mail (the store
decides where, see L{storage.maildir.mailbox} and L{storage.mbox.store}):

    IMAPD-MODSEQ 1 V<uidvalidity> H<highest> E<floor> [R<first recent>]
    <uid> <modseq> F <flag> <flag> ...
    <uid> <modseq> X
    <first recent> 0 R

A C{F} line records the flags a message had when it got that MODSEQ; an
C{X} line is a tombstone (the message was expunged at that MODSEQ).  The
last line of a UID wins.  C{R} (a header field, then lines that raise it)
is the first UID no session has taken as C{\\Recent} (RFC 3501 section
2.3.2), which a store may keep here (L{ModseqLog.claim_recent}; the
Maildir store does, mbox keeps C{Status: O} in the messages instead).
Older readers skip C{R}.  A line without its newline is a write torn by a
crash: it is ignored, and cut off before the next append.

How changes get their MODSEQ: every L{ModseqLog.stamp} of a fresh
snapshot compares each message's flags with the flags its last line
recorded.  A message that differs (changed by anyone, anywhere), a new
message and a message gone from the snapshot get the next MODSEQs, one per
message, appended under the log's own NFS-safe dotlock after re-reading the
log under that lock.  So two processes (or nodes) that notice the same
change agree on one MODSEQ for it, and no two changes share one.  A change
that is undone before anybody syncs (A -> B -> A) gets no MODSEQ; nobody
can have seen B, and A is what clients already have.

Never backwards: the header's C{H} keeps the highest MODSEQ ever handed out
(compaction drops lines, never that).  A log that has to be started from
nothing (first use, a deleted or unreadable file) starts at the current
time in microseconds, above any MODSEQ a lost log can have given out
unless it handed out more than one per microsecond.  A new UIDVALIDITY
restarts the lines but keeps C{H}.

Compaction: when the file holds more than twice the lines it needs (plus
slack) it is rewritten by temp file and rename with the last line of each
UID, keeping the newest tombstones (as many as there are live messages,
at least L{_KEEP_TOMBSTONES}); C{E} then says "tombstones of MODSEQ <= E
were dropped", and L{ModseqLog.expunged_since} answers for such a MODSEQ
with every UID below UIDNEXT that is not in the mailbox, which RFC 7162
section 3.2.5.1 allows (reporting more UIDs than were expunged is
harmless).  Keeping recent tombstones spares clients that synced lately
that long answer.

The per-node index plays no part: delete it and nothing here changes.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator

from twisted.logger import Logger

from storage.errors import LockUnavailable, StoreError
from storage.interfaces import MailboxSnapshot, MessageRecord

__all__ = ["ModseqLog", "modseq_log", "MAGIC"]

_log = Logger(namespace="storage.modseq")

MAGIC = b"IMAPD-MODSEQ"
_VERSION = b"1"

#: Rewrite the log once it has this many lines more than twice the live ones.
_SLACK = 64

#: Tombstones a compaction keeps at least (see the module docstring).
_KEEP_TOMBSTONES = 1024

#: Largest mod-sequence-value (RFC 7162 section 7: unsigned 63-bit).
_MODSEQ_MAX = 2**63 - 1


def _seed() -> int:
    """The first MODSEQ of a log that starts from nothing (see module doc)."""
    return max(1, time.time_ns() // 1000)


@lru_cache(maxsize=4096)
def _flag_key(flags: frozenset) -> bytes:
    """
    One canonical byte string per flag set, as written in F lines.  Flags
    are IMAP atoms, but a store may hand us anything (an odd X-Keywords
    value): whitespace and C{%} are escaped so that a line stays a line.
    """
    out = []
    for flag in sorted(flags):
        raw = flag.encode("utf-8", "surrogateescape")
        if any(c <= 0x20 or c == 0x25 or c == 0x7F for c in raw):
            raw = b"".join(b"%%%02X" % c if c <= 0x20 or c in (0x25, 0x7F) else bytes([c])
                           for c in raw)
        out.append(raw)
    return b" ".join(out)


@dataclass
class _State:
    """The parsed log: what L{ModseqLog} knows as of C{ident}/C{offset}."""

    ident: tuple = ()
    offset: int = 0  # bytes parsed (up to the last complete line)
    uidvalidity: int = 0
    highest: int = 0
    floor: int = 0
    live: dict = field(default_factory=dict)  # uid -> (modseq, flag key)
    dead: dict = field(default_factory=dict)  # uid -> modseq
    lines: int = 0
    valid: bool = False  # a header was read
    version: int = 0  # bumped whenever the content changes
    #: The first UID no session has claimed as \Recent (R lines), or
    #: None while the log has no R line yet (see L{ModseqLog.claim_recent}).
    recent: int | None = None


def _identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino)


def _signature(st: os.stat_result | None) -> tuple | None:
    return None if st is None else (st.st_dev, st.st_ino, st.st_size)


def _parse_header(line: bytes) -> tuple[int, int, int, int | None] | None:
    parts = line.split()
    if len(parts) < 2 or parts[0] != MAGIC or parts[1] != _VERSION:
        return None
    values = {"V": 0, "H": 0, "E": 0, "R": None}
    for part in parts[2:]:
        key = part[:1].decode("ascii", "replace")
        if key in values and part[1:].isdigit():
            values[key] = min(int(part[1:]), _MODSEQ_MAX)
    return values["V"], values["H"], values["E"], values["R"]


def _parse_lines(state: _State, data: bytes) -> None:
    """Apply the complete lines of C{data} to C{state}."""
    # Locals rather than attributes: a cold SELECT parses 10,000 lines.
    live, dead = state.live, state.dead
    highest, lines = state.highest, 0
    for line in data.split(b"\n"):
        parts = line.split(b" ", 3)
        if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit():
            continue  # garbage (or a torn line somebody completed): skip
        uid, modseq = int(parts[0]), min(int(parts[1]), _MODSEQ_MAX)
        lines += 1
        if modseq > highest:
            highest = modseq
        kind = parts[2]
        if kind == b"F":
            live[uid] = (modseq, parts[3] if len(parts) > 3 else b"")
            if dead:
                dead.pop(uid, None)
        elif kind == b"X":
            live.pop(uid, None)
            dead[uid] = modseq
        elif kind == b"R":
            # "<first unclaimed uid> 0 R": the \Recent floor only grows.
            if state.recent is None or uid > state.recent:
                state.recent = uid
    state.highest = highest
    state.lines += lines


class ModseqLog:
    """
    The modseq log of one mailbox.  Thread-safe; one object per path per
    process (L{modseq_log}), shared by every session of that mailbox.

    @ivar path: the log file.
    """

    def __init__(self, path: str, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self._lock = threading.RLock()
        # Per thread: inside one_fsync(), appends wait for its single fsync.
        self._batch = threading.local()
        self._state = _State()
        self._last: tuple | None = None  # (input snapshot, state version, output)
        # uid -> the record last stamped, and uid -> that record with its
        # MODSEQ (two dicts rather than one of pairs: no object per message
        # for the garbage collector to walk).
        self._inputs: dict[int, MessageRecord] = {}
        self._outputs: dict[int, MessageRecord] = {}

    # -- reading ------------------------------------------------------------

    def _refresh(self, locked: bool = False) -> _State:
        """
        Bring the parsed state up to date with the file: nothing to do if
        it is unchanged (one stat), only the new lines if it grew, else a
        full parse.

        @param locked: the caller holds the log's lock and is about to
            hand out MODSEQs: skip the stat shortcut and open the file,
            which over NFS revalidates its attributes (close-to-open
            consistency), so lines another node appended are seen.
        """
        state = self._state
        if not locked and (state.valid or state.ident):
            try:
                st = os.stat(self.path)
            except OSError:
                st = None
            if (st is not None and _identity(st) == state.ident
                    and st.st_size == state.offset):
                return state
            if state.ident == ("memory", _signature(st)):
                # MODSEQs kept in memory only (see _record_in_memory) and
                # nobody else has written the file since: keep them.
                return state
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if state.valid or state.ident:
                # The log was removed: keep what we knew (never backwards).
                self._state = _State(highest=state.highest, version=state.version + 1)
            return self._state
        except OSError as e:
            raise StoreError(f"cannot read {self.path}: {e.strerror or e}") from e
        try:
            st = os.fstat(fd)
            if state.valid and _identity(st) == state.ident and st.st_size == state.offset:
                return state
            if state.valid and _identity(st) == state.ident and st.st_size > state.offset:
                data = os.pread(fd, st.st_size - state.offset, state.offset)
                end = data.rfind(b"\n") + 1
                if end:
                    _parse_lines(state, data[:end])
                    state.offset += end
                    state.version += 1
                return state
            data = b""
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        fresh = _State(ident=_identity(st), version=state.version + 1,
                       highest=state.highest)
        first = data.find(b"\n")
        header = _parse_header(data[:first]) if first >= 0 else None
        if header is not None:
            fresh.uidvalidity, highest, fresh.floor, fresh.recent = header
            fresh.highest = max(fresh.highest, highest, fresh.floor)
            end = data.rfind(b"\n") + 1
            _parse_lines(fresh, data[first + 1:end])
            fresh.offset = end
            fresh.valid = True
        self._state = fresh
        return fresh

    def current(self) -> dict[int, int]:
        """
        UID -> MODSEQ as the log has them now, for a store building the
        records of a snapshot it will L{stamp}: a record built with its
        MODSEQ is not copied again there (a cold 10,000-message SELECT).
        The stamp still checks every record.  Blocking.
        """
        with self._lock:
            state = self._refresh()
            return {uid: known[0] for uid, known in state.live.items()}

    def judge(self, uidvalidity: int, uids) -> "Callable[[int, frozenset[str]], int]":
        """
        For RFC 7162 UNCHANGEDSINCE checked by a store under its own lock:
        a function giving the MODSEQ of message C{uid} whose stored flags
        are C{flags} now.  That is the MODSEQ of the log's last line for
        it when the line records these very flags; otherwise the flags
        changed since the log last saw them (another session, process or
        program wrote them and nobody stamped it yet), and the change
        will get a MODSEQ above every one handed out, so the answer is
        the highest plus one.  A message the log does not know is judged
        the same way.  Blocking; the log is re-read by opening it (not by
        stat), so that over NFS lines another node appended are seen.
        """
        with self._lock:
            memory = self._state.ident[:1] == ("memory",)
            state = self._refresh(locked=not memory)
            above = min(state.highest + 1, _MODSEQ_MAX)
            if state.valid and state.uidvalidity == uidvalidity:
                live = state.live
                known = {uid: live[uid] for uid in uids if uid in live}
            else:
                known = {}

        def modseq(uid: int, flags: frozenset[str]) -> int:
            line = known.get(uid)
            if line is not None and line[1] == _flag_key(frozenset(flags)):
                return line[0]
            return above

        return modseq

    def uids_given(self) -> tuple[int, int] | None:
        """
        C{(uidvalidity, highest UID)} the log names (a live message or a
        tombstone), or C{None} without a readable log: a witness, kept in
        the shared store, for repairing a store whose own UIDVALIDITY or
        last UID became unreadable (C{imapd-admin force-resync}).  The
        tombstones remember UIDs expunged from the end of the mailbox,
        which the messages left no longer show.  Blocking.
        """
        with self._lock:
            state = self._refresh(locked=True)
            if not state.valid or not state.uidvalidity:
                return None
            return state.uidvalidity, max(max(state.live, default=0),
                                          max(state.dead, default=0))

    # -- \Recent ---------------------------------------------------------------

    def recent_floor(self, uidvalidity: int) -> int | None:
        """
        The first UID no session has claimed as C{\\Recent} yet, as far as
        the log says (one stat); C{None} if it says nothing for this
        UIDVALIDITY.  Messages from there on are recent to a read-only
        session (EXAMINE) and count in STATUS RECENT.  Blocking.
        """
        with self._lock:
            state = self._refresh()
            if state.valid and state.uidvalidity == uidvalidity:
                return state.recent
            return None

    def claim_recent(self, uidvalidity: int, uids: list[int],
                     fallback: "Callable[[], list[int]]") -> list[int]:
        """
        RFC 3501 section 2.3.2: take C{\\Recent} for the messages of
        C{uids} (ascending, a writable session's newest ones) that no
        session took yet, and return them.  The log keeps the first UID
        not yet claimed (Dovecot keeps the same in its index header); it
        is compared and raised under the log's dotlock, so across
        sessions, processes and nodes each message is recent to exactly
        one session.  UIDs only grow, so one number says it all.

        A log with no floor yet (made before this rule, or by a store
        that kept it elsewhere) claims what C{fallback()} says is new
        (a Maildir's files its caller moved out of C{new/}) and records
        the floor above C{uids}, so that no old message becomes recent
        again.  Blocking.
        """
        from storage.maildir.files import locked

        with self._lock:
            state = self._refresh()
            if (state.valid and state.uidvalidity == uidvalidity and state.recent is not None
                    and (not uids or uids[-1] < state.recent)):
                return []
            try:
                with locked(self.path):
                    state = self._refresh(locked=True)
                    if not state.valid or state.uidvalidity != uidvalidity:
                        if uids:
                            return fallback()
                        # An empty mailbox nobody stamped yet: start its log
                        # now, so that its first messages have a floor.
                        self._restart(state, MailboxSnapshot(uidvalidity, 1, ()))
                        self._refresh(locked=True)
                        return []
                    if state.recent is None:
                        claimed = fallback()
                    else:
                        claimed = [u for u in uids if u >= state.recent]
                    top = max([uids[-1] + 1 if uids else 1] + [u + 1 for u in claimed])
                    if state.recent is not None and top <= state.recent:
                        return claimed
                    line = b"%d 0 R\n" % top
                    self._append(state, line)
                    state.recent = top
                    state.offset += len(line)
                    state.lines += 1
                    return claimed
            except (LockUnavailable, StoreError) as e:
                # A log we cannot write (a shared archive): \Recent is
                # then this process's guess, as it was before the floor.
                _log.warn("Cannot record \\Recent in {path}: {error}",
                          path=self.path, error=str(e))
                return fallback()

    def start_recent(self, uidvalidity: int, first: int) -> None:
        """
        Before a store adds messages from UID C{first} on (APPEND, COPY,
        MOVE): give a log without a C{\\Recent} floor one, so that those
        messages are unclaimed whatever the store's own sign says (a
        Maildir message saved with flags goes straight to cur/).  A floor
        already there stays.  Blocking; a log that cannot be written is
        left alone (L{claim_recent} then falls back).
        """
        from storage.maildir.files import locked

        with self._lock:
            state = self._refresh()
            if state.valid and state.uidvalidity == uidvalidity and state.recent is not None:
                return
            try:
                with locked(self.path):
                    state = self._refresh(locked=True)
                    if not state.valid or state.uidvalidity != uidvalidity:
                        # No log yet: one with no lines; the next stamp
                        # gives the messages their MODSEQs.
                        base = max(state.highest, _seed())
                        self._write_whole((uidvalidity, base, base), [], recent=first)
                    elif state.recent is None:
                        line = b"%d 0 R\n" % first
                        self._append(state, line)
                        state.recent = first
                        state.offset += len(line)
                        state.lines += 1
                    self._refresh(locked=True)
            except (LockUnavailable, StoreError) as e:
                _log.warn("Cannot record \\Recent in {path}: {error}",
                          path=self.path, error=str(e))

    @property
    def highest(self) -> int:
        """The highest MODSEQ handed out (as of the last stamp)."""
        return max(self._state.highest, 1)

    # -- stamping -------------------------------------------------------------

    def _needs(self, state: _State, snapshot: MailboxSnapshot) -> tuple[list, list]:
        """The records whose flags the log does not have, and the gone UIDs."""
        if not state.valid or state.uidvalidity != snapshot.uidvalidity:
            return list(snapshot.messages), []
        live = state.live
        inputs, outputs = self._inputs, self._outputs
        changed = []
        unknown = 0
        for record in snapshot.messages:
            uid = record.uid
            known = live.get(uid)
            if known is None:
                changed.append(record)
                unknown += 1
                continue
            if inputs.get(uid) is record and outputs[uid].modseq == known[0]:
                continue  # this very record was stamped with this line
            if known[1] != _flag_key(record.flags):
                changed.append(record)
        gone: list[int] = []
        if len(live) > len(snapshot.messages) - unknown:
            # The log has live UIDs the snapshot lacks: expunged.
            present = {r.uid for r in snapshot.messages}
            gone = sorted(u for u in live if u not in present)
        return changed, gone

    def stamp(self, snapshot: MailboxSnapshot) -> MailboxSnapshot:
        """
        The snapshot with every record's C{modseq} and the mailbox's
        C{highestmodseq} set, first giving new MODSEQs to whatever changed
        since the log last saw it (see the module docstring).  Blocking.

        If the log cannot be written (a read-only mailbox directory, a full
        disk), the changes get MODSEQs above the highest in memory only,
        and a warning is logged: a session still sees increasing MODSEQs, but they are
        not shared with other processes.
        """
        with self._lock:
            state = self._refresh()
            last = self._last
            if last is not None and last[1] == state.version:
                if last[0] is snapshot:
                    return last[2]
                if last[0].messages is snapshot.messages and (
                        last[0].uidvalidity == snapshot.uidvalidity):
                    # Same records (an mbox sync of an unchanged file makes
                    # a new snapshot around the very same tuple).
                    out = dataclasses.replace(snapshot, messages=last[2].messages,
                                              highestmodseq=last[2].highestmodseq)
                    self._last = (snapshot, state.version, out)
                    return out
            changed, gone = self._needs(state, snapshot)
            if changed or gone:
                try:
                    state = self._record(snapshot, (state.version, changed, gone))
                except (LockUnavailable, StoreError) as e:
                    # Mail stays readable without a writable log (a shared
                    # archive, a full disk): MODSEQs are kept in memory.
                    _log.warn("Cannot record MODSEQs in {path}: {error}",
                              path=self.path, error=str(e))
                    state = self._record_in_memory(state, snapshot, changed, gone)
            out = self._apply(state, snapshot)
            self._last = (snapshot, state.version, out)
            return out

    def is_current(self, stamped: MailboxSnapshot) -> bool:
        """
        Whether C{stamped} is what the last L{stamp} gave and the log has
        not changed since (one stat): then its MODSEQs still hold for the
        same messages with the same flags.  Blocking.
        """
        with self._lock:
            state = self._refresh()
            last = self._last
            return (last is not None and last[1] == state.version
                    and last[2].messages is stamped.messages)

    def _record(self, snapshot: MailboxSnapshot, needs: tuple | None = None) -> _State:
        """
        Append MODSEQs for what changed, under the log's dotlock.

        @param needs: C{(state version, changed, gone)} as L{_needs} found
            them before the lock was taken, if known; used again only if
            the log, re-read under the lock, has not changed since (a line
            another process appended meanwhile is never missed).
        """
        from storage.maildir.files import locked

        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, 0o700, exist_ok=True)
        except OSError as e:
            raise LockUnavailable(f"cannot create {directory}: {e.strerror or e}") from e
        with locked(self.path):
            state = self._refresh(locked=True)
            if not state.valid or state.uidvalidity != snapshot.uidvalidity:
                self._restart(state, snapshot)
                return self._refresh(locked=True)
            version, changed, gone = needs if needs is not None else (None, (), ())
            if state.version != version:
                changed, gone = self._needs(state, snapshot)
            if not (changed or gone):
                return state
            first = state.highest + 1
            lines = [b"%d %d X\n" % (uid, modseq)
                     for modseq, uid in enumerate(gone, first)]
            keys = [(record.uid, _flag_key(record.flags)) for record in changed]
            lines += [b"%d %d F %s\n" % (uid, modseq, key)
                      for modseq, (uid, key) in enumerate(keys, first + len(gone))]
            data = b"".join(lines)
            self._append(state, data)
            # We hold the lock and wrote right after what we had read, so
            # the file is now exactly our state plus these lines: apply
            # them as _parse_lines would, rather than read back and parse
            # 10,000 lines after a STORE 1:*.
            live, dead = state.live, state.dead
            for modseq, uid in enumerate(gone, first):
                live.pop(uid, None)
                dead[uid] = modseq
            for modseq, (uid, key) in enumerate(keys, first + len(gone)):
                live[uid] = (modseq, key)
                dead.pop(uid, None)
            state.highest = first - 1 + len(lines)
            state.lines += len(lines)
            state.offset += len(data)
            state.version += 1
            keep = max(len(state.live), _KEEP_TOMBSTONES)
            if (state.lines > 2 * (len(state.live) + len(state.dead)) + _SLACK
                    or len(state.dead) > 2 * keep):
                state = self._compact(state)
            return state

    def _writing(self, work: "Callable[[int], None]", missing_ok: bool = False) -> None:
        """
        Open the log for writing, run C{work(fd)}, close it; an C{OSError}
        becomes a L{StoreError} that names the file.

        @param missing_ok: a log that is not there is left alone.
        """
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            if missing_ok:
                return
            raise StoreError(f"cannot write {self.path}: {e.strerror or e}") from e
        except OSError as e:
            raise StoreError(f"cannot write {self.path}: {e.strerror or e}") from e
        try:
            work(fd)
        except OSError as e:
            raise StoreError(f"cannot write {self.path}: {e.strerror or e}") from e
        finally:
            os.close(fd)

    def _append(self, state: _State, data: bytes) -> None:
        def write(fd: int) -> None:
            size = os.fstat(fd).st_size
            if size != state.offset:
                # A torn line from a crashed writer: cut it off, or our
                # first line would complete it with the wrong MODSEQ.
                os.ftruncate(fd, state.offset)
            view = memoryview(data)
            pos = state.offset
            while view:
                n = os.pwrite(fd, view, pos)
                view = view[n:]
                pos += n
            if self.fsync:
                if getattr(self._batch, "depth", 0):
                    self._batch.dirty = True
                else:
                    os.fsync(fd)
        self._writing(write)

    @contextmanager
    def one_fsync(self) -> Iterator[None]:
        """
        Within the block, this thread's appends to the log (a L{stamp} of
        new messages, then L{claim_recent} of them, in one sync) are made
        durable by one C{fsync} when the block ends, not one each: the
        caller answers nobody before the block ends.  Another reader may
        see the lines before that C{fsync}, as it may between a write and
        its C{fsync} without the block.  A log replaced meanwhile by a
        compaction was written whole and fsynced by it.  Blocking.
        """
        batch = self._batch
        batch.depth = getattr(batch, "depth", 0) + 1
        try:
            yield
        finally:
            batch.depth -= 1
            if not batch.depth and getattr(batch, "dirty", False):
                batch.dirty = False
                self._writing(os.fsync, missing_ok=True)

    def _write_whole(self, header: tuple[int, int, int], lines: list[bytes],
                     recent: int | None) -> int:
        """
        Replace the log by temp file and rename; return its size.  The
        header's C{R} is the C{\\Recent} floor (L{claim_recent}); a log
        from before that rule has none.
        """
        from storage.maildir.files import atomic_write

        uidvalidity, highest, floor = header
        data = b"%s %s V%d H%d E%d" % (MAGIC, _VERSION, uidvalidity, highest, floor)
        data += b"\n" if recent is None else b" R%d\n" % recent
        data += b"".join(lines)
        atomic_write(self.path, data, fsync=self.fsync)
        return len(data)

    def _restart(self, state: _State, snapshot: MailboxSnapshot) -> None:
        """
        A new log (none yet, unreadable, or a new UIDVALIDITY): every
        message gets a MODSEQ above anything handed out before, and the
        tombstones of earlier MODSEQs are unknown (C{E}).
        """
        base = max(state.highest, _seed())
        lines = [b"%d %d F %s\n" % (r.uid, base + i, _flag_key(r.flags))
                 for i, r in enumerate(snapshot.messages, 1)]
        highest = base + len(snapshot.messages)
        # No \Recent floor unless the mailbox is empty (nothing to claim
        # yet): which of its messages a reader saw, the log cannot know,
        # and the store's own sign says (a Maildir's new/, claim_recent).
        self._write_whole((snapshot.uidvalidity, highest, base), lines,
                          recent=None if snapshot.messages else 1)

    def _compact(self, state: _State) -> _State:
        """
        Rewrite the log with only the lines it needs (see the module
        docstring); the caller holds the log's lock.  The new state is
        built from what was written rather than read back: under the
        lock nobody else writes the file.
        """
        keep = max(len(state.live), _KEEP_TOMBSTONES)
        dead = sorted(state.dead.items(), key=lambda item: item[1])
        dropped, kept = dead[:-keep] if len(dead) > keep else [], dead[-keep:]
        floor = max([state.floor] + [m for _u, m in dropped])
        lines = [b"%d %d X\n" % (uid, modseq) for uid, modseq in kept]
        lines += [b"%d %d F %s\n" % (uid, modseq, key)
                  for uid, (modseq, key) in sorted(state.live.items())]
        size = self._write_whole((state.uidvalidity, state.highest, floor), lines,
                                 recent=state.recent)
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise StoreError(f"cannot read {self.path}: {e.strerror or e}") from e
        fresh = _State(
            ident=_identity(st), offset=size, uidvalidity=state.uidvalidity,
            highest=max(state.highest, floor), floor=floor, live=state.live,
            dead=dict(kept), lines=len(lines), valid=True, version=state.version + 1,
            recent=state.recent,
        )
        self._state = fresh
        return fresh

    def _record_in_memory(self, state: _State, snapshot, changed, gone) -> _State:
        if not state.valid or state.uidvalidity != snapshot.uidvalidity:
            base = max(state.highest, _seed())
            state = _State(uidvalidity=snapshot.uidvalidity, highest=base, floor=base,
                           valid=True, version=state.version + 1)
            changed = list(snapshot.messages)
        modseq = state.highest
        for uid in gone:
            modseq += 1
            state.live.pop(uid, None)
            state.dead[uid] = modseq
        for record in changed:
            modseq += 1
            state.live[record.uid] = (modseq, _flag_key(record.flags))
        state.highest = modseq
        state.version += 1
        # Sticky until somebody writes the file: the next stamps reuse
        # these MODSEQs instead of handing out new ones at every sync.
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        state.ident = ("memory", _signature(st))
        self._state = state
        return state

    def _apply(self, state: _State, snapshot: MailboxSnapshot) -> MailboxSnapshot:
        live = state.live
        highest = state.highest
        inputs, outputs = self._inputs, self._outputs
        new_inputs: dict[int, MessageRecord] = {}
        new_outputs: dict[int, MessageRecord] = {}
        records = []
        for record in snapshot.messages:
            uid = record.uid
            known = live.get(uid)
            modseq = highest if known is None else known[0]
            out = outputs.get(uid)
            # Equal, not only identical: an mbox sync after a change builds
            # new records for unchanged messages, and copying 10,000 of
            # them costs more than comparing.
            if record.modseq == modseq:
                out = record  # built with its MODSEQ already (see current)
            elif out is None or out.modseq != modseq or not (
                    inputs[uid] is record or inputs[uid] == record):
                out = record.with_modseq(modseq)
            new_inputs[uid] = record
            new_outputs[uid] = out
            records.append(out)
        self._inputs, self._outputs = new_inputs, new_outputs
        return dataclasses.replace(snapshot, messages=tuple(records),
                                   highestmodseq=max(state.highest, 1))

    # -- QRESYNC --------------------------------------------------------------

    def expunged_since(self, modseq: int, uidvalidity: int) -> list[int] | None:
        """
        UIDs expunged with a MODSEQ above C{modseq}, ascending, for
        VANISHED (EARLIER) (RFC 7162 section 3.2.5.1); C{None} when the log
        no longer has the tombstones that far back (compaction, a new log,
        another UIDVALIDITY).  The caller then reports every UID below
        UIDNEXT that is not in the mailbox: a superset, which the RFC
        allows.
        """
        with self._lock:
            state = self._refresh()
            if state.valid and state.uidvalidity == uidvalidity and modseq >= state.floor:
                return sorted(u for u, m in state.dead.items() if m > modseq)
            return None


_logs_lock = threading.Lock()
_logs: dict[str, ModseqLog] = {}
_MAX_LOGS = 4096


def modseq_log(path: str, fsync: bool = False, resolved: bool = False) -> ModseqLog:
    """
    The process's one L{ModseqLog} for C{path}.

    @param resolved: C{path} is already free of symbolic links (the caller
        ran C{realpath} on its directory): spares the C{lstat} of every
        component at each open of a mailbox.
    """
    key = path if resolved else os.path.realpath(path)
    with _logs_lock:
        log = _logs.get(key)
        if log is None:
            if len(_logs) >= _MAX_LOGS:
                _logs.pop(next(iter(_logs)))
            log = _logs[key] = ModseqLog(key, fsync=fsync)
        return log
