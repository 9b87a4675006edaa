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

from dataclasses import dataclass, field
from datetime import datetime, timezone

from storage.mbox.headers import FLAG_FIELDS, Meta, client_size, read_meta
from storage.mbox.fromline import parse_from_line
from storage.mbox.reader import RawMessage, split

__all__ = ["Entry", "MboxState", "parse", "make_entry", "reparse_entry"]


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
    if fallback_date is None:
        fallback_date = datetime.fromtimestamp(0, timezone.utc)
    parts = split(data, base)
    problems: list[str] = []
    kept: list[Entry] = []
    if previous is not None:
        kept = list(previous.entries[:-1])
        pseudo, garbage = previous.pseudo, previous.garbage
        uidvalidity, stored_last = previous.uidvalidity, previous.stored_last_uid
        digits, base_in, keywords = previous.base_digits, previous.base_in, previous.keywords
        stored_validity = previous.stored_uidvalidity
        base_span = previous.base_span
        raws = list(parts.messages)
        if parts.garbage is not None:
            problems.append("bytes before the first From line")
    else:
        pseudo, garbage = None, parts.garbage
        uidvalidity, stored_last, digits, base_in, keywords = default_uidvalidity, None, None, None, ()
        stored_validity = False
        base_span = None
        raws = list(parts.messages)
        if garbage is not None:
            problems.append(f"{garbage[1] - garbage[0]} bytes before the first From line (kept)")
    # The header that holds UIDVALIDITY: the first message of the file.
    metas = [read_meta(data, _shift(r, base)) for r in raws]
    if previous is None and raws and metas[0].base is not None:
        uidvalidity, stored_last, keywords = metas[0].base
        stored_validity = True
        digits = _digits_span(data, metas[0])
        if digits is not None:
            digits = (digits[0] + base, digits[1] + base)
        f = metas[0].base_field
        base_span = (f.start + base, f.end + base)
        if metas[0].pseudo:
            pseudo = raws.pop(0)
            metas.pop(0)
            base_in = "pseudo"
        else:
            base_in = "first"
    if previous is None and not stored_validity and raws:
        # No X-IMAPbase yet (a spool an MDA created): every reader must
        # give the same UIDVALIDITY until a writer stores one, on every
        # node, so it comes from the bytes (the first message's From_
        # line date), not from the file's mtime, which each NFS client
        # may see through another clock.
        first = parse_from_line(raws[0].from_line)
        if first is not None:
            uidvalidity = int(first.timestamp())
    if uidvalidity <= 0 or uidvalidity >= 2**32:
        uidvalidity = default_uidvalidity
    highest = kept[-1].uid if kept else 0
    pending: list[int] = []
    uids: list[int | None] = []
    for i, meta in enumerate(metas):
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
    for i in pending:
        later = [u for u in uids[i + 1:] if u is not None]
        if later:
            problems.append("a message without X-UID between messages with one")
        last_uid += 1
        uids[i] = last_uid
    for raw, meta, uid in zip(raws, metas, uids):
        kept.append(make_entry(data, raw, meta, uid, base, fallback_date))
    return MboxState(
        uidvalidity=uidvalidity, last_uid=last_uid, stored_last_uid=stored_last,
        base_digits=digits, base_in=base_in, keywords=tuple(keywords), pseudo=pseudo,
        garbage=garbage, entries=tuple(kept), size=base + len(data),
        stored_uidvalidity=stored_validity, problems=tuple(problems), base_span=base_span)


def make_entry(data: bytes, raw: RawMessage, meta: Meta, uid: int, base: int,
               fallback_date: datetime) -> Entry:
    """
    The L{Entry} of C{raw} (absolute offsets) whose bytes are in C{data},
    which starts at file offset C{base}; C{meta} was read from C{data}.
    """
    local = _shift(raw, base)
    return Entry(
        raw=raw, uid=uid, flags=meta.flags,
        internaldate=parse_from_line(raw.from_line) or fallback_date,
        size=client_size(data, local, meta), old=meta.old,
        stored_uid=meta.uid == uid,
        block=_shift_span(_block(meta), base),
        other=tuple((f.start + base, f.end + base) for f in meta.other_fields),
    )


def reparse_entry(data: bytes, entry: Entry) -> Entry:
    """
    C{entry} again from C{data}, the bytes from its start to its next
    message, after its header was changed in place (same length).
    """
    base = entry.raw.start
    parts = split(data, base)
    raw = parts.messages[0]
    meta = read_meta(data, _shift(raw, base))
    return make_entry(data, raw, meta, entry.uid, base, entry.internaldate)


def _shift(raw: RawMessage, base: int) -> RawMessage:
    """C{raw} with offsets relative to C{data} (which starts at C{base})."""
    if not base:
        return raw
    return RawMessage(raw.start - base, raw.header_start - base, raw.header_end - base,
                      raw.body_start - base, raw.end - base, raw.next - base,
                      raw.from_line, raw.crlf)


def _shift_span(span, base):
    return None if span is None else (span[0] + base, span[1] + base)
