# -*- test-case-name: tests.imapd.sort.test_sort_keys -*-
"""
What SORT and THREAD need from each message, and the SORT ordering
(RFC 5256 section 3, RFC 5957).

A L{HeaderKeys} holds the values derived from a message's header: the
collated base subject, the sent date, the collated first From/To/Cc
mailboxes and display names, the Message-ID and the references.  Messages
never change under a UID (RFC 3501 section 2.3.1.1), so these are computed
once and kept in a process-wide, bounded cache keyed by (mailbox,
UIDVALIDITY) and UID: a second SORT of the same mailbox reads no message.
Issue 6 will persist them in C{index/}; until then the cache is what makes
repeated SORT and THREAD cheap.

Choices where the RFCs leave room, and why:

  - DATE is the Date header in UTC; a missing or unparsable one falls back
    to INTERNALDATE (RFC 5256 section 3, "sent date").  A year before 1900
    counts as unparsable (spam writes "0102" for 2002), as in Dovecot.
  - CC/FROM/TO use the local part (addr-mailbox) of the first address of
    the first such field, as ENVELOPE gives it: a group's first address is
    its name (C{undisclosed-recipients}); none sorts as C{""} (RFC 5256
    section 3).
  - DISPLAYFROM/DISPLAYTO use the decoded display name of that address,
    or its addr-spec when the name is missing or empty (RFC 5957
    section 3).
  - All strings compare with C{i;unicode-casemap} (L{collate}), as
    I18NLEVEL=1 requires (RFC 5255 section 4.3).
  - Equal keys keep sequence order, which is RFC 5256's tie-break; REVERSE
    reverses only its own criterion, never the tie-break.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timezone
from typing import Callable, Iterable, Optional

from imapd import cancel
from imapd.charset import decode, decode_words
from imapd.message import Message
from imapd.message._address import MISSING_MAILBOX, parse_addresses
from imapd.sort.collate import unicode_casemap
from imapd.sort.subject import base_subject
from storage.errors import MessageExpunged

__all__ = [
    "HeaderKeys", "SortItem", "SORT_KEYS", "GROUPS", "CRITERION_GROUPS", "THREAD_GROUPS",
    "header_keys", "load_items", "MAX_REFERENCES",
    "sort_items", "cache_clear",
]

#: RFC 5256 section 3 sort keys plus RFC 5957 DISPLAYFROM/DISPLAYTO.
SORT_KEYS = frozenset({
    "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
    "DISPLAYFROM", "DISPLAYTO",
})


@dataclass(frozen=True, slots=True)
class HeaderKeys:
    """
    The header-derived values of one message.

    @ivar subject: the base subject, collated (L{unicode_casemap}).
    @ivar reply: whether the subject marked a reply or forward.
    @ivar sent: the Date as a POSIX timestamp, or C{None}.
    @ivar from_, to, cc: collated addr-mailbox of the first address.
    @ivar display_from, display_to: collated display names (RFC 5957).
    @ivar message_id: the Message-ID without brackets, or C{None}.
    @ivar references: the parent chain for threading: the References
        ids, or else the first In-Reply-To id (RFC 5256 section 4, 1.A).
    """

    subject: str = ""
    reply: bool = False
    sent: Optional[float] = None
    from_: str = ""
    to: str = ""
    cc: str = ""
    display_from: str = ""
    display_to: str = ""
    message_id: Optional[str] = None
    references: tuple[str, ...] = ()
    #: The L{GROUPS} computed; the others hold their defaults.
    groups: frozenset = frozenset()


#: The keys come in groups that are computed together.  Parsing addresses
#: is more than half of a cold SORT's time, so a SORT (DATE) of 10,000
#: unindexed messages must not pay for FROM, TO and CC.
GROUPS = frozenset({"subject", "date", "address", "thread"})



#: The groups each SORT criterion needs (ARRIVAL and SIZE need none).
CRITERION_GROUPS: dict[str, frozenset] = {
    "ARRIVAL": frozenset(), "SIZE": frozenset(),
    "DATE": frozenset({"date"}), "SUBJECT": frozenset({"subject"}),
    "FROM": frozenset({"address"}), "TO": frozenset({"address"}),
    "CC": frozenset({"address"}), "DISPLAYFROM": frozenset({"address"}),
    "DISPLAYTO": frozenset({"address"}),
}

#: What THREAD uses: base subjects, dates and the id chain (RFC 5256
#: section 4).
THREAD_GROUPS = frozenset({"subject", "date", "thread"})

_EMPTY = HeaderKeys(groups=GROUPS)

# RFC 5322 msg-id: "<" id-left "@" id-right ">".  Folding white space
# may sit between its tokens (RFC 822's obsolete syntax, and mailers that
# fold "<...@host.or g>"): it is removed, as Dovecot does.  Ids without
# "@" are not valid and are ignored.
_MSG_ID = re.compile(rb"<([^<>]+)>")
_WS = re.compile(rb"\s+")

# A numeric zone without its sign, at the end of a Date value.
_UNSIGNED_ZONE = re.compile(rb"\d:\d\d(?::\d\d)?\s+\d{4,}\s*(?:\([^)]*\)\s*)?$")


#: Most References ids kept per message: the last ones (the parent is the
#: last, RFC 5256 section 4 step 1.B).  Real References stay short because
#: posters trim them (RFC 5537 section 3.4.4: drop ids from the middle once
#: the field nears 998 octets, i.e. a few dozen ids), and Dovecot's thread
#: index keeps a bounded tail too; one crafted message with 64,000 ids
#: made threading cost 41 s of a storage thread (issue 18).  128 ids reach
#: further back than any trimmed field; what lies beyond is linked through
#: the References of the messages in between.
MAX_REFERENCES = 128


def _ids(value: bytes) -> list[str]:
    out = []
    for m in _MSG_ID.findall(value):
        m = _WS.sub(b"", m)
        if b"@" in m and not m.startswith(b"@"):
            out.append(m.decode("latin-1"))
    return out


def _first_address(message: Message, name: str):
    # The first address as ENVELOPE lists it (RFC 3501 section 7.4.2):
    # for "undisclosed-recipients:;" that is the group start, whose
    # mailbox is the group name; Dovecot sorts by it too.
    for value in message.header_fields(name)[:1]:
        for addr in parse_addresses(value):
            return addr
    return None


def _mailbox_key(addr) -> str:
    if addr is None or not addr.mailbox or addr.mailbox == MISSING_MAILBOX:
        return ""
    # RFC 2047 section 5: no encoded words in an addr-spec, so none are
    # decoded there (Dovecot neither).
    return unicode_casemap(decode(addr.mailbox, None))


def _display_key(addr) -> str:
    if addr is None:
        return ""
    if addr.name:
        # The name as written (Dovecot keeps '" mariam"' with its space),
        # unless it is only white space.
        name = decode_words(addr.name)
        if name.strip():
            return unicode_casemap(name)
    mailbox = b"" if addr.mailbox in (None, MISSING_MAILBOX) else addr.mailbox
    spec = mailbox + b"@" + addr.host if addr.host else mailbox
    return unicode_casemap(decode(spec, None))


def header_keys(message: Message, groups: frozenset = GROUPS) -> HeaderKeys:
    """
    Compute the L{HeaderKeys} of a message, the L{GROUPS} named in
    C{groups} only; never raises on bad input.
    """
    values: dict = {"groups": frozenset(groups)}
    if "subject" in groups:
        subjects = message.decoded_header("subject")
        subject, values["reply"] = base_subject(subjects[0] if subjects else "")
        values["subject"] = unicode_casemap(subject)
    if "date" in groups:
        value, sent = message.date_field()
        if sent is not None and _UNSIGNED_ZONE.search(value or b""):
            # RFC 5322 section 3.3: a numeric zone has a sign; "0530"
            # without one is an unknown zone, read as +0000 (section
            # 4.3), as Dovecot.
            sent = sent.replace(tzinfo=timezone.utc)
        if sent is not None and sent.year < 1900:
            # "Sat, 02 Feb 0102": a mangled two-digit year, not a date in
            # the second century; Dovecot rejects four-digit years before
            # 1900 too, so such messages sort by INTERNALDATE in both.
            sent = None
        values["sent"] = sent.timestamp() if sent is not None else None
    if "address" in groups:
        from_ = _first_address(message, "from")
        to = _first_address(message, "to")
        values.update(
            from_=_mailbox_key(from_),
            to=_mailbox_key(to),
            cc=_mailbox_key(_first_address(message, "cc")),
            display_from=_display_key(from_),
            display_to=_display_key(to),
        )
    if "thread" in groups:
        ids = message.header_fields("message-id")
        own = _ids(ids[0]) if ids else []
        refs: list[str] = []
        for value in message.header_fields("references"):
            refs.extend(_ids(value))
            del refs[:-MAX_REFERENCES]
        if not refs:
            for value in message.header_fields("in-reply-to")[:1]:
                refs = _ids(value)[:1]
        values.update(message_id=own[0] if own else None, references=tuple(refs))
    return HeaderKeys(**values)


def _merged(old: HeaderKeys, new: HeaderKeys) -> HeaderKeys:
    """C{old} with the groups of C{new} added."""
    values = {}
    for group, names in _GROUP_FIELDS.items():
        source = new if group in new.groups else old
        for name in names:
            values[name] = getattr(source, name)
    return HeaderKeys(groups=old.groups | new.groups, **values)


def encode_keys(keys: HeaderKeys) -> str:
    """L{HeaderKeys} as the text the index keeps (C{sortkeys} column)."""
    return json.dumps([_KEYS_FORMAT, sorted(keys.groups), keys.subject, keys.reply,
                       keys.sent, keys.from_, keys.to, keys.cc, keys.display_from,
                       keys.display_to, keys.message_id, list(keys.references)],
                      ensure_ascii=False, separators=(",", ":"))


def decode_keys(text) -> Optional[HeaderKeys]:
    """
    L{encode_keys} undone, or None for anything else: a row from an older
    format, or one scribbled over (the index is only a cache).
    """
    try:
        (version, groups, subject, reply, sent, from_, to, cc, display_from,
         display_to, message_id, references) = json.loads(text)
        if version != _KEYS_FORMAT or not set(groups) <= GROUPS:
            return None
        keys = HeaderKeys(subject=subject, reply=reply, sent=sent, from_=from_, to=to,
                          cc=cc, display_from=display_from, display_to=display_to,
                          message_id=message_id,
                          references=tuple(references[-MAX_REFERENCES:]),
                          groups=frozenset(groups))
        strings = (subject, from_, to, cc, display_from, display_to, *references)
        if (not all(isinstance(v, str) for v in strings) or not isinstance(reply, bool)
                or not (sent is None or isinstance(sent, (int, float)))
                or not (message_id is None or isinstance(message_id, str))):
            return None
        return keys
    except (TypeError, ValueError):
        return None


#: Bumped when the meaning of a stored key changes (collation, base
#: subject rules): rows in another format are computed again.
_KEYS_FORMAT = 1

_GROUP_FIELDS = {
    "subject": ("subject", "reply"),
    "date": ("sent",),
    "address": ("from_", "to", "cc", "display_from", "display_to"),
    "thread": ("message_id", "references"),
}


# --------------------------------------------------------------------------
# The process-wide cache


class _KeyCache:
    """
    A bounded, thread-safe cache of L{HeaderKeys} (SORT runs in a thread
    pool), two levels deep: mailbox -> UID -> keys.  A SORT looks up every
    message of one mailbox, so the per-mailbox dictionary keyed by plain
    integers is what makes a warm 10,000-message SORT cheap.  The bound
    counts messages; beyond it, the least recently used mailboxes are
    dropped whole.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._boxes: OrderedDict = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def mailbox(self, ident) -> dict:
        """The UID -> keys dictionary of one mailbox, now most recent."""
        with self._lock:
            box = self._boxes.get(ident)
            if box is None:
                box = self._boxes[ident] = {}
            else:
                self._boxes.move_to_end(ident)
            return box

    def add(self, box: dict, uid: int, keys: HeaderKeys) -> None:
        """Remember C{keys}; evict old mailboxes beyond the bound."""
        with self._lock:
            if uid not in box:
                self._count += 1
            box[uid] = keys
            while self._count > self.limit:
                ident, old = next(iter(self._boxes.items()))
                if old is box:
                    # The mailbox being filled is the oldest left: keep
                    # it whole (one mailbox beyond the bound stays).
                    break
                del self._boxes[ident]
                self._count -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._boxes.clear()
            self._count = 0

    def __len__(self) -> int:
        return self._count


#: (mailbox identity, UIDVALIDITY) -> UID -> HeaderKeys; at most 200,000
#: messages.
_CACHE = _KeyCache(200_000)


def cache_clear() -> None:
    """Forget every cached key and answer (tests)."""
    from imapd.sort import results

    _CACHE.clear()
    results.clear()


def mailbox_identity(view) -> Optional[tuple]:
    """
    What names the selected mailbox's messages across sessions: its
    directory or file (Maildir C{directory}, mbox C{path}) and
    UIDVALIDITY; C{None} for a store that offers neither, whose messages
    are then not cached at all (an object id could be reused).
    """
    for attr in ("directory", "path"):
        value = getattr(view.mailbox, attr, None)
        if isinstance(value, str):
            return (value, view.uidvalidity)
    return None


class SortItem:
    """
    One message as SORT and THREAD see it (a plain slotted class: 10,000
    of these are built per command, and a frozen dataclass costs more).

    @ivar seq: its sequence number.
    @ivar uid: its UID.
    @ivar arrival: INTERNALDATE as a POSIX timestamp.
    @ivar size: RFC822.SIZE.
    @ivar keys: the L{HeaderKeys}.

    C{arrival} and C{size} come from the message's record on first use: a
    Maildir computes them with a stat or a read per message, which SORT
    (DATE) needs only for messages without a usable Date.
    """

    __slots__ = ("seq", "uid", "record", "keys")

    def __init__(self, seq: int, uid: int, record, keys: HeaderKeys) -> None:
        self.seq = seq
        self.uid = uid
        self.record = record
        self.keys = keys

    @property
    def arrival(self) -> float:
        try:
            return self.record.internaldate.timestamp()
        except MessageExpunged:
            return 0.0  # gone meanwhile: sorted, like its empty keys, first

    @property
    def size(self) -> int:
        try:
            return self.record.size
        except MessageExpunged:
            return 0

    @property
    def date(self) -> float:
        """The RFC 5256 sent date, INTERNALDATE when the Date is unusable."""
        sent = self.keys.sent
        return self.arrival if sent is None else sent


def load_items(view, pairs: Iterable[tuple[int, int]],
               groups: frozenset = GROUPS, index=None) -> list[SortItem]:
    """
    Blocking: the L{SortItem}s of the C{(seq, uid)} pairs of a selected
    view, with at least the key C{groups} computed.  Keys come from this
    process's cache, else from the node's index (C{index}: an
    L{imapd.cache.SortCache}, or None), else from the message's header,
    taken from the index or read from the store.  A message expunged
    meanwhile gets empty keys: it still has a sequence number and must be
    answered for (RFC 3501 section 7.4.1).
    """
    pairs = list(pairs)
    ident = mailbox_identity(view)
    box = _CACHE.mailbox(ident) if ident is not None else {}
    missing = [uid for _seq, uid in pairs
               if (keys := box.get(uid)) is None or not groups <= keys.groups]
    gone: set[int] = set()
    if missing:
        gone = _fill(view, missing, groups, box, ident, index)
    records = view.records
    return [SortItem(seq, uid, records[uid], _EMPTY if uid in gone else box[uid])
            for seq, uid in pairs]


def _fill(view, uids: list[int], groups: frozenset, box: dict, ident, index) -> set[int]:
    """
    Compute (or find in the index) the keys of C{uids} into C{box}.

    @return: the UIDs whose message is gone from the store (not cached).
    """
    gone = set()
    mailbox = view.mailbox
    rows = index.lookup(view, uids) if index is not None else {}
    computed: dict[int, dict] = {}
    for uid in uids:
        cancel.check()  # per message: the client may be gone (imapd.cancel)
        old = box.get(uid)
        row = rows.get(uid) or {}
        stored = decode_keys(row["sortkeys"]) if row.get("sortkeys") else None
        if stored is not None:
            # What this process and the index know together: a row is
            # rewritten below with every group, never fewer.
            old = stored if old is None else _merged(old, stored)
        if old is not None and groups <= old.groups:
            keys = old
        else:
            header = row.get("header")
            try:
                # Every key is a header field (RFC 5256 section 3): the
                # body, often most of the file, is not read.
                if header is None:
                    header = mailbox.read_header(uid)
            except MessageExpunged:
                gone.add(uid)
                continue
            fresh = header_keys(Message(header), groups)
            keys = fresh if old is None else _merged(old, fresh)
            computed[uid] = {"sortkeys": encode_keys(keys)}
        if ident is not None:
            _CACHE.add(box, uid, keys)
        else:
            box[uid] = keys
    if index is not None and computed:
        index.store(view, computed)
    return gone


# --------------------------------------------------------------------------
# SORT


_KEY_FUNCS: dict[str, Callable[[SortItem], object]] = {
    "ARRIVAL": lambda i: i.arrival,
    "DATE": lambda i: i.date,
    "SIZE": lambda i: i.size,
    "SUBJECT": lambda i: i.keys.subject,
    "FROM": lambda i: i.keys.from_,
    "TO": lambda i: i.keys.to,
    "CC": lambda i: i.keys.cc,
    "DISPLAYFROM": lambda i: i.keys.display_from,
    "DISPLAYTO": lambda i: i.keys.display_to,
}


def sort_items(items: Iterable[SortItem],
               criteria: Iterable[tuple[str, bool]]) -> list[SortItem]:
    """
    Order items by SORT criteria.

    @param criteria: C{(key, reverse)} pairs, most significant first.
    @return: the items sorted; ties keep sequence order (RFC 5256
        section 3), also under REVERSE.
    """
    out = sorted(items, key=lambda i: i.seq)
    # Stable sorts from the least significant criterion up.  Python's
    # reverse=True keeps equal items in their previous order, which keeps
    # the sequence tie-break ascending.
    for name, reverse in reversed(list(criteria)):
        out.sort(key=_KEY_FUNCS[name], reverse=reverse)
    return out
