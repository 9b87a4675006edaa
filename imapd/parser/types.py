# -*- test-case-name: tests.imapd.parser.test_commands -*-
"""
The typed results of parsing: one frozen dataclass per command (RFC 3501
section 6 and the extensions we advertise) and the typed parts they are
built from.

These are the contract between L{imapd.parser} (which builds them from
bytes, without I/O) and the command handlers in L{imapd.commands} (which
execute them).  Strings the client sent stay C{bytes}: decoding (modified
UTF-7 mailbox names, SEARCH CHARSET) is the handler's business, because it
depends on session state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator, Optional

__all__ = [
    "SequenceSet", "Section", "FetchAttr", "SearchKey", "StoreAction",
    "Command", "Capability", "Noop", "Logout", "StartTLS", "Authenticate",
    "Login", "Select", "Create", "Delete", "Rename", "Subscribe",
    "Unsubscribe", "List", "Lsub", "Status", "Append", "AppendMessage",
    "CatenatePart",
    "Check", "Close", "Unselect", "Expunge", "Search", "Fetch", "Store",
    "Copy", "Move", "Idle", "Namespace", "Id", "Enable", "Compress", "QresyncParam",
    "Event", "ContinuationNeeded", "ParseError", "RawLine",
]


# --------------------------------------------------------------------------
# Parts


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """
    RFC 3501 C{sequence-set}.  Each range is C{(low, high)} with C{None}
    standing for C{*}; a single number is C{(n, n)}.  Ranges are kept as the
    client wrote them (C{5:2} is the same as C{2:5}, RFC 3501 section 9).

    @ivar ranges: the ranges, in client order.
    @ivar saved: True for RFC 5182's C{$} (the saved SEARCH result).
    """

    ranges: tuple[tuple[Optional[int], Optional[int]], ...]
    saved: bool = False

    def iter(self, largest: int) -> Iterator[int]:
        """
        Yield each member, with C{*} meaning C{largest}, without
        duplicates, ascending.  Members above C{largest} are yielded too;
        the caller decides whether they are errors (sequence numbers) or
        ignored (UIDs, RFC 3501 section 6.4.8).
        """
        seen: set[int] = set()
        for low, high in self.ranges:
            a = largest if low is None else low
            b = largest if high is None else high
            if a > b:
                a, b = b, a
            seen.update(range(a, b + 1))
        return iter(sorted(seen))

    def contains(self, value: int, largest: int) -> bool:
        """Whether C{value} is a member, with C{*} meaning C{largest}."""
        for low, high in self.ranges:
            a = largest if low is None else low
            b = largest if high is None else high
            if a > b:
                a, b = b, a
            if a <= value <= b:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Section:
    """
    RFC 3501 C{section} of BODY[...]: a part path and an optional text
    specifier.

    @ivar part: part numbers, C{()} for the whole message.
    @ivar text: None, C{"HEADER"}, C{"HEADER.FIELDS"},
        C{"HEADER.FIELDS.NOT"}, C{"TEXT"} or C{"MIME"} (upper case).
    @ivar fields: header field names for HEADER.FIELDS(.NOT), as sent
        (the response echoes them).
    """

    part: tuple[int, ...] = ()
    text: Optional[str] = None
    fields: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchAttr:
    """
    One RFC 3501 C{fetch-att}.  Macros (ALL, FAST, FULL) are expanded by
    the parser into their attributes.

    @ivar name: upper-case: C{"FLAGS"}, C{"INTERNALDATE"}, C{"RFC822.SIZE"},
        C{"ENVELOPE"}, C{"BODY"} (with C{section=None}: the non-extensible
        BODYSTRUCTURE), C{"BODYSTRUCTURE"}, C{"UID"}, C{"RFC822"},
        C{"RFC822.HEADER"}, C{"RFC822.TEXT"}, C{"BODY"} with a section
        (C{BODY[...]}; C{peek} tells BODY.PEEK), C{"BINARY"},
        C{"BINARY.SIZE"} (RFC 3516, when advertised), C{"MODSEQ"},
        C{"SAVEDATE"} (RFC 8514), C{"PREVIEW"} (RFC 8970).
    @ivar partial: C{(offset, length)} for C{<o.l>}.
    @ivar lazy: C{PREVIEW (LAZY)} (RFC 8970 section 3).
    """

    name: str
    section: Optional[Section] = None
    partial: Optional[tuple[int, int]] = None
    peek: bool = False
    lazy: bool = False


@dataclass(frozen=True, slots=True)
class SearchKey:
    """
    A node of an RFC 3501 section 6.4.4 search program.

    C{name} is the upper-case key (C{"ALL"}, C{"ANSWERED"}, C{"BCC"},
    C{"BEFORE"}, ..., C{"UID"}), plus three structural names: C{"AND"}
    (C{children} all match: a parenthesized list or a run of keys),
    C{"OR"} (two children), C{"NOT"} (one child), and C{"SEQSET"} for a
    bare sequence set.  C{value} holds the argument: C{bytes} for strings,
    C{datetime.date} for dates, C{int} for sizes, L{SequenceSet} for
    SEQSET/UID, C{(field_name, string)} for HEADER, C{bytes} flag/keyword
    for KEYWORD/UNKEYWORD.
    """

    name: str
    value: object = None
    children: tuple["SearchKey", ...] = ()


@dataclass(frozen=True, slots=True)
class StoreAction:
    """
    RFC 3501 STORE data item: C{mode} is C{"+"}, C{"-"} or C{""}
    (replace); C{silent} for C{.SILENT}; C{flags} as sent (e.g.
    C{"\\\\Seen"}, C{"$Forwarded"}).
    """

    mode: str
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: Optional[int] = None


# --------------------------------------------------------------------------
# Commands


@dataclass(frozen=True, slots=True)
class Command:
    """Base of all commands.  C{tag} is the client's tag (ASCII)."""

    tag: str

    #: The command name as the dispatch table knows it (set per subclass).
    name = ""


@dataclass(frozen=True, slots=True)
class Capability(Command):
    """RFC 3501 section 6.1.1."""
    name = "CAPABILITY"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    """RFC 3501 section 6.1.2."""
    name = "NOOP"


@dataclass(frozen=True, slots=True)
class Logout(Command):
    """RFC 3501 section 6.1.3."""
    name = "LOGOUT"


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    """RFC 3501 section 6.2.1."""
    name = "STARTTLS"


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """
    RFC 3501 section 6.2.2; C{initial} is RFC 4959's initial response,
    still base64 (C{b"="} means an empty one), None if absent.
    """
    mechanism: str = ""
    initial: Optional[bytes] = None
    name = "AUTHENTICATE"


@dataclass(frozen=True, slots=True)
class Login(Command):
    """RFC 3501 section 6.2.3."""
    user: bytes = b""
    password: bytes = b""
    name = "LOGIN"


@dataclass(frozen=True, slots=True)
class Select(Command):
    """
    RFC 3501 sections 6.3.1 (SELECT) and 6.3.2 (EXAMINE, C{readonly}).
    C{params} holds RFC 4466 select parameters as C{(name, value)} pairs
    (e.g. CONDSTORE), upper-case names.
    """
    mailbox: bytes = b""
    readonly: bool = False
    params: tuple[tuple[str, object], ...] = ()
    name = "SELECT"


@dataclass(frozen=True, slots=True)
class Create(Command):
    """RFC 3501 section 6.3.3."""
    mailbox: bytes = b""
    name = "CREATE"


@dataclass(frozen=True, slots=True)
class Delete(Command):
    """RFC 3501 section 6.3.4."""
    mailbox: bytes = b""
    name = "DELETE"


@dataclass(frozen=True, slots=True)
class Rename(Command):
    """RFC 3501 section 6.3.5."""
    old: bytes = b""
    new: bytes = b""
    name = "RENAME"


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    """RFC 3501 section 6.3.6."""
    mailbox: bytes = b""
    name = "SUBSCRIBE"


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    """RFC 3501 section 6.3.7."""
    mailbox: bytes = b""
    name = "UNSUBSCRIBE"


@dataclass(frozen=True, slots=True)
class List(Command):
    """RFC 3501 section 6.3.8; C{pattern} is a list-mailbox (may hold % *)."""
    reference: bytes = b""
    pattern: bytes = b""
    name = "LIST"


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    """RFC 3501 section 6.3.9."""
    reference: bytes = b""
    pattern: bytes = b""
    name = "LSUB"


@dataclass(frozen=True, slots=True)
class Status(Command):
    """RFC 3501 section 6.3.10; C{items} upper-case (MESSAGES, UIDNEXT...)."""
    mailbox: bytes = b""
    items: tuple[str, ...] = ()
    name = "STATUS"


@dataclass(frozen=True, slots=True)
class CatenatePart:
    """
    RFC 4469 section 5 C{cat-part}: either C{TEXT} with its literal
    (C{text}) or C{URL} with its IMAP URL as sent (C{url}); the other is
    None.  URLs are checked by the handler (L{imapd.imapurl}), because a
    bad one is a NO [BADURL], not a BAD.  C{binary}: the TEXT came as a
    C{literal8}.
    """
    text: Optional[bytes] = None
    url: Optional[bytes] = None
    binary: bool = False


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """
    One message of an APPEND (RFC 3502 MULTIAPPEND allows several).

    @ivar data: the message literal; empty when C{catenate} is used.
    @ivar binary: it came as an RFC 3516 C{literal8} (C{~{n}}), so it may
        hold binary content the store must keep exactly.
    @ivar catenate: RFC 4469 C{CATENATE (...)} parts, in order.
    """
    flags: tuple[str, ...] = ()
    date: Optional[datetime] = None
    data: bytes = b""
    binary: bool = False
    catenate: tuple[CatenatePart, ...] = ()


@dataclass(frozen=True, slots=True)
class Append(Command):
    """RFC 3501 section 6.3.11."""
    mailbox: bytes = b""
    messages: tuple[AppendMessage, ...] = ()
    name = "APPEND"


@dataclass(frozen=True, slots=True)
class Check(Command):
    """RFC 3501 section 6.4.1."""
    name = "CHECK"


@dataclass(frozen=True, slots=True)
class Close(Command):
    """RFC 3501 section 6.4.2."""
    name = "CLOSE"


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    """RFC 3691."""
    name = "UNSELECT"


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    """RFC 3501 section 6.4.3; C{uids} set for RFC 4315 UID EXPUNGE."""
    uids: Optional[SequenceSet] = None
    name = "EXPUNGE"


@dataclass(frozen=True, slots=True)
class Search(Command):
    """
    RFC 3501 section 6.4.4.  C{key} is an AND node of the top-level keys.
    C{charset} is None when absent.  C{return_opts} holds RFC 4731 RETURN
    options when given (None: a plain SEARCH response); C{partial} the
    RFC 5267 section 4.4 C{PARTIAL low:high} range, ascending;
    C{update_atts} RFC 5465 section 7's C{UPDATE (fetch-atts)}.
    """
    charset: Optional[str] = None
    key: SearchKey = field(default_factory=lambda: SearchKey("ALL"))
    uid: bool = False
    return_opts: Optional[tuple[str, ...]] = None
    partial: Optional[tuple[int, int]] = None
    update_atts: tuple[FetchAttr, ...] = ()
    name = "SEARCH"


@dataclass(frozen=True, slots=True)
class QresyncParam:
    """
    RFC 7162 section 3.2.5: SELECT/EXAMINE (QRESYNC (...)).

    @ivar known_uids: the UIDs the client knows about, or None (all).
    @ivar seq_match: C{(known-sequence-set, known-uid-set)} or None.
    """

    uidvalidity: int
    modseq: int
    known_uids: Optional[SequenceSet] = None
    seq_match: Optional[tuple[SequenceSet, SequenceSet]] = None


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    """RFC 3501 section 6.4.5 (and 6.4.8 for UID FETCH)."""
    sequence: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    attrs: tuple[FetchAttr, ...] = ()
    uid: bool = False
    changedsince: Optional[int] = None
    #: RFC 7162 section 3.2.6: the VANISHED UID FETCH modifier.
    vanished: bool = False
    name = "FETCH"


@dataclass(frozen=True, slots=True)
class Store(Command):
    """RFC 3501 section 6.4.6."""
    sequence: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    action: StoreAction = field(default_factory=lambda: StoreAction("", False, ()))
    uid: bool = False
    name = "STORE"


@dataclass(frozen=True, slots=True)
class Copy(Command):
    """RFC 3501 section 6.4.7."""
    sequence: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    mailbox: bytes = b""
    uid: bool = False
    name = "COPY"


@dataclass(frozen=True, slots=True)
class Move(Command):
    """RFC 6851."""
    sequence: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    mailbox: bytes = b""
    uid: bool = False
    name = "MOVE"


@dataclass(frozen=True, slots=True)
class Idle(Command):
    """RFC 2177.  The protocol then reads raw lines until C{DONE}."""
    name = "IDLE"


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    """RFC 2342."""
    name = "NAMESPACE"


@dataclass(frozen=True, slots=True)
class Id(Command):
    """RFC 2971; C{params} None for C{ID NIL}."""
    params: Optional[tuple[tuple[bytes, Optional[bytes]], ...]] = None
    name = "ID"


@dataclass(frozen=True, slots=True)
class Enable(Command):
    """RFC 5161; capability names upper-case."""
    capabilities: tuple[str, ...] = ()
    name = "ENABLE"


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """RFC 4978 section 3; C{mechanism} upper-case (only DEFLATE exists)."""
    mechanism: str = ""
    name = "COMPRESS"


# --------------------------------------------------------------------------
# Parser events other than commands


@dataclass(frozen=True, slots=True)
class ContinuationNeeded:
    """
    The client announced a synchronizing literal of C{size} octets that is
    within limits: the protocol must send a C{+} continuation request
    (RFC 3501 section 7.5) before the client sends it.

    In an APPEND with CATENATE, C{urls} holds the URLs that arrived since
    the previous literal (and C{tag} the command's tag): RFC 4469
    Appendix A lets the server check them first and answer a bad one with
    the tagged C{NO [BADURL ...]} in place of the continuation.  Then the
    protocol calls L{imapd.parser.Parser.refuse_literal}.  C{mailbox} is
    then the APPEND's target as sent, checked first (a missing one is
    C{NO [TRYCREATE]}, RFC 4469 section 5 and RFC 3501 section 6.3.11).
    """
    size: int
    urls: tuple[bytes, ...] = ()
    tag: Optional[str] = None
    mailbox: Optional[bytes] = None


@dataclass(frozen=True, slots=True)
class ParseError:
    """
    The input could not be parsed.  C{tag} is None when even the tag was
    unreadable (answer with an untagged BAD).  C{code} is a response code
    such as C{"TOOBIG"} or C{"CLIENTBUG"}, or None.  C{fatal}: the
    connection cannot continue (e.g. a non-synchronizing literal over the
    limit, whose bytes are already on their way): send BYE and close.
    """
    tag: Optional[str]
    reason: str
    code: Optional[str] = None
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class RawLine:
    """A line returned verbatim after L{Parser.expect_raw_line}, CRLF stripped."""
    data: bytes


Event = object  # Command | ContinuationNeeded | ParseError | RawLine
