# -*- test-case-name: tests.imapd.fetch.test_fetch_render -*-
"""
FETCH response rendering (RFC 3501 sections 6.4.5 and 7.4.2, RFC 3516
BINARY).

The handler (L{imapd.commands.fetch}) decides which messages to answer
for and whether to set C{\\Seen}; this module turns one message's data
into one untagged C{FETCH} response, byte for byte.

A FETCH of 10,000 messages runs the same attribute list 10,000 times, so
the list is compiled once (L{compile_fetch}) into one C{%}-format with the
item names built in and a tuple of small value functions; per message
there is one formatting, a call per item, and no dispatch on names.  A
batch collects its responses as fragments (L{FetchRenderer.render_into})
and joins them once: a long body is copied once, into that join.

Choices where the RFCs leave room, and why:

  - Message data (C{BODY[...]}, C{RFC822*}, C{BINARY[...]}) always travels
    as a literal, never quoted, as Dovecot does: bodies routinely hold 8-bit
    bytes, CR and LF, which a quoted string cannot carry (RFC 3501 section
    4.3), and testing every byte costs more than the literal header.
  - An empty result (a partial whose origin lies beyond the end, RFC 3501
    section 6.4.5, or an empty part) is the empty quoted string C{""}.
  - A section that names a part the message does not have is answered with
    C{NIL} (the item is an C{nstring}, RFC 3501 section 7.4.2).  Dovecot
    answers C{""} here; C{NIL} tells the client the part is absent rather
    than empty.  C{BINARY.SIZE} of such a part is C{0}, because its grammar
    (RFC 3516 section 4.2) allows only a number.
  - C{BINARY} data holding a NUL octet is sent as an RFC 3516 C{literal8}
    (C{~{n}}), which is the only form that may carry NUL.  Other message
    data (C{BODY[...]}, C{RFC822*}) has each NUL replaced by 0x80, as
    Dovecot does: a literal may not carry NUL (RFC 3501 section 9).
  - C{MODSEQ} (RFC 7162) comes from the record's C{modseq}, which the
    store's modseq log sets (L{storage.modseq}); a record without one
    (C{0}: a store that keeps no MODSEQs, which SELECT reports as
    C{NOMODSEQ}) has nothing to report and the item is left out.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from imapd import wire
from imapd.errors import CommandFailed
from imapd.parser.types import FetchAttr, Section
from storage.interfaces import MessageRecord

if TYPE_CHECKING:  # pragma: no cover
    from imapd.message import Message

__all__ = [
    "render_fetch", "compile_fetch", "needs_message", "sets_seen",
    "format_internaldate", "format_flags", "item_name", "UnknownCTE",
    "FetchRenderer", "ExpungedMessage", "expunged_record",
]


class UnknownCTE(CommandFailed):
    """
    RFC 3516 section 4.3: a BINARY fetch met a part whose
    Content-Transfer-Encoding the server cannot decode.  The command fails
    with C{NO [UNKNOWN-CTE]}; being a L{CommandFailed}, the dispatcher maps
    it without help from the handler.
    """

    def __init__(self, text: str = "Unknown Content-Transfer-Encoding") -> None:
        super().__init__(text, "UNKNOWN-CTE")


# Items whose data comes from the record or the session alone.
_NO_CONTENT = frozenset({"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE",
                         "MODSEQ", "SAVEDATE"})

_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug",
           b"Sep", b"Oct", b"Nov", b"Dec")

# RFC 3501 section 2.3.2 system flags in the order Dovecot writes them;
# clients don't care, but tests and humans like a stable order.
_SYSTEM_ORDER = {f: i for i, f in enumerate(
    ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft",
     "\\Recent"))}


# --------------------------------------------------------------------------
# Simple formatting


def format_internaldate(dt: datetime) -> bytes:
    """
    RFC 3501 C{date-time}, quoted: C{b'"17-Jul-1996 02:44:25 -0700"'}.

    The day is space-padded (C{date-day-fixed}, RFC 3501 section 9), month
    names are English whatever the locale (so not C{strftime}), and the
    zone is the one the datetime carries; a naive datetime is taken as UTC.
    Offsets are whole minutes in the grammar: seconds are dropped.
    """
    offset = dt.utcoffset()
    seconds = 0 if offset is None else int(offset.total_seconds())
    sign = b"+" if seconds >= 0 else b"-"
    minutes = abs(seconds) // 60
    return b'"%2d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        dt.day, _MONTHS[dt.month - 1], dt.year, dt.hour, dt.minute,
        dt.second, sign, minutes // 60, minutes % 60)


def _flag_order(flag: str) -> tuple[int, str]:
    rank = _SYSTEM_ORDER.get(flag)
    if rank is not None:
        return (0, "%02d" % rank)
    # Unknown backslash flags (an extension's) still precede keywords.
    return (1, flag) if flag.startswith("\\") else (2, flag)


@lru_cache(maxsize=4096)
def _format_flags_cached(flags: frozenset) -> bytes:
    return b"(" + " ".join(sorted(flags, key=_flag_order)).encode(
        "utf-8") + b")"


def format_flags(flags: Iterable[str]) -> bytes:
    """
    An RFC 3501 C{flag-list}: C{b"(\\\\Seen $Forwarded)"}.

    System flags come first in a fixed order (C{\\Answered \\Flagged
    \\Deleted \\Seen \\Draft \\Recent}), then other backslash flags, then
    keywords sorted by name.  Results are cached per flag set: a mailbox
    has few distinct sets, and FETCH FLAGS of a whole mailbox is common.
    """
    if not isinstance(flags, frozenset):
        flags = frozenset(flags)
    return _format_flags_cached(flags)


# --------------------------------------------------------------------------
# Predicates for the handler


def needs_message(attrs: Iterable[FetchAttr]) -> bool:
    """
    Whether any attribute needs the message content (so the handler must
    read the message and build a L{Message}).  FLAGS, UID, INTERNALDATE,
    RFC822.SIZE, MODSEQ and SAVEDATE come from the record; all else needs
    content.
    """
    return any(a.name not in _NO_CONTENT for a in attrs)


def sets_seen(attrs: Iterable[FetchAttr]) -> bool:
    """
    Whether fetching C{attrs} sets C{\\Seen} (RFC 3501 section 6.4.5):
    C{BODY[...]} and C{BINARY[...]} without C{.PEEK} (RFC 3516 section
    4.2), C{RFC822} and C{RFC822.TEXT}.  C{RFC822.HEADER} is defined as
    C{BODY.PEEK[HEADER]}, and C{BINARY.SIZE} reads no data: neither sets it.
    """
    for a in attrs:
        name = a.name
        if name in ("RFC822", "RFC822.TEXT"):
            return True
        if name in ("BODY", "BINARY") and a.section is not None \
                and not a.peek:
            return True
    return False


# --------------------------------------------------------------------------
# Item names


def _section_spec(section: Section) -> bytes:
    # RFC 3501 section 9 "section-spec": part numbers, then the text
    # specifier joined with a dot.
    spec = b".".join(b"%d" % n for n in section.part)
    if section.text is not None:
        text = section.text.encode("ascii")
        spec = spec + b"." + text if spec else text
        if section.text.startswith("HEADER.FIELDS"):
            # The field list is echoed as the client sent it (RFC 3501
            # section 7.4.2 wants the section spec repeated); names that
            # arrived as quoted strings go back quoted.
            spec += b" " + wire.plist(wire.astring(f) for f in section.fields)
    return spec


def item_name(attr: FetchAttr) -> bytes:
    """
    The name an attribute is answered under (RFC 3501 section 7.4.2):
    C{BODY.PEEK[...]} answers as C{BODY[...]}, C{BINARY.PEEK[...]} as
    C{BINARY[...]}, and a partial C{<offset.length>} keeps only the origin,
    C{<offset>}.
    """
    if attr.section is None or attr.name not in ("BODY", "BINARY",
                                                 "BINARY.SIZE"):
        return attr.name.encode("ascii")
    name = attr.name.encode("ascii") + b"[" + _section_spec(attr.section) \
        + b"]"
    if attr.partial is not None:
        name += b"<%d>" % attr.partial[0]
    return name


# --------------------------------------------------------------------------
# Item values
#
# Each item compiles to (name, kind, value function); the function takes
# (record, flags, message) and returns the item's value without its name.
# The kind says how the renderer puts the value on the wire:
#
#   _NUM   an int, written in decimal;
#   _WIRE  bytes already wire-encoded;
#   _DATA  message data, Optional[bytes]: NIL for None, "" when empty,
#          else a literal (see _frame);
#   _OPT   wire-encoded bytes, or None to leave the whole item out.

_NUM, _WIRE, _DATA, _OPT = "num", "wire", "data", "opt"

# A message data value up to this size is copied into its message's
# response line; a larger one travels as a fragment of its own, so that a
# body is copied once (into the batch's single write) and not once per
# step of framing.
_INLINE_MAX = 8192


def _flags_value(record, flags, message) -> bytes:
    return format_flags(flags)


def _uid_value(record, flags, message) -> int:
    return record.uid


def _size_value(record, flags, message) -> int:
    return record.size


def _internaldate_value(record, flags, message) -> bytes:
    return format_internaldate(record.internaldate)


def _savedate_value(record, flags, message) -> bytes:
    # RFC 8514 section 3: NIL where the store keeps no save dates (mbox).
    saved = record.save_date
    return wire.NIL if saved is None else format_internaldate(saved)


def _modseq_value(record, flags, message) -> Optional[bytes]:
    # RFC 7162 section 3.1.4.1: "MODSEQ (" mod-sequence-value ")".
    modseq = getattr(record, "modseq", 0)
    return b"(%d)" % modseq if modseq else None


def _envelope_value(record, flags, message) -> bytes:
    return message.envelope()


def _body_value(record, flags, message) -> bytes:
    return message.bodystructure(False)


def _bodystructure_value(record, flags, message) -> bytes:
    return message.bodystructure(True)


def _rfc822_value(record, flags, message) -> bytes:
    return message.raw


def _rfc822_header_value(record, flags, message) -> bytes:
    return message.header_bytes()


def _rfc822_text_value(record, flags, message) -> bytes:
    return message.text_bytes()


_SIMPLE_ITEMS: dict[str, tuple[str, Callable]] = {
    "FLAGS": (_WIRE, _flags_value),
    "UID": (_NUM, _uid_value),
    "RFC822.SIZE": (_NUM, _size_value),
    "INTERNALDATE": (_WIRE, _internaldate_value),
    "MODSEQ": (_OPT, _modseq_value),
    "SAVEDATE": (_WIRE, _savedate_value),
    "ENVELOPE": (_WIRE, _envelope_value),
    "BODYSTRUCTURE": (_WIRE, _bodystructure_value),
    "RFC822": (_DATA, _rfc822_value),
    "RFC822.HEADER": (_DATA, _rfc822_header_value),
    "RFC822.TEXT": (_DATA, _rfc822_text_value),
}


def _cut(data: bytes, partial: Optional[tuple[int, int]]) -> bytes:
    # RFC 3501 section 6.4.5: "<offset.length>" returns at most length
    # octets from offset; an offset past the end gives the empty string.
    if partial is None:
        return data
    offset, length = partial
    return data[offset:offset + length]


def _body_section_value(attr: FetchAttr) -> Callable:
    section = attr.section
    assert section is not None
    part, text, fields, partial = (section.part, section.text,
                                   section.fields, attr.partial)
    if partial is None:
        def value(record, flags, message) -> Optional[bytes]:
            return message.section(part, text, fields)
        return value

    def value_cut(record, flags, message) -> Optional[bytes]:
        data = message.section(part, text, fields)
        return None if data is None else _cut(data, partial)
    return value_cut


def _binary_data(message, part: tuple[int, ...]) -> Optional[bytes]:
    # Message.binary_section answers None both for a missing part and for
    # an encoding it cannot undo; the part's raw content tells the two
    # apart.  Only the unusual None case pays for the second lookup.
    data = message.binary_section(part)
    if data is None and message.section(part, None) is not None:
        # RFC 3516 section 4.3: the server "MUST" fail the command.
        raise UnknownCTE()
    return data


def _binary_value(attr: FetchAttr) -> Callable:
    section = attr.section
    assert section is not None
    part, partial = section.part, attr.partial

    def value(record, flags, message) -> bytes:
        data = _binary_data(message, part)
        if data is None:
            return wire.NIL
        data = _cut(data, partial)
        if not data:
            return b'""'
        # RFC 3516 section 4.2: only literal8 may carry NUL.
        if b"\x00" in data:
            return b"~" + wire.literal(data)
        return wire.literal(data)
    return value


def _binary_size_value(attr: FetchAttr) -> Callable:
    section = attr.section
    assert section is not None
    part = section.part

    def value(record, flags, message) -> int:
        data = _binary_data(message, part)
        return 0 if data is None else len(data)
    return value


def _preview_value(record, flags, message) -> bytes:
    # RFC 8970 section 3: a string, "" when there is no text; UTF-8, so a
    # literal unless it is plain ASCII (wire.string decides).
    text = message.preview()
    return wire.NIL if text is None else wire.string(text)


def _lazy_preview_value(record, flags, message) -> bytes:
    # PREVIEW (LAZY): what the index already has, else NIL (the client
    # asks again without LAZY when it wants it computed).  A message read
    # for other items anyway computes it (Message.cached_preview).
    text = message.cached_preview()
    return wire.NIL if text is None else wire.string(text)


def _item(attr: FetchAttr) -> tuple[str, Callable]:
    """The (kind, value function) of one attribute."""
    name = attr.name
    if name == "PREVIEW":
        return _WIRE, (_lazy_preview_value if attr.lazy else _preview_value)
    if name == "BODY":
        if attr.section is None:
            return _WIRE, _body_value
        return _DATA, _body_section_value(attr)
    if name == "BINARY":
        return _WIRE, _binary_value(attr)
    if name == "BINARY.SIZE":
        return _NUM, _binary_size_value(attr)
    try:
        return _SIMPLE_ITEMS[name]
    except KeyError:
        raise ValueError("Unknown FETCH attribute %r" % (name,)) from None


# --------------------------------------------------------------------------
# Messages expunged by another session


#: INTERNALDATE shown for an expunged message whose date was never read.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ExpungedMessage:
    """
    What FETCH shows of a message another session expunged after this one
    last synced, when its content can no longer be read (RFC 2180 section
    4.1 lets the server answer with what it still has, and RFC 5530
    allows C{OK [EXPUNGEISSUED]} for the command).  Dovecot 2.3 answers
    the same way, checked against a private instance: every section,
    C{RFC822*} and C{BINARY[...]} is C{NIL}, C{BINARY.SIZE} is 0, the
    ENVELOPE has every field C{NIL}; ENVELOPE, BODY and BODYSTRUCTURE come
    from the per-node index when it has them (Dovecot uses its cache).
    Without a cached structure, BODY and BODYSTRUCTURE are those of an
    empty message, the only structure that claims nothing.

    @param cached: the message's index row (L{imapd.cache}), or None.
    """

    __slots__ = ("_cached",)

    raw = None

    def __init__(self, cached: Optional[dict] = None) -> None:
        self._cached = cached or {}

    def envelope(self) -> bytes:
        return self._cached.get("envelope") or b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"

    def bodystructure(self, extended: bool) -> bytes:
        value = self._cached.get("bodystructure" if extended else "body")
        if value is None:
            from imapd.message import Message
            value = Message(b"").bodystructure(extended)
        return value

    def header_bytes(self) -> None:
        return None

    def text_bytes(self) -> None:
        return None

    def section(self, part, text, fields=()) -> None:
        return None

    def preview(self) -> Optional[str]:
        return self._cached.get("preview")

    cached_preview = preview

    def binary_section(self, part) -> None:
        return None


def expunged_record(record: MessageRecord) -> MessageRecord:
    """
    C{record} with the lazy INTERNALDATE and RFC822.SIZE fixed: what was
    learnt stays, what can no longer be read from the store is the epoch
    and 0, as Dovecot 2.3 shows them.
    """
    date = record.known_internaldate
    size = record.known_size
    return record.replace(internaldate=date if date is not None else _EPOCH,
                          size=size if size is not None else 0)


# --------------------------------------------------------------------------
# Compiled attribute lists


class _Big:
    # A framed literal kept out of its line: the "{n}" header and the data.
    __slots__ = ("head", "data")

    def __init__(self, head: bytes, data: bytes) -> None:
        self.head = head
        self.data = data


def _frame(data: Optional[bytes]):
    # A _DATA value on the wire: bytes, or a _Big for a long literal.
    # Message data is always a literal, but "" for nothing and NIL for a
    # part that is not there (see the module docstring).  A literal may
    # not hold NUL (RFC 3501 section 9, CHAR8); a message appended as
    # literal8 (RFC 3516) can, so BODY[] and RFC822* send NUL as 0x80, as
    # Dovecot does (imap-msgpart.c), keeping sizes; BINARY[] returns the
    # octets exactly, in a literal8 (_binary_value).
    if data is None:
        return wire.NIL
    if not data:
        return b'""'
    if b"\x00" in data:
        data = data.replace(b"\x00", b"\x80")
    if len(data) > _INLINE_MAX:
        return _Big(b"{%d}\r\n" % len(data), data)
    return b"{%d}\r\n%s" % (len(data), data)


class FetchRenderer:
    """
    A compiled FETCH attribute list: call it with one message's data to
    get the whole untagged response, or use L{render_into} to add the
    response to a batch's list of fragments.

    Where it can, the list compiles to one C{%}-format with the item names
    built in (C{b"* %d FETCH (UID %d BODYSTRUCTURE %s)\\r\\n"}), so a
    message costs one formatting and a call per item.  MODSEQ (which may be
    left out) and literals too long to copy into a line go the general way.

    @ivar needs_message: see L{needs_message}.
    @ivar sets_seen: see L{sets_seen}.
    @ivar needs_flags: whether the flags argument is used at all (FLAGS is
        asked for); when it is not, callers may pass None.
    """

    __slots__ = ("_names", "_kinds", "_fns", "_data_at", "_format",
                 "render_into", "needs_message", "sets_seen", "needs_flags")

    def __init__(self, attrs: tuple[FetchAttr, ...], include_uid: bool):
        names: list[bytes] = []
        kinds: list[str] = []
        fns: list[Callable] = []
        seen: set[FetchAttr] = set()
        if include_uid and not any(a.name == "UID" for a in attrs):
            # RFC 3501 section 6.4.8: UID FETCH answers with UID whether
            # asked or not.  First, where clients look for it.
            names.append(b"UID")
            kinds.append(_NUM)
            fns.append(_uid_value)
        for attr in attrs:
            # A client asking twice for one item gets it once (Dovecot
            # does the same); the response stays well-formed either way.
            if attr in seen:
                continue
            seen.add(attr)
            kind, fn = _item(attr)
            names.append(item_name(attr))
            kinds.append(kind)
            fns.append(fn)
        self._names = tuple(names)
        self._kinds = tuple(kinds)
        self._fns = tuple(fns)
        self._data_at = tuple(i for i, k in enumerate(kinds) if k == _DATA)
        self.needs_message = needs_message(attrs)
        self.sets_seen = sets_seen(attrs)
        self.needs_flags = _flags_value in fns
        if _OPT in kinds:
            self._format = None
            self.render_into = self._render_general
            return
        # Item names may hold "%" (a quoted header field name); it must
        # not be read as a conversion.
        self._format = b"* %d FETCH (" + b" ".join(
            name.replace(b"%", b"%%") + (b" %d" if kind == _NUM else b" %s")
            for name, kind in zip(names, kinds)) + b")\r\n"
        if not self._data_at:
            self.render_into = self._plain_renderer()
        elif len(fns) == 2 and self._data_at == (1,):
            self.render_into = self._data_renderer2()
        else:
            self.render_into = self._render_data

    def _plain_renderer(self) -> Callable:
        # Unrolled for the common short lists: no list, no unpacking.
        fmt, fns = self._format, self._fns
        if len(fns) == 1:
            (f0,) = fns

            def render1(out, seq, record, flags, message) -> None:
                out.append(fmt % (seq, f0(record, flags, message)))
            return render1
        if len(fns) == 2:
            f0, f1 = fns

            def render2(out, seq, record, flags, message) -> None:
                out.append(fmt % (seq, f0(record, flags, message),
                                  f1(record, flags, message)))
            return render2

        def render(out, seq, record, flags, message) -> None:
            out.append(fmt % (seq, *[f(record, flags, message) for f in fns]))
        return render

    def _data_renderer2(self) -> Callable:
        # Unrolled for "UID plus one section" (a client's header fetch,
        # a body download): no value list, framing inline.
        fmt, emit = self._format, self._emit
        f0, f1 = self._fns

        def render(out, seq, record, flags, message) -> None:
            v0 = f0(record, flags, message)
            data = f1(record, flags, message)
            if data and len(data) <= _INLINE_MAX and b"\x00" not in data:
                out.append(fmt % (seq, v0, b"{%d}\r\n%s" % (len(data), data)))
                return
            v1 = _frame(data)
            if v1.__class__ is _Big:
                emit(out, seq, [v0, v1])
            else:
                out.append(fmt % (seq, v0, v1))
        return render

    def _render_data(self, out: list, seq: int, record: MessageRecord,
                     flags: frozenset, message) -> None:
        # Every value is computed before anything is added to out: an
        # exception (MessageExpunged, UnknownCTE) leaves no half response.
        values = [f(record, flags, message) for f in self._fns]
        big = False
        for i in self._data_at:
            value = values[i] = _frame(values[i])
            if value.__class__ is _Big:
                big = True
        if big:
            self._emit(out, seq, values)
        else:
            out.append(self._format % (seq, *values))

    def _render_general(self, out: list, seq: int, record: MessageRecord,
                        flags: frozenset, message) -> None:
        values = [f(record, flags, message) for f in self._fns]
        for i in self._data_at:
            values[i] = _frame(values[i])
        self._emit(out, seq, values)

    def _emit(self, out: list, seq: int, values: list) -> None:
        # The general form: items joined by spaces, an _OPT item of None
        # left out, a long literal's data added as a fragment of its own.
        line = [b"* %d FETCH (" % seq]
        sep = b""
        for name, kind, value in zip(self._names, self._kinds, values):
            if value is None and kind == _OPT:
                continue
            line.append(sep)
            sep = b" "
            line.append(name)
            line.append(b" ")
            if kind == _NUM:
                line.append(b"%d" % value)
            elif value.__class__ is _Big:
                line.append(value.head)
                out.append(b"".join(line))
                out.append(value.data)
                line = []
            else:
                line.append(value)
        line.append(b")\r\n")
        out.append(b"".join(line))

    def __call__(self, seq: int, record: MessageRecord, flags: frozenset,
                 message: "Optional[Message]" = None) -> bytes:
        """
        Render C{b"* <seq> FETCH (<items>)\\r\\n"}.

        @raises UnknownCTE: a BINARY item met an undecodable part.
        """
        out: list[bytes] = []
        self.render_into(out, seq, record, flags, message)
        return out[0] if len(out) == 1 else b"".join(out)


@lru_cache(maxsize=256)
def compile_fetch(attrs: tuple[FetchAttr, ...],
                  include_uid: bool = False) -> FetchRenderer:
    """
    Compile an attribute list once per command (cached across commands
    too: clients repeat the same few lists).

    @raises ValueError: an attribute this module does not know.
    """
    return FetchRenderer(tuple(attrs), include_uid)


# A small cache on identity: within one FETCH command every call passes
# the very same tuple (or one of two, when the handler adds FLAGS for
# messages whose \Seen it just set), which spares hashing the attributes
# per message.  Each entry keeps its tuple alive, so an id is never reused
# while its entry exists; the dict is replaced whole, never mutated, so
# threads see either the old or the new one.
_by_id: dict = {}
_BY_ID_MAX = 8


def render_fetch(seq: int, attrs: tuple[FetchAttr, ...],
                 record: MessageRecord, flags: frozenset,
                 message: "Optional[Message]", *,
                 include_uid: bool) -> bytes:
    """
    The whole untagged FETCH response for one message,
    C{b"* <seq> FETCH (<items>)\\r\\n"} (RFC 3501 section 7.4.2).

    @param flags: the session's view of the flags, C{\\Recent} included.
    @param message: the content; None is allowed only when
        L{needs_message}C{(attrs)} is False.
    @param include_uid: True for UID FETCH (RFC 3501 section 6.4.8).
    @raises UnknownCTE: a BINARY item met an undecodable part; the
        command must fail with C{NO [UNKNOWN-CTE]}.
    """
    global _by_id
    entry = _by_id.get((id(attrs), include_uid))
    if entry is not None and entry[0] is attrs:
        renderer = entry[1]
    else:
        renderer = compile_fetch(attrs, include_uid)
        cache = dict(_by_id) if len(_by_id) < _BY_ID_MAX else {}
        cache[(id(attrs), include_uid)] = (attrs, renderer)
        _by_id = cache
    return renderer(seq, record, flags, message)
