# -*- test-case-name: tests.storage.mbox.test_mbox_fixture -*-
"""
What one parse of an mbox file yields (L{MboxState}): UIDVALIDITY, the
last UID given, and for every message its UID, flags, INTERNALDATE, size
and byte spans.  L{parse} works on bytes only (no I/O).

UIDs (DESIGN.md rule 1) come from the file: C{X-UID} is accepted while it
grows along the file and stays within the last UID C{X-IMAPbase} records
(as Dovecot requires); a message without one, or with one that does not
grow (inserted or duplicated by another program) or lies beyond the base
(a header that came with mail from outside), gets
the next UIDs after everything the file has ever used, in file order.
Such UIDs are deterministic, so every reader of the same file gives the
same ones until a writer stores them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import attrgetter

from storage.mbox.headers import FLAG_FIELDS, Meta, client_size, read_meta
from storage.mbox.fromline import parse_from_line
from storage.mbox.reader import RawMessage, split_source
from storage.mbox.source import FileSource, MemorySource

__all__ = ["Entry", "MboxState", "parse", "parse_file", "parse_source", "make_entry",
           "reparse_entry", "stored_prefix"]


@dataclass(frozen=True, slots=True)
class Entry:
    """
    One message of the file.

    @ivar stored_uid: the UID is written in the file (C{X-UID}).
    @ivar old: C{Status} holds C{O}: some session already had it as
        C{\\Recent}.
    @ivar block: the span of the contiguous C{X-UID}/C{Status}/
        C{X-Status}/C{X-Keywords} lines, which a flag change may overwrite
        in place; C{None} if they are not contiguous or absent.
    """

    raw: RawMessage
    uid: int
    flags: frozenset[str]
    internaldate: datetime
    size: int
    old: bool
    stored_uid: bool
    block: tuple[int, int] | None
    other: tuple[tuple[int, int], ...]  # spans of the non-metadata header fields


@dataclass(frozen=True, slots=True)
class MboxState:
    """
    One parse of a file.

    @ivar last_uid: the highest UID ever given in this mailbox (UIDNEXT - 1).
    @ivar stored_last_uid: the last UID the file's header says, or C{None}.
    @ivar base_digits: the span of that number's digits, for an update in
        place.
    @ivar base_in: C{"pseudo"}, C{"first"} or C{None}: where the
        C{X-IMAPbase}/C{X-IMAP} field is.
    @ivar problems: what was found broken (for the "Unexpected changes" log).
    @ivar base_span: the span of the whole C{X-IMAPbase}/C{X-IMAP} field,
        for adding keywords in place.
    @ivar stored_run: what L{stored_prefix} found for C{entries}, tied to
        that tuple by its C{id}: a state made from this one with other
        entries (C{dataclasses.replace}) never takes it for its own, as the
        new tuple is created while the old one is still alive.
    """

    uidvalidity: int
    last_uid: int
    stored_last_uid: int | None
    base_digits: tuple[int, int] | None
    base_in: str | None
    keywords: tuple[str, ...]
    pseudo: RawMessage | None
    garbage: tuple[int, int] | None
    entries: tuple[Entry, ...]
    size: int
    stored_uidvalidity: bool
    problems: tuple[str, ...] = field(default=())
    base_span: tuple[int, int] | None = None
    stored_run: tuple[int, int | None] | None = field(default=None, compare=False, repr=False)

    @property
    def uidnext(self) -> int:
        """RFC 3501 UIDNEXT."""
        return self.last_uid + 1


def _block(meta: Meta) -> tuple[int, int] | None:
    spans = sorted((f.start, f.end) for name in FLAG_FIELDS for f in meta.fields.get(name, ()))
    if not spans:
        return None
    for (_, end), (start, _) in zip(spans, spans[1:]):
        if start != end:
            return None
    return spans[0][0], spans[-1][1]


def _digits_span(data: bytes, meta: Meta) -> tuple[int, int] | None:
    f = meta.base_field
    assert f is not None
    line = data[f.start:f.end]
    colon = line.index(b":") + 1
    words = []
    pos = colon
    while len(words) < 2:
        while pos < len(line) and line[pos:pos + 1] in b" \t":
            pos += 1
        start = pos
        while pos < len(line) and line[pos:pos + 1].isdigit():
            pos += 1
        if pos == start:
            return None
        words.append((start, pos))
    start, end = words[1]
    return f.start + start, f.start + end


def parse(data: bytes, default_uidvalidity: int, fallback_date: datetime | None = None,
          base: int = 0, previous: MboxState | None = None) -> MboxState:
    """
    Parse C{data} (the whole file, or with C{previous}, the file's tail from
    C{base}, which must be the offset of C{previous}'s last message).
    """
    return parse_source(MemorySource(data), default_uidvalidity, fallback_date, base, previous)


def parse_file(fd: int, start: int, end: int, default_uidvalidity: int,
               fallback_date: datetime | None = None,
               previous: MboxState | None = None) -> MboxState:
    """
    L{parse} of the bytes C{[start, end)} of the file open as C{fd}, read a
    window at a time: memory holds the headers and one window, never the
    bodies (a message of 100 MB just appended is parsed in a few MB).
    """
    return parse_source(FileSource(fd, start, end - start), default_uidvalidity,
                        fallback_date, start, previous)


@dataclass(frozen=True, slots=True)
class _Read:
    """What one message's header says, with spans from its C{From } line."""

    raw: RawMessage
    head: bytes  # from the From line to the body
    meta: Meta
    size: int


def _read_message(src, raw: RawMessage, base: int) -> _Read:
    """
    Read C{raw} (absolute offsets) from C{src}, which starts at file
    offset C{base}: its header whole, its body only counted.
    """
    head = src.get(raw.start - base, raw.body_start - base)
    local = _shift(raw, raw.start)
    meta = read_meta(head, local)
    counts = None
    if raw.body_start > raw.header_end:
        counts = src.body_counts(raw.body_start - base, raw.end - base)
    return _Read(raw, head, meta, client_size(head, local, meta, counts))


def parse_source(src, default_uidvalidity: int, fallback_date: datetime | None = None,
                 base: int = 0, previous: MboxState | None = None) -> MboxState:
    """L{parse} of the bytes of a L{storage.mbox.source} source."""
    if fallback_date is None:
        fallback_date = datetime.fromtimestamp(0, timezone.utc)
    parts = split_source(src, base)
    problems: list[str] = []
    # What C{previous} had before its last message (which is read again)
    # is kept: C{old[:before]}.  Each copy of a tuple of 10,000 entries
    # touches every entry's reference count, 0.1 ms in cache misses, so
    # an append copies it once, into the new state (below).
    old: tuple[Entry, ...] = ()
    if previous is not None:
        old = previous.entries
        pseudo, garbage = previous.pseudo, previous.garbage
        uidvalidity, stored_last = previous.uidvalidity, previous.stored_last_uid
        digits, base_in, keywords = previous.base_digits, previous.base_in, previous.keywords
        stored_validity = previous.stored_uidvalidity
        base_span = previous.base_span
        if parts.garbage is not None:
            problems.append("bytes before the first From line")
    else:
        pseudo, garbage = None, parts.garbage
        uidvalidity, stored_last, digits, base_in, keywords = default_uidvalidity, None, None, None, ()
        stored_validity = False
        base_span = None
        if garbage is not None:
            problems.append(f"{garbage[1] - garbage[0]} bytes before the first From line (kept)")
    # Only the first header is kept whole (it holds UIDVALIDITY); of the
    # others, what read_meta took from them.
    reads = []
    for i, raw in enumerate(parts.messages):
        r = _read_message(src, raw, base)
        reads.append(r if i == 0 else dataclasses.replace(r, head=b""))
    if previous is None and reads and reads[0].meta.base is not None:
        first = reads[0]
        uidvalidity, stored_last, keywords = first.meta.base
        stored_validity = True
        digits = _digits_span(first.head, first.meta)
        if digits is not None:
            digits = (digits[0] + first.raw.start, digits[1] + first.raw.start)
        f = first.meta.base_field
        base_span = (f.start + first.raw.start, f.end + first.raw.start)
        if first.meta.pseudo:
            pseudo = reads.pop(0).raw
            base_in = "pseudo"
        else:
            base_in = "first"
    if previous is None and not stored_validity and reads:
        # No X-IMAPbase yet (a spool an MDA created): every reader must
        # give the same UIDVALIDITY until a writer stores one, on every
        # node, so it comes from the bytes (the first message's From_
        # line date), not from the file's mtime, which each NFS client
        # may see through another clock.
        first_date = parse_from_line(reads[0].raw.from_line)
        if first_date is not None:
            uidvalidity = int(first_date.timestamp())
    if uidvalidity <= 0 or uidvalidity >= 2**32:
        uidvalidity = default_uidvalidity
    before = max(len(old) - 1, 0)
    highest = old[before - 1].uid if before else 0
    pending: list[int] = []
    uids: list[int | None] = []
    for i, r in enumerate(reads):
        meta = r.meta
        # An X-UID counts only below the last UID the file's X-IMAPbase
        # says was given, as Dovecot requires: an MDA copies a sender's
        # headers verbatim, so mail from outside may carry any X-UID, and
        # trusting "X-UID: 4294967290" would push the mailbox to the end
        # of the UID space.  Without X-IMAPbase the file has no
        # UIDVALIDITY of its own either, so its X-UIDs promise nothing.
        if (meta.uid is not None and meta.uid > highest
                and stored_last is not None and meta.uid <= stored_last):
            highest = meta.uid
            uids.append(meta.uid)
        else:
            if meta.uid is not None:
                problems.append(f"X-UID {meta.uid} ignored: it does not grow along the file "
                                f"or lies beyond X-IMAPbase")
            uids.append(None)
            pending.append(i)
    last_uid = max(stored_last or 0, highest,
                   previous.last_uid if previous is not None else 0)
    # (The last stored X-UID's index, not a scan of the rest per message:
    # that made parsing a file without X-UIDs quadratic.)
    last_stored = max((i for i, u in enumerate(uids) if u is not None), default=-1)
    for i in pending:
        if i < last_stored:
            problems.append("a message without X-UID between messages with one")
        last_uid += 1
        uids[i] = last_uid
    known = 0 if previous is None else stored_prefix(previous)
    parsed = tuple(make_entry(r, uid, fallback_date) for r, uid in zip(reads, uids))
    if old and parsed and parsed[0] == old[-1]:
        # The message read again is the one we had (as after an append):
        # C{previous}'s tuple is extended, not cut first and then extended.
        entries = old + parsed[1:]
    else:
        entries = old[:before] + parsed
    if known is None:
        prefix = _extend_run(entries, 0, 0)
    else:
        # What the entries kept from C{previous} (all but its last) had,
        # then only the messages parsed now are looked at: an append to
        # a mailbox of 10,000 messages does not look at the 10,000 again.
        prefix = _extend_run(entries, before, min(known, before))
    return MboxState(
        uidvalidity=uidvalidity, last_uid=last_uid, stored_last_uid=stored_last,
        base_digits=digits, base_in=base_in, keywords=tuple(keywords), pseudo=pseudo,
        garbage=garbage, entries=entries, size=base + src.size,
        stored_uidvalidity=stored_validity, problems=tuple(problems), base_span=base_span,
        stored_run=(id(entries), prefix))


_STORED = attrgetter("stored_uid")


def stored_prefix(state: MboxState) -> int | None:
    """
    How many messages at the start of C{state} have their UID stored in
    the file (C{X-UID}) when none after them has: C{n} with
    C{entries[:n]} all stored and C{entries[n:]} all not.  C{None} when
    there is no such C{n} (a message without a stored UID lies between
    two with one): only a rewrite of the file can then store UIDs.

    An append in place relies on this (L{storage.mbox.rewrite}): the UIDs
    it stores must come after every stored one.  Known from the parse
    (L{MboxState.stored_run}); else counted here, over C-level maps.
    """
    run = state.stored_run
    if run is not None and run[0] == id(state.entries):
        return run[1]
    return _extend_run(state.entries, 0, 0)


def _extend_run(entries: tuple[Entry, ...], start: int, prefix: int) -> int | None:
    """
    L{stored_prefix} of C{entries} given that of C{entries[:start]}
    (C{prefix}), looking only at C{entries[start:]}.
    """
    tail = list(map(_STORED, entries[start:]))
    if prefix < start:
        # Already an unstored run: everything after it must be unstored.
        return None if any(tail) else prefix
    first = tail.index(False) if False in tail else len(tail)
    if any(tail[first:]):
        return None
    return start + first


def make_entry(r: _Read, uid: int, fallback_date: datetime) -> Entry:
    """The L{Entry} of a message read by L{_read_message}."""
    raw, meta, at = r.raw, r.meta, r.raw.start
    return Entry(
        raw=raw, uid=uid, flags=meta.flags,
        internaldate=parse_from_line(raw.from_line) or fallback_date,
        size=r.size, old=meta.old,
        stored_uid=meta.uid == uid,
        block=_shift_span(_block(meta), at),
        other=tuple((f.start + at, f.end + at) for f in meta.other_fields),
    )


def reparse_entry(data: bytes, entry: Entry) -> Entry:
    """
    C{entry} again from C{data}, the bytes from its start to its next
    message, after its header was changed in place (same length).
    """
    base = entry.raw.start
    src = MemorySource(data)
    raw = split_source(src, base).messages[0]
    return make_entry(_read_message(src, raw, base), entry.uid, entry.internaldate)


def _shift(raw: RawMessage, base: int) -> RawMessage:
    """C{raw} with offsets relative to C{data} (which starts at C{base})."""
    if not base:
        return raw
    return RawMessage(raw.start - base, raw.header_start - base, raw.header_end - base,
                      raw.body_start - base, raw.end - base, raw.next - base,
                      raw.from_line, raw.crlf)


def _shift_span(span, base):
    return None if span is None else (span[0] + base, span[1] + base)
