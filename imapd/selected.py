# -*- test-case-name: tests.imapd.test_selected -*-
"""
One session's view of its selected mailbox (RFC 3501 sections 2.3.1 and
7.4.1).

The view maps sequence numbers to UIDs and remembers the flags the client
was last told about.  It changes only in three ways, each of which tells the
client: L{SelectedView.apply} (a new L{MailboxSnapshot} from the store:
other sessions, processes, nodes, an MTA), L{SelectedView.commit_flags} (this
session's own STORE) and L{SelectedView.remove} (this session's own
EXPUNGE).  Changes made by others reach the view only by re-syncing with the
store (DESIGN.md "The flow of a command").

EXPUNGE responses shift sequence numbers, so RFC 3501 section 7.4.1 forbids
them during FETCH, STORE and SEARCH.  When the caller says expunges are not
allowed, vanished messages stay in the view, marked, until a later sync
that allows them.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from bisect import bisect_left, bisect_right
from typing import Iterable, Optional

from storage.flagchange import FlagChange
from storage.interfaces import SYSTEM_FLAGS, MailboxSnapshot, MessageRecord
from imapd.parser.types import SequenceSet
from imapd.errors import BadCommand
from imapd.wire import uid_set

__all__ = ["SelectedView", "flag_lock", "flags_lines"]

_flag_locks_guard = threading.Lock()
#: Weak: a lock lives as long as some caller holds or waits on it.
_flag_locks: "weakref.WeakValueDictionary[str, threading.RLock]" = weakref.WeakValueDictionary()


def flag_lock(mailbox) -> threading.RLock:
    """
    The lock this process's sessions hold while they commit flag changes
    in one mailbox and sync right after, so that the sync a session shows
    its STORE's result from follows its own commit without another
    session's commit of this process in between.  Correctness against
    every writer does not rest on it: the store applies the change (and
    checks UNCHANGEDSINCE) under the mailbox's own lock
    (L{storage.flagchange}).
    """
    key = getattr(mailbox, "directory", None) or getattr(mailbox, "path", None) or str(id(mailbox))
    with _flag_locks_guard:
        lock = _flag_locks.get(key)
        if lock is None:
            lock = threading.RLock()
            _flag_locks[key] = lock
        return lock


def format_flag_list(flags: Iterable[str]) -> bytes:
    """
    An RFC 3501 flag list, in the one order every response uses
    (L{imapd.fetch.format_flags}).
    """
    from imapd.fetch import format_flags

    return format_flags(flags)


def flags_lines(keywords: Iterable[str], readonly: bool) -> tuple[bytes, bytes]:
    """
    C{* FLAGS} (RFC 3501 section 7.2.6) and C{* OK [PERMANENTFLAGS]}
    (section 7.1) for a mailbox whose keywords are C{keywords}: what
    SELECT says, and what the client is told again before it sees a
    keyword these did not name.  C{\\*}: clients may create keywords.
    """
    flags = format_flag_list(sorted(SYSTEM_FLAGS) + list(keywords))
    if readonly:
        permanent = b"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"
    else:
        permanent = b"* OK [PERMANENTFLAGS " + flags[:-1] + b" \\*)] Flags permitted.\r\n"
    return b"* FLAGS " + flags + b"\r\n", permanent


class _Derived:
    """
    The sequence of UIDs and the UID -> record map of one store snapshot's
    messages, and their flag index, shared read-only by every view whose
    content equals that snapshot.  Stores hand the same messages tuple to
    every open of an unchanged mailbox, so a thousand sessions idling in a
    10,000-message mailbox hold one copy of these instead of a thousand
    (issue 6: memory per IDLE connection).  A view copies them before it
    changes them (L{SelectedView._own}).
    """

    __slots__ = ("messages", "uids", "records", "_index", "_lock")

    def __init__(self, messages: tuple) -> None:
        self.messages = messages
        self.uids = [r.uid for r in messages]
        self.records = {r.uid: r for r in messages}
        self._index = None
        self._lock = threading.Lock()

    def flag_index(self):
        from imapd.search.sets import FlagIndex

        with self._lock:
            if self._index is None:
                self._index = FlagIndex(self.uids, self.records, ())
            return self._index


_derived_lock = threading.Lock()
_derived_cache: "OrderedDict[int, _Derived]" = OrderedDict()
_DERIVED_MAX = 8


def _derived(snapshot: MailboxSnapshot) -> _Derived:
    """
    The L{_Derived} of C{snapshot}'s messages, from a small LRU keyed by
    the identity of the messages tuple (\\Recent and MODSEQ headers may
    differ between snapshots that share it).
    """
    messages = snapshot.messages
    key = id(messages)
    with _derived_lock:
        found = _derived_cache.get(key)
        # The entry holds the tuple, so its id cannot be reused while
        # cached; the identity check is for clarity.
        if found is not None and found.messages is messages:
            _derived_cache.move_to_end(key)
            return found
    made = _Derived(messages)
    with _derived_lock:
        _derived_cache[key] = made
        while len(_derived_cache) > _DERIVED_MAX:
            _derived_cache.popitem(last=False)
    return made


class SelectedView:
    """
    @ivar uids: UIDs in sequence order; C{uids[n - 1]} is message n.
    @ivar records: the last record seen for each UID in the view.
    @ivar recent: UIDs this session reports as C{\\Recent}.
    @ivar vanished: UIDs gone from the store but not yet announced.
    """

    def __init__(self, mailbox, snapshot: MailboxSnapshot, readonly: bool) -> None:
        self.mailbox = mailbox
        self.readonly = readonly
        self.uidvalidity = snapshot.uidvalidity
        self.uidnext = snapshot.uidnext
        self.keywords: tuple[str, ...] = snapshot.keywords
        #: The keywords the client was told about by FLAGS, in that order
        #: (SELECT tells it C{keywords}), and the same in lower case.
        self.told: tuple[str, ...] = snapshot.keywords
        self._told_lower = {k.lower() for k in snapshot.keywords}
        self._base = _derived(snapshot)
        # Shared with other views of the same snapshot until this view
        # changes them (copy on write, see _own).
        self.uids: list[int] = self._base.uids
        self.records: dict[int, MessageRecord] = self._base.records
        self._owned = False
        self.recent: set[int] = set(snapshot.recent)
        self.vanished: set[int] = set()
        #: RFC 7162 HIGHESTMODSEQ as of the last snapshot applied.
        self.highestmodseq = snapshot.highestmodseq
        #: RFC 7162 section 3.1: untagged FETCHes carry MODSEQ (and UID).
        self.condstore = False
        #: RFC 7162 section 3.2.10: expunges go out as VANISHED, not EXPUNGE.
        self.qresync = False
        #: RFC 9051 (the client enabled IMAP4rev2): no C{\\Recent} in the
        #: flags it is shown, no C{* n RECENT} (section 2.3.2, Appendix E
        #: item 12) and UID in every unsolicited FETCH (section 7.5.2).
        #: The view still tracks C{recent}: SEARCH and STATUS keep their
        #: IMAP4rev1 meaning for the store.
        self.imap4rev2 = False
        self._applied: MailboxSnapshot | None = snapshot
        #: The store's snapshot from the sync that L{commit_flags} made in
        #: the current command.  The dispatcher applies it after the
        #: command instead of listing the mailbox a second time, and
        #: clears it before every command, so that it is never applied
        #: after a newer one.
        self.synced: MailboxSnapshot | None = None
        #: Bumped by every change to uids, records, recent or vanished;
        #: keys the cached L{flag_index}.
        self.version = 0
        self._flag_index: tuple[int, object] | None = None
        #: RFC 5182 search result variable, as UIDs.  It lives in the view,
        #: so SELECT, EXAMINE, CLOSE and UNSELECT reset it (section 2.1).
        self.saved_uids: frozenset[int] = frozenset()
        #: RFC 5267 section 4.3 results kept up to date
        #: (L{imapd.search.updates.UpdateContexts}), or None: they live
        #: in the view, so they end with the selection.
        self.contexts = None

    # -- queries ---------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def flags(self, uid: int) -> frozenset[str]:
        """The flags as this session shows them, C{\\Recent} included."""
        flags = self.records[uid].flags
        if uid in self.recent:
            return flags | {"\\Recent"}
        return flags

    def shown_flags(self, uid: int) -> frozenset[str]:
        """
        The flags to put in a FLAGS response: L{flags}, less C{\\Recent}
        for an IMAP4rev2 client (RFC 9051 section 2.3.2 has no such flag).
        """
        if self.imap4rev2:
            return self.records[uid].flags
        return self.flags(uid)

    def flag_index(self):
        """
        The L{imapd.search.sets.FlagIndex} of the view as it is now, built
        once per change rather than once per SEARCH.
        """
        from imapd.search.sets import FlagIndex

        if not self._owned and not self.vanished:
            # The view is a store snapshot as it is: its index is shared
            # by every session that sees the same state.
            return self._base.flag_index()
        cached = self._flag_index
        if cached is None or cached[0] != self.version:
            index = FlagIndex(self.uids, self.records, self.vanished)
            cached = self._flag_index = (self.version, index)
        return cached[1]

    def seq_of(self, uid: int) -> int:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        raise KeyError(uid)

    def resolve(self, sequence: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """
        The C{(seq, uid)} pairs a sequence set names, ascending.

        UID sets ignore UIDs that do not exist (RFC 3501 section 6.4.8) and
        are resolved by bisection, so C{1:4294967295} costs no more than
        C{1:*}.  Message sequence numbers beyond the mailbox are a client
        error (RFC 3501 section 9, C{seq-number}).

        C{$} (RFC 5182) names the saved SEARCH result whether or not the
        command is a UID command; messages expunged since are left out,
        and an empty result names no message (no error).

        @raises BadCommand: a sequence number out of range.
        """
        if sequence.saved:
            out = []
            for u in sorted(self.saved_uids):
                i = bisect_left(self.uids, u)
                if i < len(self.uids) and self.uids[i] == u:
                    out.append((i + 1, u))
            return out
        n = len(self.uids)
        picked: set[int] = set()
        if uid:
            largest = self.uids[-1] if self.uids else 0
            for low, high in sequence.ranges:
                a = largest if low is None else low
                b = largest if high is None else high
                if a > b:
                    a, b = b, a
                lo = bisect_left(self.uids, a)
                hi = bisect_right(self.uids, b)
                picked.update(range(lo + 1, hi + 1))
        else:
            for low, high in sequence.ranges:
                if n == 0:
                    raise BadCommand("No messages in the mailbox: invalid message sequence number")
                a = n if low is None else low
                b = n if high is None else high
                if a > b:
                    a, b = b, a
                if b > n:
                    raise BadCommand(f"Invalid message sequence number {b}: mailbox has {n}")
                picked.update(range(a, b + 1))
        return [(s, self.uids[s - 1]) for s in sorted(picked)]

    # -- changes ---------------------------------------------------------

    def apply(
        self,
        snapshot: MailboxSnapshot,
        allow_expunge: bool,
        report_uid: bool = False,
    ) -> list[bytes]:
        """
        Bring the view up to date with C{snapshot}; return the untagged
        responses that tell the client (EXPUNGE, EXISTS, RECENT, FETCH).

        @param allow_expunge: False while answering FETCH, STORE or SEARCH
            (RFC 3501 section 7.4.1): vanished messages then stay.
        @param report_uid: include UID in FETCH flag updates (also implied
            by L{condstore}, which adds MODSEQ to them, and by
            L{imap4rev2}: RFC 9051 section 7.5.2 has every unsolicited
            FETCH carry UID).
        """
        report_uid = report_uid or self.condstore or self.imap4rev2
        if snapshot is self._applied and not (allow_expunge and self.vanished):
            # The store returned the very snapshot we applied last time:
            # nothing changed, and walking 10,000 records would say so.
            return []
        self._applied = snapshot
        self.version += 1
        self._own()
        out: list[bytes] = []
        current = {r.uid: r for r in snapshot.messages}
        gone = [u for u in self.uids if u not in current]
        if gone:
            self.vanished.update(gone)
        if allow_expunge and self.vanished:
            out += self.remove(self.vanished)
        # Flag changes for messages still in the view.
        for seq, u in enumerate(self.uids, 1):
            new = current.get(u)
            if new is None:
                continue
            old = self.records[u]
            if new.flags != old.flags or (self.condstore and new.modseq > old.modseq):
                # RFC 7162 section 3.1.2: once CONDSTORE is enabled a change
                # made elsewhere is reported with its new MODSEQ, even one
                # that ended with the flags this session last saw.
                self.records[u] = new
                item = b"FLAGS " + format_flag_list(self.shown_flags(u))
                if report_uid:
                    item = b"UID %d " % u + item
                if self.condstore:
                    item += b" MODSEQ (%d)" % new.modseq
                out.append(b"* %d FETCH (%s)\r\n" % (seq, item))
            elif new is not old:
                self.records[u] = new
        # New messages: UIDs above the last one in the view.  A message
        # with a UID lower than our highest that we never saw would mean
        # the store renumbered; the store guarantees that cannot happen.
        last = self.uids[-1] if self.uids else 0
        added = [r for r in snapshot.messages if r.uid > last]
        if added:
            for r in added:
                self.uids.append(r.uid)
                self.records[r.uid] = r
            self.recent.update(snapshot.recent & {r.uid for r in added})
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
            if not self.imap4rev2:
                # RFC 9051 Appendix E: IMAP4rev2 has no RECENT response.
                out.append(b"* %d RECENT\r\n" % len(self.recent))
        self.uidnext = max(self.uidnext, snapshot.uidnext)
        self.highestmodseq = max(self.highestmodseq, snapshot.highestmodseq)
        self.keywords = snapshot.keywords
        self._rebase(snapshot)
        told = self.announce()
        if told:
            # Before the FETCH and EXISTS that may show the new keywords.
            out.insert(0, told)
        return out

    def announce(self) -> bytes:
        """
        C{* FLAGS} and C{* OK [PERMANENTFLAGS]} naming every keyword of
        the mailbox, if it has one the client was not told about yet; else
        nothing.  RFC 3501 sections 7.2.6 and 7.1: clients build their
        flag lists from these, so they must come before any response that
        shows such a keyword (after STORE, COPY, APPEND, or a change made
        by another session or program).
        """
        told = self._told_lower
        new = [k for k in self.keywords if k.lower() not in told]
        if not new:
            return b""
        for k in new:
            told.add(k.lower())
        self.told = self.told + tuple(new)
        return b"".join(flags_lines(self.told, self.readonly))

    def _own(self) -> None:
        """Copy the shared uid list and record map before changing them."""
        if not self._owned:
            self.uids = list(self.uids)
            self.records = dict(self.records)
            self._owned = True

    def _rebase(self, snapshot: MailboxSnapshot) -> None:
        """
        Share C{snapshot}'s lists again once the view shows exactly its
        messages (nothing expunged is waiting to be announced): an idle
        session then holds no copy of a large mailbox of its own.
        """
        messages = snapshot.messages
        if self.vanished or len(messages) != len(self.uids):
            return
        if messages and (messages[0].uid != self.uids[0] or messages[-1].uid != self.uids[-1]):
            return
        self._base = _derived(snapshot)
        self.uids = self._base.uids
        self.records = self._base.records
        self._owned = False

    def remove(self, uids: Iterable[int]) -> list[bytes]:
        """
        Drop messages from the view; return their EXPUNGE responses.
        Highest sequence number first, so that each number sent is still
        valid when the client applies it.  With L{qresync}, one
        C{* VANISHED uid-set} instead (RFC 7162 section 3.2.10).
        """
        doomed = set(uids)
        # RFC 5267 section 4.3.4: an updated search result loses them
        # before their EXPUNGEs, numbered as the client still numbers them.
        out = self.contexts.removing(self, doomed) if self.contexts else []
        self.version += 1
        self._own()
        expunges = []
        gone = []
        for i in range(len(self.uids) - 1, -1, -1):
            u = self.uids[i]
            if u in doomed:
                expunges.append(b"* %d EXPUNGE\r\n" % (i + 1))
                gone.append(u)
                del self.uids[i]
                self.records.pop(u, None)
                self.recent.discard(u)
        self.vanished -= doomed
        if self.qresync:
            return out + ([b"* VANISHED %s\r\n" % uid_set(sorted(gone)).encode()] if gone else [])
        return out + expunges

    def commit_flags(self, changes: dict[int, FlagChange]) -> tuple[list[int], set[int]]:
        """
        Blocking: hand flag changes of messages of this view to the store
        in one transaction, then show the result in the view (STORE, and
        FETCH setting C{\\Seen}).

        The store applies each change to the flags it holds under its
        lock, never to this view's copy, which may be stale (another
        session, process or program changed them since our last sync):
        RFC 3501 section 6.4.6, DESIGN.md "Flag changes".  So the flags a
        message ends with come from the sync right after the commit, with
        their new MODSEQs; other changes in that sync are left for the
        next L{apply}, which the dispatcher makes with that very snapshot
        (L{synced}).

        @return: the UIDs the store left alone because their MODSEQ was
            above the change's UNCHANGEDSINCE (RFC 7162 section 3.1.3),
            and the UIDs whose flags now differ from what the client can
            work out from what it was told and its own change (another
            party changed them too): those need a FETCH even after a
            C{.SILENT} STORE.
        """
        if not changes:
            return [], set()
        with flag_lock(self.mailbox):
            tx = self.mailbox.transaction()
            for uid, change in changes.items():
                tx.change_flags(uid, change)
            result = tx.commit()
            snapshot = self.mailbox.sync()
        self.synced = snapshot
        self.version += 1
        self._own()
        # The records below may carry keywords new to the client: the
        # caller sends L{announce} before showing them.
        self.keywords = snapshot.keywords
        modified = set(result.modified) if result is not None else set()
        wanted = changes.keys() - modified
        fresh = {r.uid: r for r in snapshot.messages if r.uid in wanted}
        records = self.records
        surprised = set()
        # A STORE 1:* has few distinct (change, flags) pairs.
        expected: dict[tuple, frozenset[str]] = {}
        gone = set()
        for uid in wanted:
            record = records.get(uid)
            new = fresh.get(uid)
            if record is None:
                continue
            if new is None:
                # Expunged meanwhile, so the change was not made: the next
                # apply says EXPUNGE, and until then nothing shows the
                # message's old flags as if they were the change's result.
                gone.add(uid)
                continue
            change = changes[uid]
            key = (id(change), record.flags)  # one change object per STORE
            result = expected.get(key)
            if result is None:
                result = expected[key] = change.apply(record.flags)
            if new.flags != result:
                surprised.add(uid)
            records[uid] = new
        if gone:
            self.vanished |= gone
            self.version += 1
        return sorted(modified), surprised

    def is_vanished(self, uid: int) -> bool:
        return uid in self.vanished

    def first_unseen(self) -> Optional[int]:
        """Sequence number of the first message without C{\\Seen}."""
        for seq, u in enumerate(self.uids, 1):
            if "\\Seen" not in self.records[u].flags:
                return seq
        return None
