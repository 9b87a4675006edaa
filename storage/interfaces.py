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
from typing import Iterable

from zope.interface import Attribute, Interface

__all__ = [
    "SYSTEM_FLAGS",
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


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """
    What the store knows about one message without reading its body.

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

    uid: int
    flags: frozenset[str]
    internaldate: datetime
    size: int
    key: str = ""
    modseq: int = 0


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    """
    The state of a mailbox as of one L{IMailbox.sync} call.

    @ivar messages: every message, sorted by UID ascending.
    @ivar recent: UIDs that this open mailbox is the first to see
        (RFC 3501 section 2.3.2 C{\\Recent}); a store reports each such UID
        to exactly one L{IMailbox}.
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

    def copy_from(source: IMailbox, uids: Iterable[int]) -> None:
        """
        Queue copies of messages of another open mailbox, keeping their
        flags and INTERNALDATE (RFC 3501 section 6.4.7).  C{source} may be
        the same mailbox.
        """

    def set_flags(uid: int, flags: frozenset[str]) -> None:
        """Queue a full replacement of one message's flags."""

    def expunge(uid: int) -> None:
        """Queue the removal of one message."""

    def commit() -> CommitResult:
        """
        Apply everything queued.

        @raises StoreError: nothing was applied.
        """

    def rollback() -> None:
        """Forget everything queued."""
