# -*- test-case-name: tests.storage.test_interfaces -*-
"""
The seams between the protocol layer and the mail stores.

Everything here is blocking: the protocol layer calls stores from a
dedicated thread pool (DESIGN.md "Inside one process"), never on the reactor
thread.  Stores never produce protocol text; they speak in the frozen records
defined below.

Mailbox names at this seam are Python C{str} (Unicode), hierarchy delimiter
C{"/"}, with C{"INBOX"} always spelled that way.  Modified UTF-7 is a wire
concern (imapd) and an on-disk concern (each store's layout), never both.

Flags are C{frozenset[str]}: system flags with their backslash
(C{"\\\\Seen"}, C{"\\\\Answered"}, C{"\\\\Flagged"}, C{"\\\\Deleted"},
C{"\\\\Draft"}) and keywords as plain atoms (C{"$Forwarded"}).  C{\\Recent} is
never stored: it is reported through L{MailboxSnapshot.recent}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Iterable, Iterator

from zope.interface import Attribute, Interface

__all__ = [
    "SYSTEM_FLAGS",
    "IMessageFacts",
    "MessageRecord",
    "MailboxSnapshot",
    "MailboxInfo",
    "MailboxStatus",
    "CommitResult",
    "IStore",
    "IMailbox",
    "ITransaction",
]

#: The flags RFC 3501 section 2.3.2 defines, minus C{\\Recent}, which is a
#: session property and never stored.
SYSTEM_FLAGS = frozenset(
    {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"}
)


class IMessageFacts(Interface):
    """
    Where a store computes the two facts of a message that cost I/O, for
    a L{MessageRecord} built without them.  A Maildir's SELECT of 10,000
    messages must not stat and read 10,000 files that the client may
    never ask about (Dovecot reads them lazily too); the first FETCH
    RFC822.SIZE or INTERNALDATE does, in the storage thread pool.
    """

    def internaldate(key: str) -> datetime:
        """INTERNALDATE of the message whose locator is C{key}.  Blocking.

        @raises storage.errors.MessageExpunged: the message is gone.
        """

    def size(key: str) -> int:
        """RFC822.SIZE of the message whose locator is C{key}.  Blocking.

        @raises storage.errors.MessageExpunged: the message is gone.
        """

    # Optional: a store whose messages have an RFC 8514 save date gives
    # its facts a C{save_date(key) -> datetime | None} method (None: use
    # the INTERNALDATE); see L{MessageRecord.save_date}.


_new_record = object.__new__


class MessageRecord:
    """
    What the store knows about one message without reading its body.

    Immutable by contract, like the frozen dataclasses around it: records
    are shared by every session that shows the same snapshot, so nobody
    assigns to one (L{replace} and L{with_modseq} make changed copies).
    The contract is not enforced: an overridden C{__setattr__} made
    building a record three times slower, and a cold SELECT builds
    10,000.  The exception is C{internaldate} and C{size}, which may be
    computed on first use: a store that
    cannot give them cheaply passes C{None} and an L{IMessageFacts} that
    computes them (blocking, so only read them off the reactor thread).
    They never change for a message (DESIGN.md rule 5), so computing them
    late, or twice in two threads, gives the same answer.

    @ivar uid: the message's UID; never changes for the life of the
        mailbox's UIDVALIDITY (DESIGN.md rule 1).
    @ivar flags: system flags and keywords.
    @ivar internaldate: RFC 3501 INTERNALDATE, timezone-aware.
    @ivar size: RFC822.SIZE, the size of the message as the client sees
        it, that is with CRLF line endings.
    @ivar key: the store's own locator (Maildir base name, mbox offset...);
        opaque to the protocol layer.
    @ivar modseq: RFC 7162 mod-sequence of the message's last change
        (arrival, flag change), from the store's modseq log
        (L{storage.modseq}); 0 from a store that keeps none.
    """

    # A slotted class written out rather than a frozen dataclass: 10,000
    # of these are built per cold SELECT, and the lazy pair needs
    # properties, which a slotted dataclass cannot give its fields.
    __slots__ = ("uid", "flags", "key", "modseq", "_internaldate", "_size", "_facts")

    def __init__(self, uid: int, flags: frozenset[str],
                 internaldate: datetime | None = None, size: int | None = None,
                 key: str = "", modseq: int = 0,
                 facts: IMessageFacts | None = None) -> None:
        if facts is None and (internaldate is None or size is None):
            raise TypeError("MessageRecord needs internaldate and size, or facts")
        self.uid = uid
        self.flags = flags
        self.key = key
        self.modseq = modseq
        self._internaldate = internaldate
        self._size = size
        self._facts = facts

    @property
    def internaldate(self) -> datetime:
        value = self._internaldate
        if value is None:
            value = self._facts.internaldate(self.key)
            self._internaldate = value
        return value

    @property
    def size(self) -> int:
        value = self._size
        if value is None:
            value = self._facts.size(self.key)
            self._size = value
        return value

    @property
    def save_date(self) -> datetime | None:
        """
        RFC 8514 save date: when the message entered this mailbox (APPEND,
        COPY, MOVE or delivery), or C{None} where the store keeps none
        (the protocol then answers C{NIL}).  A store that keeps save dates
        has facts with C{save_date(key)}; its C{None} for a message means
        "the INTERNALDATE", which is then the best estimate.
        """
        finder = getattr(self._facts, "save_date", None)
        if finder is None:
            return None
        value = finder(self.key)
        return value if value is not None else self.internaldate

    @property
    def has_save_dates(self) -> bool:
        """Whether the store keeps save dates (RFC 8514 SAVEDATESUPPORTED)."""
        return getattr(self._facts, "save_date", None) is not None

    @property
    def known_size(self) -> int | None:
        """C{size} if it is known without I/O, else C{None}."""
        return self._size

    @property
    def known_internaldate(self) -> datetime | None:
        """C{internaldate} if it is known without I/O, else C{None}."""
        return self._internaldate

    def learn(self, size: int | None = None, internaldate: datetime | None = None) -> None:
        """
        Fill in a lazy fact found elsewhere (the index, or the message text
        a FETCH read anyway), sparing the store a second read.  A value
        already known is kept.
        """
        if size is not None and self._size is None:
            self._size = size
        if internaldate is not None and self._internaldate is None:
            self._internaldate = internaldate

    def replace(self, **changes) -> "MessageRecord":
        """A copy with C{flags}, C{modseq} (or other fields) changed."""
        new = _new_record(MessageRecord)
        new.uid = changes.pop("uid", self.uid)
        new.flags = changes.pop("flags", self.flags)
        new.key = changes.pop("key", self.key)
        new.modseq = changes.pop("modseq", self.modseq)
        new._internaldate = changes.pop("internaldate", self._internaldate)
        new._size = changes.pop("size", self._size)
        new._facts = self._facts
        if changes:
            raise TypeError(f"MessageRecord has no field {next(iter(changes))!r}")
        return new

    def with_modseq(self, modseq: int) -> "MessageRecord":
        """A copy with another C{modseq} (the hot case of L{replace})."""
        new = _new_record(MessageRecord)
        new.uid = self.uid
        new.flags = self.flags
        new.key = self.key
        new.modseq = modseq
        new._internaldate = self._internaldate
        new._size = self._size
        new._facts = self._facts
        return new

    def _identity(self) -> tuple:
        return (self.uid, self.flags, self.key, self.modseq)

    def __eq__(self, other: object) -> bool:
        # Messages never change (rule 5), so records with one UID and key
        # describe one file; a lazy fact is compared only when both sides
        # know it, so that comparing never does I/O.
        if not isinstance(other, MessageRecord):
            return NotImplemented
        if self._identity() != other._identity():
            return False
        for mine, theirs in ((self._size, other._size),
                             (self._internaldate, other._internaldate)):
            if mine is not None and theirs is not None and mine != theirs:
                return False
        return True

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return (f"MessageRecord(uid={self.uid!r}, flags={self.flags!r}, "
                f"internaldate={self._internaldate!r}, size={self._size!r}, "
                f"key={self.key!r}, modseq={self.modseq!r})")


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    """
    The state of a mailbox as of one L{IMailbox.sync} call.

    @ivar messages: every message, sorted by UID ascending.
    @ivar recent: UIDs that this open mailbox is the first to see
        (RFC 3501 section 2.3.2 C{\\Recent}); a store gives each such UID
        to exactly one writable L{IMailbox}, in any process.  A read-only
        one (EXAMINE) also reports the UIDs nobody took yet, and takes
        none (as Dovecot does).
    @ivar highestmodseq: RFC 7162 HIGHESTMODSEQ: the highest mod-sequence
        ever given in this mailbox, expunges included; never decreases for
        one UIDVALIDITY.  0 from a store that keeps no MODSEQs.
    """

    uidvalidity: int
    uidnext: int
    messages: tuple[MessageRecord, ...]
    recent: frozenset[int] = frozenset()
    keywords: tuple[str, ...] = ()
    highestmodseq: int = 0


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    """
    One mailbox as LIST sees it.

    @ivar attributes: RFC 3501/5258 attributes such as C{"\\\\Noselect"},
        C{"\\\\HasChildren"}, C{"\\\\HasNoChildren"}, C{"\\\\Marked"}.
    """

    name: str
    attributes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """RFC 3501 section 6.3.10 STATUS data."""

    messages: int
    recent: int
    uidnext: int
    uidvalidity: int
    unseen: int
    size: int = 0
    #: RFC 7162 section 3.1.6 STATUS HIGHESTMODSEQ (0: the store keeps none).
    highestmodseq: int = 0


@dataclass(frozen=True, slots=True)
class CommitResult:
    """
    What a committed transaction did, for UIDPLUS (RFC 4315) and for the
    session's own view.

    @ivar appended: UIDs assigned to appended or copied messages, in the
        order they were added to the transaction.
    @ivar source_uids: for copies, the source UIDs in the same order as
        C{appended}; empty for plain appends.
    @ivar expunged: UIDs that this commit removed.
    """

    uidvalidity: int
    appended: tuple[int, ...] = ()
    source_uids: tuple[int, ...] = ()
    expunged: tuple[int, ...] = ()
    flags_changed: tuple[int, ...] = field(default=())
    #: UIDs whose flag change was not made because their MODSEQ was above
    #: its UNCHANGEDSINCE (RFC 7162 section 3.1.3), checked under the lock.
    modified: tuple[int, ...] = ()


class IStore(Interface):
    """
    One user's mail: the set of mailboxes under one mail location.

    Methods raise L{storage.errors.MailboxNotFound},
    L{storage.errors.MailboxExists}, L{storage.errors.InvalidMailboxName},
    L{storage.errors.StoreError} and their subclasses; never protocol
    errors.
    """

    user = Attribute("The user name this store belongs to (str).")

    def list_mailboxes() -> list[MailboxInfo]:
        """
        Every mailbox, including C{\\Noselect} parents that exist only as
        hierarchy, in no particular order.  INBOX is always present.
        """

    def create(name: str) -> None:
        """
        RFC 3501 section 6.3.3: create C{name} and any missing parents.

        @raises MailboxExists: it exists already.
        @raises InvalidMailboxName: the name would escape the mail root or
            is not allowed.
        """

    def delete(name: str) -> None:
        """
        RFC 3501 section 6.3.4.  Deleting a mailbox that has children leaves
        it as a C{\\Noselect} parent; deleting INBOX is refused.
        """

    def rename(old: str, new: str) -> None:
        """
        RFC 3501 section 6.3.5, children included.  Renaming INBOX moves its
        messages to C{new} and leaves INBOX empty.
        """

    def subscriptions() -> list[str]:
        """The subscribed names (RFC 3501 section 6.3.6), in file order."""

    def subscribe(name: str) -> None:
        """Add C{name} to the subscriptions; the mailbox need not exist."""

    def unsubscribe(name: str) -> None:
        """Remove C{name}; L{MailboxNotFound} if it was not subscribed."""

    def status(name: str) -> MailboxStatus:
        """STATUS data for a mailbox, without opening it for a session."""

    def open(name: str, readonly: bool = False) -> "IMailbox":
        """
        Open a mailbox for a session.  The caller must L{IMailbox.close} it.

        @raises MailboxNotFound: no such mailbox (or a C{\\Noselect} one).
        """

    def close() -> None:
        """Release anything the store holds (caches, file handles)."""


class IMailbox(Interface):
    """
    An open mailbox.  One per session that has it selected (or per
    APPEND/COPY target).  Reads see the store as of the last L{sync}.
    """

    name = Attribute("The mailbox name (str).")
    readonly = Attribute("True if opened read-only (EXAMINE).")
    uidvalidity = Attribute("The UIDVALIDITY (int).")

    def sync() -> MailboxSnapshot:
        """
        Re-read the store (cheaply when nothing changed) and return its
        current state, including changes made by other sessions, other
        processes and other programs (an MTA dropping a file into new/).
        """

    def expunged_since(modseq: int) -> list[int] | None:
        """
        Optional (stores with MODSEQs): the UIDs expunged with a
        mod-sequence above C{modseq}, ascending, for RFC 7162 VANISHED
        (EARLIER); C{None} when the store no longer knows that far back
        (the caller then reports every UID below UIDNEXT that is absent,
        which RFC 7162 section 3.2.5.1 allows).
        """

    def read(uid: int) -> bytes:
        """
        The message as the client sees it: the exact bytes with CRLF line
        endings, and without any store-private headers.  Its length equals
        the record's C{size}.

        @raises MessageExpunged: the message is gone from the store.
        """

    def read_chunks(uid: int, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """
        The octets C{[offset, offset + length)} of L{read}'s answer (to
        its end if C{length} is None), in pieces of about
        L{storage.crlf.CHUNK} octets, read from the store as they are
        consumed: a large message is never held whole (CATENATE URL parts,
        issue 18).

        @raises MessageExpunged: the message is gone from the store (when
            the first piece is asked for).
        """

    def read_header(uid: int) -> bytes:
        """
        The header block of L{read}'s answer: its bytes up to and
        including the first empty line (all of them when there is none).
        A store reads no more of the message than it must: SORT, ENVELOPE
        and header FETCHes of an unindexed mailbox need only this.

        @raises MessageExpunged: the message is gone from the store.
        """

    def transaction() -> "ITransaction":
        """Begin a write transaction on this mailbox."""

    def close() -> None:
        """Release the mailbox."""


class ITransaction(Interface):
    """
    Writes to one mailbox, applied by L{commit} under the store's lock, all
    or nothing as far as the file system allows.  Nothing is visible to
    other readers before commit.
    """

    def append(
        data: bytes, flags: Iterable[str] = (), internaldate: datetime | None = None
    ) -> None:
        """Queue a new message (bytes as the client sent them)."""

    def append_file(
        file: BinaryIO, flags: Iterable[str] = (), internaldate: datetime | None = None
    ) -> None:
        """
        Queue a new message read from the binary C{file}, from where it
        stands to its end, in bounded chunks: a message assembled on disk
        (CATENATE) is never held whole in memory.  The same message as
        L{append} of those bytes.  C{file} may be closed once this returns.
        """

    def copy_from(source: IMailbox, uids: Iterable[int]) -> None:
        """
        Queue copies of messages of another open mailbox, keeping their
        flags and INTERNALDATE (RFC 3501 section 6.4.7).  C{source} may be
        the same mailbox.
        """

    def set_flags(uid: int, flags: frozenset[str]) -> None:
        """Queue a full replacement of one message's flags."""

    def change_flags(uid: int, change) -> None:
        """
        Queue a L{storage.flagchange.FlagChange}: at commit, under the
        store's lock, it is applied to the flags the message has in the
        store then (never to a caller's copy, which may be stale), and its
        UNCHANGEDSINCE is checked there; a message that fails it is left
        alone and named in L{CommitResult.modified}.
        """

    def expunge(uid: int) -> None:
        """Queue the removal of one message."""

    def commit() -> CommitResult:
        """
        Apply everything queued.

        @raises StoreError: nothing was applied.
        """

    def rollback() -> None:
        """Forget everything queued."""
