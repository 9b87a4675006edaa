# -*- test-case-name: tests.imapd.search.test_search_match -*-
"""
SEARCH evaluation (RFC 3501 section 6.4.4, RFC 5032 YOUNGER/OLDER,
RFC 5182 C{$}, RFC 7162 MODSEQ).

A search program (a tree of L{SearchKey}) is compiled once into nested
closures, L{compile_search}; the handler then calls the result once per
message with a L{SearchItem}.  Compiling does the work that doesn't
depend on the message: it decodes and case-folds strings, resolves
C{CHARSET}, and orders the children of each AND so that cheap tests run
first.  C{UNSEEN FROM x} thus checks the flag, and reads the message only
for unseen ones: the content is behind L{SearchItem.message_loader}, which
is called at most once per item and only by a key that needs it.

Choices where the RFCs leave room, and why:

  - String matching is case-insensitive in the Unicode sense
    (L{imapd.sort.collate.search_fold}: C{str.casefold} then NFKD, on both
    sides), on RFC 2047 decoded header values and on decoded body text,
    because users type what they read, not what is on the wire.  This is
    RFC 5255 I18NLEVEL=1's C{i;unicode-casemap} (RFC 5051) for substring
    matching, in every script.
  - An empty string (C{FROM ""}, C{HEADER X-Foo ""}) matches every message
    that has the field, which RFC 3501 spells out for HEADER.
  - SENTBEFORE/SENTON/SENTSINCE fall back to INTERNALDATE for a message
    whose Date header is missing or unparsable, as Dovecot does, so such
    messages still land in date ranges somewhere.
  - Date keys compare calendar dates in each timestamp's own zone,
    disregarding time and zone (RFC 3501 section 6.4.4).
  - KEYWORD and UNKEYWORD compare case-insensitively (RFC 9051 section
    2.3.2 makes keywords case-insensitive; RFC 3501 was silent).
  - MODSEQ (RFC 7162) uses the record's C{modseq}; a record without one
    (C{0}: the store keeps no MODSEQs) fails the command rather than
    silently matching nothing.
  - Without a CHARSET, and for US-ASCII, strings are taken as UTF-8: many
    clients send UTF-8 without saying so, and ASCII is a subset.  Bytes
    that are not UTF-8 fall back to ISO-8859-1 rather than failing.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from imapd.errors import BadCommand, CommandFailed
from imapd.parser.types import SearchKey, SequenceSet
from imapd.sort.collate import search_fold
from storage.interfaces import MessageRecord

if TYPE_CHECKING:  # pragma: no cover
    from imapd.fts.query import FtsSearch
    from imapd.message import Message

__all__ = [
    "SearchItem", "Matcher", "BadCharset", "compile_search",
    "needs_message", "SUPPORTED_CHARSETS", "KNOWN_CHARSETS", "SEARCH_COLUMNS",
    "KEY_COLUMNS", "field_text", "needs_body", "header_text", "needle",
]

#: What SEARCH names in C{[BADCHARSET (...)]}: the charsets every client
#: may rely on.  Others known to L{imapd.charset} work too, but the list a
#: server gives is advice, not a promise (RFC 3501 section 7.1).
SUPPORTED_CHARSETS: tuple[str, ...] = ("US-ASCII", "UTF-8")

#: The longer list SORT and THREAD name (RFC 5256 section 3): the charsets
#: clients and webmail actually send, every one resolved by
#: L{imapd.charset.lookup}, which also knows their aliases (C{latin1},
#: C{cp1252}, C{x-sjis}, ...).
KNOWN_CHARSETS: tuple[str, ...] = (
    "US-ASCII", "UTF-8",
    "ISO-8859-1", "ISO-8859-2", "ISO-8859-3", "ISO-8859-4", "ISO-8859-5",
    "ISO-8859-6", "ISO-8859-7", "ISO-8859-8", "ISO-8859-9", "ISO-8859-10",
    "ISO-8859-11", "ISO-8859-13", "ISO-8859-14", "ISO-8859-15",
    "ISO-8859-16",
    "WINDOWS-1250", "WINDOWS-1251", "WINDOWS-1252", "WINDOWS-1253",
    "WINDOWS-1254", "WINDOWS-1255", "WINDOWS-1256", "WINDOWS-1257",
    "WINDOWS-1258", "KOI8-R", "KOI8-U",
    "ISO-2022-JP", "SHIFT_JIS", "EUC-JP", "GB2312", "GBK", "GB18030",
    "BIG5", "EUC-KR", "KS_C_5601-1987",
)


class BadCharset(CommandFailed):
    """
    RFC 3501 section 6.4.4: the CHARSET of a SEARCH is not supported.  The
    command fails with C{NO [BADCHARSET (US-ASCII UTF-8)]} (section 7.1);
    being a L{CommandFailed}, the dispatcher maps it without help.

    @ivar supported: the charset names offered to the client.
    """

    def __init__(self, supported: Iterable[str] = SUPPORTED_CHARSETS,
                 charset: str = "") -> None:
        self.supported = tuple(supported)
        self.charset = charset
        text = "Unsupported charset %s" % charset if charset \
            else "Unsupported charset"
        super().__init__(
            text, "BADCHARSET (%s)" % " ".join(self.supported))


@dataclass(slots=True)
class SearchItem:
    """
    One message as a search sees it.

    @ivar seq: its sequence number in the session.
    @ivar record: what the store knows without reading it.
    @ivar flags: the session's view of its flags, C{\\Recent} included.
    @ivar max_seq: the largest sequence number (C{*} in a sequence set).
    @ivar max_uid: the largest UID (C{*} in C{UID} sets).
    @ivar message_loader: a zero-argument callable returning the
        L{Message}, called at most once and only if a key needs content;
        None when the caller knows no key does (L{needs_message}).
    @ivar now: the time YOUNGER/OLDER count back from; None means the
        time the search was compiled.
    @ivar cached: the message's index row (L{imapd.cache.SearchCache}),
        C{{}} when it has none; None when no index is used.
    @ivar computed: columns computed here for the index to keep (the
        header block, L{field_text}s); None when no index is used.
    @ivar fts: the full-text index as this search sees it
        (L{imapd.fts.query.FtsSearch}), which answers BODY and TEXT for
        the messages it has indexed; None when there is none.
    """

    seq: int
    record: MessageRecord
    flags: frozenset
    max_seq: int
    max_uid: int
    message_loader: Optional[Callable[[], "Message"]] = None
    now: Optional[datetime] = None
    cached: Optional[dict] = None
    computed: Optional[dict] = None
    fts: Optional["FtsSearch"] = None
    _message: Optional["Message"] = field(default=None, init=False,
                                          repr=False, compare=False)
    _header: Optional["Message"] = field(default=None, init=False,
                                         repr=False, compare=False)

    @property
    def message(self) -> "Message":
        """The message content, loaded on first use and then kept."""
        m = self._message
        if m is None:
            if self.message_loader is None:
                raise ValueError("SearchItem has no message_loader")
            m = self._message = self.message_loader()
            if self.computed is not None and (self.cached or {}).get("header") is None:
                # In memory anyway: the index keeps the header block, so
                # the next header search needs no file.
                self.computed.setdefault("header", m.header_bytes())
        return m

    @property
    def header_message(self) -> "Message":
        """
        A L{Message} that answers the top-level header questions
        (C{header_fields}, C{decoded_header}, C{sent_date}) exactly as
        L{message} does: the cached header block when the index has it,
        else the message itself.  A header block alone parses to the same
        top-level header, since its end is where the whole message's
        header ends.
        """
        m = self._header
        if m is None:
            block = (self.cached or {}).get("header")
            if block is not None and self._message is None:
                from imapd.message import Message
                m = Message(block)
            else:
                m = self.message
            self._header = m
        return m

    def field_text(self, name: str) -> str:
        """
        The searchable text of header field C{name} (one of
        L{SEARCH_COLUMNS}): each decoded value folded by L{search_fold}
        and prefixed with NUL, or "" when the field is absent.  A needle
        without NUL is a substring of this text exactly when it is a
        substring of one of the values (a NUL marks every boundary), so
        one C{in} test stands for the per-value loop.  Taken from the
        index row when it has it; computed otherwise, and kept in
        L{computed} for writing back.
        """
        column = SEARCH_COLUMNS[name]
        cached = self.cached
        if cached is not None:
            text = cached.get(column)
            if text is not None:
                return text
        computed = self.computed
        if computed is not None:
            text = computed.get(column)
            if text is not None:
                return text
        text = field_text(self.header_message, name)
        if computed is not None:
            computed[column] = text
        return text


def field_text(message: "Message", name: str) -> str:
    """
    See L{SearchItem.field_text}.  For the address fields the decoded
    values are followed by each address written out (L{_address_forms}).
    """
    values = message.decoded_header(name)
    if name in _ADDRESS_FIELDS and values:
        values.extend(_address_forms(message, name))
    return "".join("\0" + search_fold(v) for v in values)


#: Header fields holding address lists (RFC 5322 section 3.6.3).
_ADDRESS_FIELDS = frozenset({"From", "To", "Cc", "Bcc"})


def _address_forms(message: "Message", name: str) -> Iterable[str]:
    # RFC 3501 section 6.4.4 asks for a substring of the field, and
    # clients search for the address the way they show it: "addr",
    # "Name <addr>" or "<addr>".  One address may be written as any of
    # "addr", "Name <addr>" or the older "addr (Comment)" (RFC 5322
    # section 3.4, the comment read as the name, as ENVELOPE does), so
    # beside the field as written each address is searched in every form:
    # "Name <addr>" and "addr (Name)" when it has a name, "<addr>" when
    # not.  Group markers and addresses without a local part or domain
    # add nothing.
    from imapd.charset import decode_words
    from imapd.message._address import MISSING_DOMAIN, MISSING_MAILBOX, parse_addresses

    for raw in message.header_fields(name):
        for a in parse_addresses(raw):
            if a.host in (None, MISSING_DOMAIN) or a.mailbox in (None, MISSING_MAILBOX):
                continue
            addr = decode_words(a.mailbox + b"@" + a.host, "latin-1")
            display = decode_words(a.name, "latin-1").strip() if a.name else ""
            if display:
                yield f"{display} <{addr}>"
                yield f"{addr} ({display})"
            else:
                yield f"<{addr}>"


Matcher = Callable[[SearchItem], bool]


# --------------------------------------------------------------------------
# Costs: used to order the children of AND (and OR) cheap-first.

_CHEAP = 1        # flags, sequence numbers, UIDs, size, INTERNALDATE
_HEADER = 10      # needs the message, header only
_TEXT = 100       # needs the decoded body

_CONTENT_KEYS = frozenset({
    "BCC", "CC", "FROM", "SUBJECT", "TO", "HEADER", "BODY", "TEXT",
    "SENTBEFORE", "SENTON", "SENTSINCE",
})


def needs_body(key: SearchKey) -> bool:
    """
    Whether C{key} may need more of a message than its header: only BODY
    and TEXT (RFC 3501 section 6.4.4) look past the header block.
    """
    if key.name in ("BODY", "TEXT"):
        return True
    return any(needs_body(c) for c in key.children)


def needs_message(key: SearchKey) -> bool:
    """
    Whether evaluating C{key} may need message content: header, body,
    text and sent-date keys do; flag, size, date, UID and sequence keys
    don't.  When False the handler may pass no C{message_loader} at all.
    """
    if key.name in _CONTENT_KEYS:
        return True
    return any(needs_message(c) for c in key.children)


# --------------------------------------------------------------------------
# Charsets


def _charset_decoder(charset: Optional[str]) -> Callable[[bytes], str]:
    # RFC 3501 section 6.4.4: the CHARSET names how the strings of the
    # search program are encoded.
    upper = None if charset is None else charset.upper()
    if upper in (None, "US-ASCII", "ASCII", "UTF-8", "UTF8"):
        def decode(data: bytes) -> str:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data.decode("latin-1")
        return decode
    from imapd import charset as charsets

    if charsets.lookup(charset) is None:
        raise BadCharset(KNOWN_CHARSETS, charset or "")
    return lambda data: charsets.decode(data, charset)


def _needle(value: object, decode: Callable[[bytes], str]) -> str:
    text = value if isinstance(value, str) else decode(bytes(value))
    return search_fold(text)


def needle(value: object, charset: Optional[str]) -> str:
    """
    A search string as the matcher compares it: decoded from C{charset}
    (the SEARCH C{CHARSET}) and folded (L{search_fold}).  The full-text
    index is asked with exactly this (L{imapd.fts.query}).
    """
    return _needle(value, _charset_decoder(charset))


def _ascii(value: object) -> str:
    return value if isinstance(value, str) \
        else bytes(value).decode("ascii", "replace")


# --------------------------------------------------------------------------
# Leaf matchers


def _flag(name: str, present: bool = True) -> Matcher:
    if present:
        return lambda item: name in item.flags
    return lambda item: name not in item.flags


_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
    "RECENT": ("\\Recent", True), "OLD": ("\\Recent", False),
}


def _new(item: SearchItem) -> bool:
    # RFC 3501 section 6.4.4: NEW is "(RECENT UNSEEN)".
    flags = item.flags
    return "\\Recent" in flags and "\\Seen" not in flags


def _keyword(value: object, present: bool) -> Matcher:
    keyword = _ascii(value)
    folded = keyword.casefold()

    def has(item: SearchItem) -> bool:
        flags = item.flags
        if keyword in flags:
            return True
        for f in flags:
            if f.casefold() == folded:
                return True
        return False
    if present:
        return has
    return lambda item: not has(item)


def _merge(ranges: Iterable[tuple[int, int]]) -> tuple[list[int], list[int]]:
    # Sorted, non-overlapping intervals, as two lists for bisect.
    lows: list[int] = []
    highs: list[int] = []
    for a, b in sorted(ranges):
        if highs and a <= highs[-1] + 1:
            highs[-1] = max(highs[-1], b)
        else:
            lows.append(a)
            highs.append(b)
    return lows, highs


def _seqset(seqset: SequenceSet, uid: bool,
            saved_uids: Optional[frozenset[int]]) -> Matcher:
    if seqset.saved:
        # RFC 5182 section 2.1: "$" is the saved result, which is a set
        # of messages (kept as UIDs); no saved result means no message.
        saved = saved_uids or frozenset()
        return lambda item: item.record.uid in saved

    # The intervals depend on "*", that is on the mailbox size, which is
    # the same for every item of one search: resolve once per distinct
    # size and keep the answer.
    cache: dict[int, tuple[list[int], list[int]]] = {}

    def intervals(largest: int) -> tuple[list[int], list[int]]:
        found = cache.get(largest)
        if found is None:
            resolved = []
            for low, high in seqset.ranges:
                a = largest if low is None else low
                b = largest if high is None else high
                resolved.append((a, b) if a <= b else (b, a))
            found = cache[largest] = _merge(resolved)
        return found

    def contains(value: int, largest: int) -> bool:
        lows, highs = intervals(largest)
        i = bisect.bisect_right(lows, value) - 1
        return i >= 0 and value <= highs[i]

    if uid:
        return lambda item: contains(item.record.uid, item.max_uid)
    return lambda item: contains(item.seq, item.max_seq)


def _local_date(dt: datetime) -> date:
    # The date in the timestamp's own zone (RFC 3501 section 6.4.4:
    # "disregarding time and timezone").
    return dt.date()


_COMPARE: dict[str, Callable[[date, date], bool]] = {
    "BEFORE": lambda d, v: d < v,
    "ON": lambda d, v: d == v,
    "SINCE": lambda d, v: d >= v,
}


def _internal_date(op: str, value: date) -> Matcher:
    if op == "BEFORE":
        return lambda item: item.record.internaldate.date() < value
    if op == "ON":
        return lambda item: item.record.internaldate.date() == value
    return lambda item: item.record.internaldate.date() >= value


def _saved_date(op: str, value: date) -> Matcher:
    # RFC 8514 section 4.3, "disregarding time and timezone" like BEFORE.
    # A store without save dates (mbox) is searched on INTERNALDATE, the
    # nearest thing it keeps; SAVEDATESUPPORTED tells the client so.
    compare = _COMPARE[op]

    def match(item: SearchItem) -> bool:
        record = item.record
        saved = record.save_date
        return compare((saved if saved is not None else record.internaldate).date(), value)
    return match


def _sent_date(op: str, value: date) -> Matcher:
    compare = _COMPARE[op]

    def match(item: SearchItem) -> bool:
        sent = None
        try:
            sent = item.header_message.sent_date()
        except (ValueError, TypeError, OverflowError):
            pass
        if sent is None:
            # No usable Date header: fall back to INTERNALDATE as Dovecot
            # does (see the module docstring).
            sent = item.record.internaldate
        return compare(_local_date(sent), value)
    return match


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def _interval(op: str, seconds: int, compiled_at: datetime) -> Matcher:
    # RFC 5032: YOUNGER n holds within the last n seconds, OLDER n beyond
    # them; the two are complements.
    span = timedelta(seconds=seconds)

    def age(item: SearchItem) -> timedelta:
        now = compiled_at if item.now is None else _aware(item.now)
        return now - _aware(item.record.internaldate)
    if op == "YOUNGER":
        return lambda item: age(item) <= span
    return lambda item: age(item) > span


def _modseq(value: int) -> Matcher:
    # RFC 7162 section 3.1.5: mod-sequence equal to or greater than the
    # value.  Stores that keep no mod-sequences give records without one;
    # answering "no match" would hide changes from a resynchronizing
    # client, so the command fails instead.
    def match(item: SearchItem) -> bool:
        modseq = getattr(item.record, "modseq", 0)
        if not modseq:
            raise CommandFailed("This mailbox keeps no mod-sequences")
        return modseq >= value
    return match


def _contains_any(values: Iterable[str], needle: str) -> bool:
    for v in values:
        if needle in search_fold(v):
            return True
    return False


def _header(name: str, needle: str) -> Matcher:
    if not needle:
        return lambda item: bool(item.header_message.header_fields(name))
    return lambda item: _contains_any(item.header_message.decoded_header(name),
                                      needle)


def _field(name: str, needle: str) -> Matcher:
    # BCC, CC, FROM, SUBJECT, TO: one substring test on the field's
    # searchable text (L{SearchItem.field_text}), which the index keeps.
    if "\0" in needle:
        # The NUL separators would make a needle with NUL match across
        # values: search value by value instead.
        return _header(name, needle)
    if not needle:
        return lambda item: item.field_text(name) != ""
    return lambda item: needle in item.field_text(name)


def _body(needle: str) -> Matcher:
    # decoded_text() yields the text parts one by one; no match spans two
    # parts, and the search stops reading at the first hit.  A message the
    # full-text index has is answered from it: the index holds the same
    # folded values (L{imapd.fts.extract}).
    def match(item: SearchItem) -> bool:
        known = _from_index(item, "BODY", needle)
        if known is not None:
            return known
        return _contains_any(item.message.decoded_text(), needle)
    return match


def _from_index(item: SearchItem, kind: str, needle: str) -> Optional[bool]:
    # The full-text index's answer for a message it has, or None: read it.
    fts = item.fts
    return None if fts is None else fts.answer(kind, needle, item.record)


_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


def _field_names(header: bytes) -> list[str]:
    # Every field name of the header, once each, in order of appearance.
    # Continuation lines start with white space and so don't match.
    seen: dict[str, None] = {}
    for m in _FIELD_NAME.finditer(header):
        seen.setdefault(m.group(1).decode("ascii").lower(), None)
    return list(seen)


def header_text(message: "Message") -> Iterable[str]:
    """
    The top-level header as SEARCH TEXT reads it: each field as C{"name:
    decoded value"}, the name in lower case.
    """
    for name in _field_names(message.header_bytes()):
        for value in message.decoded_header(name):
            yield "%s: %s" % (name, value)


def _text(needle: str) -> Matcher:
    # RFC 3501 section 6.4.4 TEXT: "in the header or body".  Headers are
    # searched as "name: decoded value", so a search for "subject: hi"
    # works as users expect; the body's own headers (MIME parts,
    # encapsulated messages) are searched last, as the rarest hit.
    def match(item: SearchItem) -> bool:
        known = _from_index(item, "TEXT", needle)
        if known is not None:
            return known
        message = item.message
        return _contains_any(header_text(message), needle) \
            or _contains_any(message.decoded_text(), needle) \
            or _contains_any(message.part_header_text(), needle)
    return match


_HEADER_KEYS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From",
                "SUBJECT": "Subject", "TO": "To"}

#: The index column (L{index.SEARCH_FIELDS}) holding each field's
#: L{SearchItem.field_text}, by field name and by search key.
SEARCH_COLUMNS = {name: "search_" + key.lower() for key, name in _HEADER_KEYS.items()}
KEY_COLUMNS = {key: SEARCH_COLUMNS[name] for key, name in _HEADER_KEYS.items()}


# --------------------------------------------------------------------------
# Compilation


def _true(item: SearchItem) -> bool:
    return True


class _Compiler:
    def __init__(self, decode: Callable[[bytes], str],
                 saved_uids: Optional[frozenset[int]],
                 now: datetime) -> None:
        self.decode = decode
        self.saved_uids = saved_uids
        self.now = now

    def compile(self, key: SearchKey) -> tuple[Matcher, int]:
        """The matcher for C{key} and its cost."""
        name = key.name
        value = key.value
        if name == "AND":
            return self._and(key.children)
        if name == "OR":
            compiled = sorted((self.compile(c) for c in key.children),
                              key=lambda mc: mc[1])
            matchers = tuple(m for m, _ in compiled)
            cost = sum(c for _, c in compiled)
            if len(matchers) == 2:
                a, b = matchers
                return (lambda item: a(item) or b(item)), cost
            return (lambda item: any(m(item) for m in matchers)), cost
        if name == "NOT":
            (child,) = key.children
            m, cost = self.compile(child)
            return (lambda item: not m(item)), cost
        if name == "ALL":
            return _true, 0
        if name in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[name]
            return _flag(flag, present), _CHEAP
        if name == "NEW":
            return _new, _CHEAP
        if name in ("KEYWORD", "UNKEYWORD"):
            return _keyword(value, name == "KEYWORD"), _CHEAP
        if name == "SEQSET":
            return _seqset(value, False, self.saved_uids), _CHEAP
        if name == "UID":
            return _seqset(value, True, self.saved_uids), _CHEAP
        if name == "LARGER":
            n = int(value)
            return (lambda item: item.record.size > n), _CHEAP
        if name == "SMALLER":
            n = int(value)
            return (lambda item: item.record.size < n), _CHEAP
        if name in ("BEFORE", "ON", "SINCE"):
            return _internal_date(name, value), _CHEAP
        if name in ("SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"):
            return _saved_date(name[5:], value), _CHEAP
        if name == "SAVEDATESUPPORTED":
            # RFC 8514 section 4.3: every message where the mailbox keeps
            # save dates, none where it does not.
            return (lambda item: item.record.has_save_dates), _CHEAP
        if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            return _sent_date(name[4:], value), _HEADER
        if name in ("YOUNGER", "OLDER"):
            return _interval(name, int(value), self.now), _CHEAP
        if name == "MODSEQ":
            return _modseq(int(value)), _CHEAP
        if name in _HEADER_KEYS:
            return (_field(_HEADER_KEYS[name], _needle(value, self.decode)),
                    _HEADER)
        if name == "HEADER":
            field_name, string = value
            return (_header(_ascii(field_name), _needle(string, self.decode)),
                    _HEADER)
        if name == "BODY":
            return _body(_needle(value, self.decode)), _TEXT
        if name == "TEXT":
            return _text(_needle(value, self.decode)), _TEXT + _HEADER
        raise BadCommand("Unsupported search key %s" % name)

    def _and(self, children: Iterable[SearchKey]) -> tuple[Matcher, int]:
        # Cheap tests first; sorted() is stable, so equal costs keep the
        # client's order.
        compiled = sorted((self.compile(c) for c in children),
                          key=lambda mc: mc[1])
        matchers = tuple(m for m, _ in compiled if m is not _true)
        cost = sum(c for _, c in compiled)
        if not matchers:
            return _true, cost
        if len(matchers) == 1:
            return matchers[0], cost
        if len(matchers) == 2:
            a, b = matchers
            return (lambda item: a(item) and b(item)), cost

        def match(item: SearchItem) -> bool:
            for m in matchers:
                if not m(item):
                    return False
            return True
        return match, cost


def compile_search(key: SearchKey, charset: Optional[str] = None, *,
                   saved_uids: Optional[frozenset[int]] = None,
                   now: Optional[datetime] = None) -> Matcher:
    """
    Compile a search program into a predicate over L{SearchItem}s.

    @param key: the program (usually the C{AND} node of L{Search.key}).
    @param charset: the SEARCH C{CHARSET} argument, None if absent.
    @param saved_uids: the RFC 5182 saved result, for C{$}.
    @param now: the reference time for YOUNGER/OLDER when items carry
        none; defaults to the current time.
    @raises BadCharset: C{charset} is unknown to the charset layer.
    @raises BadCommand: a key this module does not implement.
    """
    decode = _charset_decoder(charset)
    compiler = _Compiler(decode, saved_uids,
                         _aware(now) if now is not None
                         else datetime.now(timezone.utc))
    matcher, _ = compiler.compile(key)
    return matcher
