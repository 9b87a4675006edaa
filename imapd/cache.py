# -*- test-case-name: tests.imapd.test_fetch_cache -*-
"""
The seam between FETCH and the per-node index (L{index.MailboxIndex}).

A warm C{UID FETCH 1:* (... ENVELOPE)} should not open and parse every
message file again.  For attribute lists whose content items are all
derived from the header or the MIME structure (ENVELOPE, BODY,
BODYSTRUCTURE, RFC822.HEADER, BODY[HEADER], BODY[HEADER.FIELDS ...] and
BODY[HEADER.FIELDS.NOT ...] of the whole message), L{FetchCache} looks the
batch's UIDs up in one query, hands the renderer L{CachedMessage}s that
answer from the cached rows (and, for header field lists, from cached
answers to the same list), and writes back, in one transaction, what had
to be computed.  Any other attribute list (a body, a part, BINARY) goes
around the cache: reading the file is needed anyway.

The cache is keyed by the UID the store gave and the UIDVALIDITY: under
one UIDVALIDITY a UID always names the same message (RFC 3501 section
2.3.1.1), so a cached ENVELOPE stays right until the message is expunged.
Each row also carries the size the store reported; a row whose size does
not match the record is ignored, as a guard against a mailbox recreated
with a recycled UIDVALIDITY.

The mailbox identity that names the database is
C{"<user>\\0<mailbox name>\\0<directory or path>"}: the user and name keep
mailboxes of one account apart, and the store's directory (Maildir) or file
(mbox) keeps apart two locations that reuse a name (a changed
C{mail_location}, or two users sharing one home).  DELETE and RENAME
remove the databases of the names they take away (L{forget_mailbox}); a
renamed mailbox starts cold.

SEARCH uses the same rows (L{SearchCache}): the header block answers
HEADER and the SENT* keys, and per-field search text
(L{imapd.search.match.SearchItem.field_text}) answers BCC, CC, FROM,
SUBJECT and TO with one substring test each.  BODY and TEXT read the
files.

Index connections are kept per thread (SQLite connections belong to their
thread; FETCH batches run in the storage thread pool), a few per thread.
"""

from __future__ import annotations

import bisect
import functools
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Callable, Iterable, Optional

from index import MailboxIndex
from storage.errors import StoreError
from imapd.message import Message
from imapd.parser.types import FetchAttr

__all__ = [
    "CachedMessage", "FetchCache", "SearchCache", "mailbox_identity", "section_spec",
    "cached_fields", "search_fields", "forget_mailbox",
]

#: Connections kept open per thread; a thread serves many sessions.
_PER_THREAD = 16

# Content items answered from a cached column (the header column serves
# the header sections as well).
_ITEM_FIELDS = {
    "ENVELOPE": "envelope",
    "BODY": "body",
    "BODYSTRUCTURE": "bodystructure",
    "RFC822.HEADER": "header",
    "PREVIEW": "preview",   # RFC 8970, as text
}
_HEADER_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})
_NO_CONTENT = frozenset({"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "SAVEDATE"})

_local = threading.local()


def mailbox_identity(user: str, mailbox) -> str:
    """
    The string that names a mailbox's index database (see the module
    docstring): user, mailbox name and the store's location of it,
    NUL-separated (NUL occurs in none of them).
    """
    where = getattr(mailbox, "directory", "") or getattr(mailbox, "path", "") or ""
    return f"{user}\0{mailbox.name}\0{where}"


def section_spec(text: str, fields: Iterable) -> Optional[str]:
    """
    The index's name for a C{HEADER.FIELDS} or C{HEADER.FIELDS.NOT}
    request of the whole message, or None for other sections.  Field names
    are turned into lowercase bytes exactly as L{Message.section} does, and
    their order and repetition do not change the answer, so they are
    sorted and made unique: one cached answer serves every client that
    asks for the same set.
    """
    return _section_spec(text, tuple(fields))


@functools.lru_cache(maxsize=256)
def _section_spec(text: str, fields: tuple) -> Optional[str]:
    # Memoized: a FETCH asks the same question for every message (it was
    # a quarter of a warm 10,000-message HEADER.FIELDS FETCH).
    text = text.upper()
    if text not in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return None
    names = sorted({(f.encode("latin-1", "replace") if isinstance(f, str) else f).lower()
                    for f in fields})
    return text + " " + b"\0".join(names).decode("latin-1")


def cached_fields(attrs: Iterable[FetchAttr]) -> Optional[tuple[str, ...]]:
    """
    The index columns that can answer every content item of C{attrs}, or
    None when some item needs the message itself.  The header block counts
    only where it is asked for itself; as the source of a missing ENVELOPE
    or header-field answer it is looked up later, for those messages only
    (L{FetchCache.lookup}): it is the largest column.
    """
    fields = {"size"}
    for a in attrs:
        name = a.name
        if name in _NO_CONTENT:
            continue
        if name == "BODY" and a.section is not None:
            section = a.section
            if section.part or section.text is None or section.text.upper() not in _HEADER_TEXTS:
                return None
            if section.text.upper() == "HEADER":
                fields.add("header")
            continue
        field = _ITEM_FIELDS.get(name)
        if field is None:
            return None
        fields.add(field)
    return tuple(sorted(fields))


def _index_for(index_dir: str, identity: str, kind: type = MailboxIndex) -> MailboxIndex:
    """
    This thread's open index for C{identity}: a L{MailboxIndex}, or the
    subclass C{kind} that keeps other data in a file of its own
    (L{index.fts.FtsIndex}).
    """
    pool = getattr(_local, "indexes", None)
    if pool is None:
        pool = _local.indexes = OrderedDict()
    key = (index_dir, identity, kind)
    index = pool.get(key)
    if index is not None:
        pool.move_to_end(key)
        return index
    index = kind.open(index_dir, identity)
    pool[key] = index
    while len(pool) > _PER_THREAD:
        _key, old = pool.popitem(last=False)
        old.close()
    return index


#: Per mailbox index, the UID set it was last pruned against, as
#: C{(uidvalidity, count, sum of UIDs, largest UID)}; bounded, least
#: recently used out.
_pruned: OrderedDict = OrderedDict()
_pruned_lock = threading.Lock()
_PRUNED_KEEP = 4096


def _uid_fingerprint(view) -> tuple[int, int, int, int]:
    uids = view.uids
    return (view.uidvalidity, len(uids), sum(uids), uids[-1] if uids else 0)


def _only_added(old: tuple, view) -> bool:
    # UIDs only grow (RFC 3501 section 2.3.1.1): a UID added since is
    # larger than every UID the old set had.  So if the UIDs up to the old
    # largest have the old count and sum, nothing was removed; a wrong
    # "nothing removed" would only leave dead rows until the next prune.
    uids = view.uids
    if old[0] != view.uidvalidity:
        return False
    upto = bisect.bisect_right(uids, old[3])
    return upto == old[1] and sum(uids[:upto]) == old[2]


def _prune_if_changed(index: MailboxIndex, index_dir: str, identity: str, view) -> None:
    """
    Drop the rows of UIDs the store no longer has (EXPUNGE here, or by
    another process or node) the first time this process sees UIDs
    removed from the mailbox, in whichever thread sees it: rows of
    expunged messages are dead weight, and a sweep by size would throw
    out live rows before them.  New mail alone costs no prune.
    """
    key = (index_dir, identity)
    fingerprint = _uid_fingerprint(view)
    with _pruned_lock:
        old = _pruned.get(key)
        _pruned[key] = fingerprint
        _pruned.move_to_end(key)
        while len(_pruned) > _PRUNED_KEEP:
            _pruned.popitem(last=False)
    if old == fingerprint or (old is not None and _only_added(old, view)):
        return
    index.prune(view.uidvalidity, view.uids)


def forget_mailbox(account, name: str, inferiors: bool, operation: Callable[[], object]):
    """
    Blocking: run C{operation} (the store's DELETE or RENAME of C{name}),
    then remove the index databases of C{name} and, with C{inferiors},
    of the mailboxes below it (RFC 3501 section 6.3.5: RENAME moves them
    too).  The identities are computed before the operation, while the
    mailboxes are still where they were.

    A renamed mailbox keeps its UIDs, so its cache would stay valid, but
    moving a WAL database that another process may have open is not
    safe; the renamed mailbox starts cold instead.

    @return: what C{operation} returned.
    """
    from index import remove_index
    from index.fts import fts_identity

    index_dir = getattr(account, "index_dir", None)
    identities = _identities(account, name, inferiors) if index_dir else []
    result = operation()
    for identity in identities:
        remove_index(index_dir, identity)
        remove_index(index_dir, fts_identity(identity))  # the full-text file (index.fts)
    with _pruned_lock:
        for identity in identities:
            _pruned.pop((index_dir, identity), None)
    return result


#: The hierarchy delimiter at the storage seam (L{storage.interfaces}).
_SEP = "/"


def _identities(account, name: str, inferiors: bool) -> list[str]:
    store = account.store
    layout = getattr(store, "layout", None)
    if layout is None:
        return []
    # The stores spell a first level "inbox" in any case as INBOX
    # (RFC 3501 section 5.1), and so does mailbox.name.
    first, sep, rest = name.partition(_SEP)
    if first.upper() == "INBOX":
        name = "INBOX" + sep + rest
    names = [name]
    if inferiors:
        try:
            listed = [info.name for info in store.list_mailboxes()]
        except (OSError, StoreError):
            # The RENAME will fail the same way and say why.
            listed = []
        names += [n for n in listed if n.startswith(name + _SEP)]
    out = []
    for n in names:
        try:
            path = layout.path(n)
        except StoreError:  # an invalid name: the store refuses it too
            continue
        out.append(mailbox_identity(account.user, _Located(n, path)))
    return out


class _Located:
    # What mailbox_identity reads of a mailbox: its name and location.
    __slots__ = ("name", "path")

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path


@functools.lru_cache(maxsize=256)
def _header_section(text: str, fields: tuple) -> tuple[bool, Optional[str]]:
    # Whether BODY[text] of the whole message is a header section, and its
    # L{section_spec}; memoized because a FETCH asks it once per message.
    if text.upper() not in _HEADER_TEXTS:
        return False, None
    return True, _section_spec(text, fields)


#: The row of a message the index has nothing for; never written to.
_NO_ROW: dict = {}


class CachedMessage:
    """
    A stand-in for L{Message} in the renderer: answers ENVELOPE,
    BODY/BODYSTRUCTURE and the whole message's header sections from a
    cached row, and loads the real message on first need of anything else
    (or of a column the row lacks).

    A warm FETCH makes one per message, so a hit costs one dictionary
    lookup: nothing else is allocated until a value must be computed.

    @ivar uid: the message's UID.
    @ivar computed: the columns computed here that the row lacked, for
        writing back, or None while there are none;
        C{computed["sections"]} holds new C{HEADER.FIELDS[.NOT]} answers
        by L{section_spec}.
    """

    __slots__ = ("uid", "_row", "_mailbox", "_message", "computed")

    def __init__(self, mailbox, uid: int, row: Optional[dict]) -> None:
        self.uid = uid
        self._row = _NO_ROW if row is None else row
        self._mailbox = mailbox
        self._message: Optional[Message] = None
        self.computed: Optional[dict] = None

    def _real(self) -> Message:
        if self._message is None:
            self._message = Message(self._mailbox.read(self.uid))
            if self._row.get("header") is None:
                computed = self._computed()
                if "header" not in computed:
                    # Cheap once the message is in memory, and it lets
                    # the next ENVELOPE or header FETCH skip the file.
                    computed["header"] = self._message.header_bytes()
        return self._message

    def _computed(self) -> dict:
        computed = self.computed
        if computed is None:
            computed = self.computed = {}
        return computed

    def _compute(self, field: str, compute: Callable[[], bytes]) -> bytes:
        # The row lacks field: compute it once and keep it for write-back.
        computed = self._computed()
        value = computed.get(field)
        if value is None:
            value = computed[field] = compute()
        return value

    def header_bytes(self) -> bytes:
        """RFC822.HEADER / BODY[HEADER]; see L{Message.header_bytes}."""
        value = self._row.get("header")
        if value is None:
            value = self._compute("header", self._header)
        return value

    def _header(self) -> bytes:
        if self._message is None:
            read_header = getattr(self._mailbox, "read_header", None)
            if read_header is not None:
                # The store's header block (IMailbox.read_header) is what
                # the parser would find: the body is not read at all.
                return read_header(self.uid)
        return self._real().header_bytes()

    def envelope(self) -> bytes:
        """The wire-encoded ENVELOPE; see L{Message.envelope}."""
        value = self._row.get("envelope")
        if value is None:
            value = self._compute("envelope", self._envelope)
        return value

    def _envelope(self) -> bytes:
        # The ENVELOPE depends on the top-level header only, and a
        # Message made of just that block finds the same header.
        if self._message is None and (self._row.get("header") is not None
                                      or hasattr(self._mailbox, "read_header")):
            return Message(self.header_bytes()).envelope()
        return self._real().envelope()

    def bodystructure(self, extended: bool) -> bytes:
        """BODY or BODYSTRUCTURE; see L{Message.bodystructure}."""
        field = "bodystructure" if extended else "body"
        value = self._row.get(field)
        if value is None:
            value = self._compute(field, lambda: self._real().bodystructure(extended))
        return value

    def preview(self) -> str:
        """RFC 8970 PREVIEW; see L{Message.preview}."""
        value = self._row.get("preview")
        if value is None:
            value = self._compute("preview", lambda: self._real().preview())
        return value

    def cached_preview(self) -> Optional[str]:
        """
        PREVIEW (LAZY): the row's preview, or one computed from the message
        if this FETCH read it anyway; None (NIL) rather than a file read.
        """
        value = self._row.get("preview")
        if value is None and self.computed is not None:
            value = self.computed.get("preview")
        if value is None and self._message is not None:
            value = self.preview()
        return value

    def section(self, part: tuple[int, ...], text: Optional[str],
                fields: tuple[bytes, ...] = ()) -> Optional[bytes]:
        """BODY[section]; see L{Message.section}."""
        if not part and text is not None:
            is_header, spec = _header_section(
                text, fields if fields.__class__ is tuple else tuple(fields))
            if is_header:
                sections = self._row.get("sections")
                if sections is not None and spec is not None:
                    cached = sections.get(spec)
                    if cached is not None:
                        return cached
                return self._header_section(text, fields, spec)
        return self._real().section(part, text, fields)

    def _header_section(self, text: str, fields, spec: Optional[str]) -> Optional[bytes]:
        # The row lacks this header section: compute it from the header.
        # header_end() on the header block alone stops where it did on
        # the whole message, so the block answers these sections.
        data = Message(self.header_bytes()).section((), text, fields)
        if spec is not None and data is not None:
            self._computed().setdefault("sections", {})[spec] = data
        return data

    def __getattr__(self, name: str):
        # Everything else (raw, text_bytes, binary_section, ...) needs the
        # message itself.
        return getattr(self._real(), name)


class _Memory:
    """
    A per-process, size-bounded copy of index values that FETCHes read,
    in front of SQLite.  A value belongs to (mailbox identity,
    UIDVALIDITY, UID) and never changes (RFC 3501 section 2.3.1.1: a UID
    names one message for the life of its UIDVALIDITY), so nothing needs
    invalidating; a group (one column of one mailbox) is dropped as a
    whole when the budget is exceeded, least recently used first.

    SQLite answers a 10,000-row read in about 20 ms; the sessions that
    list the same mailbox again (webmail polls, every client's message
    list) then cost dictionary lookups instead.

    Entries are C{uid -> (size, value)}; the size is the store's
    RFC822.SIZE when the value was made, checked against the record as
    the index's own rows are.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._groups: "OrderedDict[tuple, dict[int, tuple[int, object]]]" = OrderedDict()
        self._weights: dict[tuple, int] = {}
        self._lock = threading.Lock()

    def group(self, key: tuple) -> dict[int, tuple[int, object]]:
        """
        The live dictionary of C{key}'s values (an empty one if there are
        none), for reading only, without the lock: its values never
        change, and a single C{dict.get} is atomic in CPython, so a reader
        sees a value either before or after a concurrent L{put} adds it.
        A group dropped meanwhile stays readable by whoever holds it.
        """
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                return _NO_ROW
            self._groups.move_to_end(key)
            return group

    def get(self, key: tuple, uids: Iterable[int]) -> dict[int, tuple[int, object]]:
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                return {}
            self._groups.move_to_end(key)
            return {u: group[u] for u in uids if u in group}

    def put(self, key: tuple, values: dict[int, tuple[int, object]]) -> None:
        if not values:
            return
        weight = sum(64 + (len(v) if isinstance(v, (bytes, str)) else 8)
                     for _size, v in values.values())
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = {}
                self._weights[key] = 0
            group.update(values)
            self._weights[key] += weight
            self.used += weight
            self._groups.move_to_end(key)
            while self.used > self.budget and len(self._groups) > 1:
                old, _ = self._groups.popitem(last=False)
                self.used -= self._weights.pop(old)


#: 64 MiB holds the list, structure and header columns of about 100,000
#: messages; a process serving more active mailboxes reads SQLite again.
_memory = _Memory(64 * 1024 * 1024)


def _fits(record, size: Optional[int]) -> bool:
    """
    Whether an index value stored with C{size} belongs to C{record}'s
    message.  The key (mailbox, UIDVALIDITY, UID) already names one
    message for ever (RFC 3501 section 2.3.1.1); the size is a second
    check where the store knows it.  Where the store has not computed it
    yet (a Maildir computes sizes on first use), the index's size is the
    answer, and the record learns it, so RFC822.SIZE needs no read.  A
    row written before the size was known carries none and is taken on
    the key alone.
    """
    known = record.known_size
    if size is None or known is None:
        if size is not None:
            record.learn(size=size)
        return True
    return known == size


def _date_value(record) -> Optional[float]:
    """The record's INTERNALDATE for the index (POSIX time), if known."""
    date = record.known_internaldate
    return None if date is None else date.timestamp()


def _learn_date(record, value) -> None:
    """
    Teach C{record} the INTERNALDATE its index row keeps: a restarted
    server lists a Maildir without a stat per file (DESIGN.md rule 5: it
    never changes), and the row's key already names the message.
    """
    if isinstance(value, (int, float)) and record.known_internaldate is None:
        try:
            record.learn(internaldate=datetime.fromtimestamp(value, timezone.utc))
        except (OverflowError, OSError, ValueError):
            pass  # a scribbled row: the store computes it


class _MailboxCache:
    """
    What the Fetch, Search and Sort caches share: the node's index of one
    mailbox, opened in this thread and pruned of expunged UIDs once per
    command, and write-back of computed rows with the facts every row
    carries (the size and INTERNALDATE the store knew).
    """

    def __init__(self, index_dir: str, identity: str) -> None:
        self.index_dir = index_dir
        self.identity = identity
        self._pruned = False

    def _index(self, view) -> MailboxIndex:
        index = _index_for(self.index_dir, self.identity)
        if not self._pruned:
            # Once per command: the view does not change during one.
            self._pruned = True
            _prune_if_changed(index, self.index_dir, self.identity, view)
        return index

    def _write(self, view, rows: dict[int, dict]) -> None:
        """
        Write C{rows} (UID -> computed columns) in one transaction.  The
        size only if known: a header FETCH must not read the whole file
        to learn it (a row is checked by its key).  Blocking.
        """
        records = view.records
        rows = {uid: dict(row, size=records[uid].known_size,
                          internaldate=_date_value(records[uid]))
                for uid, row in rows.items() if uid in records}
        if rows:
            _index_for(self.index_dir, self.identity).put_many(view.uidvalidity, rows)


class FetchCache(_MailboxCache):
    """
    The index of one mailbox as one FETCH command uses it.

    @param index_dir: the node's index directory.
    @param identity: see L{mailbox_identity}.
    @param fields: from L{cached_fields}.
    """

    def __init__(self, index_dir: str, identity: str, fields: tuple[str, ...],
                 specs: tuple[str, ...] = ()) -> None:
        super().__init__(index_dir, identity)
        self.fields = fields
        self.specs = specs

    @classmethod
    def for_fetch(cls, account, mailbox, attrs) -> Optional["FetchCache"]:
        """
        The cache for a FETCH of C{attrs}, or None when there is none to
        use: no index directory configured, or an item that needs the
        message content anyway.
        """
        index_dir = getattr(account, "index_dir", None)
        if not index_dir:
            return None
        fields = cached_fields(attrs)
        if fields is None:
            return None
        specs = {section_spec(a.section.text, a.section.fields) for a in attrs
                 if a.name == "BODY" and a.section is not None}
        specs.discard(None)
        return cls(index_dir, mailbox_identity(account.user, mailbox), fields,
                   tuple(sorted(specs)))

    def lookup(self, view, uids: list[int]) -> dict[int, dict]:
        """
        The rows for C{uids}, with rows whose size disagrees with the
        store's record left out: one query for the columns, one per
        header-field list, and one for the header blocks of messages
        whose answer is missing.  Blocking.
        """
        index = self._index(view)
        records = view.records
        uv = view.uidvalidity
        out: dict[int, dict] = {}
        columns = [f for f in self.fields if f != "size"]
        # Memory first; SQLite for the UIDs some wanted column lacks.
        # The groups are read in place (see _Memory.group); a row is made
        # once per UID, as a literal, and only then added to.
        missing: set[int] = set()
        for column in columns:
            found = _memory.group((self.identity, uv, column))
            for uid in uids:
                hit = found.get(uid)
                record = records.get(uid)
                if hit is not None and record is not None and _fits(record, hit[0]):
                    row = out.get(uid)
                    if row is None:
                        out[uid] = {"size": hit[0], column: hit[1]}
                    else:
                        row[column] = hit[1]
                else:
                    missing.add(uid)
        if missing:
            ask = [u for u in uids if u in missing]
            rows = index.get_many(uv, ask, self.fields + ("internaldate",))
            fresh: dict[str, dict] = {c: {} for c in columns}
            for uid, row in rows.items():
                record = records.get(uid)
                if record is None or not _fits(record, row.get("size")):
                    continue
                _learn_date(record, row.get("internaldate"))
                mine = out.setdefault(uid, {"size": row["size"]})
                for column in columns:
                    value = row.get(column)
                    mine[column] = value
                    if value is not None:
                        fresh[column][uid] = (row["size"], value)
            for column, values in fresh.items():
                _memory.put((self.identity, uv, column), values)
        for spec in self.specs:
            key = (self.identity, uv, "sections", spec)
            found = _memory.group(key)
            lacking = []
            for uid in uids:
                hit = found.get(uid)
                record = records.get(uid)
                if hit is not None and record is not None and _fits(record, hit[0]):
                    row = out.get(uid)
                    if row is None:
                        out[uid] = {"size": hit[0], "sections": {spec: hit[1]}}
                    else:
                        row.setdefault("sections", {})[spec] = hit[1]
                else:
                    lacking.append(uid)
            if not lacking:
                continue
            fresh_sections = {}
            for uid, (size, data) in index.get_sections(uv, lacking, spec).items():
                record = records.get(uid)
                if record is not None and _fits(record, size):
                    row = out.setdefault(uid, {"size": size})
                    row.setdefault("sections", {})[spec] = data
                    if data is not None:
                        fresh_sections[uid] = (size, data)
            _memory.put(key, fresh_sections)
        if "header" not in self.fields:
            # A cached header block computes a missing ENVELOPE or field
            # list without the file; fetch it only where one is missing.
            lacking = self._lacking_header(uids, records, out)
            if lacking:
                for uid, row in index.get_many(view.uidvalidity, lacking,
                                               ("header", "size")).items():
                    if row["header"] is not None and _fits(records[uid], row["size"]):
                        out.setdefault(uid, {"size": row["size"]})["header"] = row["header"]
        return out

    def _lacking_header(self, uids: list[int], records, out: dict[int, dict]) -> list[int]:
        # The UIDs in the view whose row lacks the ENVELOPE or a field
        # list this FETCH wants (or that have no row at all).
        want_envelope = "envelope" in self.fields
        specs = self.specs
        lacking = []
        for uid in uids:
            if uid not in records:
                continue
            row = out.get(uid)
            if row is None or (want_envelope and row.get("envelope") is None):
                lacking.append(uid)
            elif specs:
                sections = row.get("sections")
                if sections is None:
                    lacking.append(uid)
                elif len(specs) == 1:
                    if specs[0] not in sections:
                        lacking.append(uid)
                elif any(spec not in sections for spec in specs):
                    lacking.append(uid)
        return lacking

    def message_maker(self, view) -> Callable[[int, Optional[dict]], CachedMessage]:
        """
        A function of C{(uid, row)} that makes the L{CachedMessage} for
        C{uid} from its row (from L{lookup}, or None), reading the store
        only if needed.
        """
        return functools.partial(CachedMessage, view.mailbox)

    def store(self, view, messages: Iterable[CachedMessage]) -> None:
        """Write back, in one transaction, what C{messages} computed.  Blocking."""
        self._write(view, {m.uid: m.computed for m in messages if m.computed})


def search_fields(key) -> tuple[str, ...]:
    """
    The index columns that serve the header keys of the search program
    C{key}: a column of L{index.SEARCH_FIELDS} for each of BCC, CC, FROM,
    SUBJECT and TO, the header block for HEADER and SENTBEFORE/ON/SINCE.
    Empty when no key can use the index.
    """
    from imapd.search.match import KEY_COLUMNS

    fields: set[str] = set()

    def walk(k) -> None:
        name = k.name
        if name in KEY_COLUMNS:
            fields.add(KEY_COLUMNS[name])
        elif name in ("HEADER", "SENTBEFORE", "SENTON", "SENTSINCE"):
            fields.add("header")
        for child in k.children:
            walk(child)
    walk(key)
    return tuple(sorted(fields))


class SearchCache(_MailboxCache):
    """
    The index of one mailbox as one SEARCH uses it: rows for a batch of
    UIDs in one query (plus one for the header blocks of rows that lack
    a wanted search column, so they are filled without the file), and
    what the batch computed written back in one transaction.

    @param fields: from L{search_fields}.
    """

    def __init__(self, index_dir: str, identity: str, fields: tuple[str, ...]) -> None:
        super().__init__(index_dir, identity)
        self.fields = fields

    @classmethod
    def for_search(cls, account, mailbox, key) -> Optional["SearchCache"]:
        """The cache for the search program C{key}, or None when it has no use."""
        index_dir = getattr(account, "index_dir", None)
        if not index_dir:
            return None
        fields = search_fields(key)
        if not fields:
            return None
        return cls(index_dir, mailbox_identity(account.user, mailbox), fields)

    def lookup(self, view, uids: list[int]) -> dict[int, dict]:
        """
        Rows for C{uids} whose size matches the store's record.  Blocking.
        """
        index = self._index(view)
        records = view.records
        wanted = self.fields + ("size",)
        out = {uid: row for uid, row in index.get_many(view.uidvalidity, uids, wanted).items()
               if uid in records and _fits(records[uid], row.get("size"))}
        if "header" not in self.fields:
            lacking = [uid for uid in uids if uid in records and (
                uid not in out or any(out[uid].get(f) is None for f in self.fields))]
            if lacking:
                for uid, row in index.get_many(view.uidvalidity, lacking,
                                               ("header", "size")).items():
                    if row["header"] is not None and _fits(records[uid], row["size"]):
                        out.setdefault(uid, {"size": row["size"]})["header"] = row["header"]
        return out

    def store(self, view, items: Iterable) -> None:
        """
        Write back, in one transaction, what the search items (see
        L{imapd.search.SearchItem.computed}) computed.  Blocking.
        """
        self._write(view, {item.record.uid: item.computed for item in items if item.computed})


class SortCache(_MailboxCache):
    """
    The index of one mailbox as SORT and THREAD use it: the stored keys
    (column C{sortkeys}, see L{imapd.sort.keys.encode_keys}) and, where a
    row has none, the header block to compute them from without the file.
    A restarted server sorts a mailbox it sorted before without reading
    its messages.
    """

    @classmethod
    def for_account(cls, account, mailbox) -> Optional["SortCache"]:
        """The cache of C{mailbox}, or None without an index directory."""
        index_dir = getattr(account, "index_dir", None)
        if not index_dir:
            return None
        return cls(index_dir, mailbox_identity(account.user, mailbox))

    def lookup(self, view, uids: list[int]) -> dict[int, dict]:
        """Rows with C{sortkeys} and C{header} for C{uids}.  Blocking."""
        records = view.records
        return {uid: row for uid, row in
                self._index(view).get_many(view.uidvalidity, uids,
                                           ("sortkeys", "header", "size")).items()
                if uid in records and _fits(records[uid], row.get("size"))}

    def store(self, view, rows: dict[int, dict]) -> None:
        """Write C{rows} (C{sortkeys}) in one transaction.  Blocking."""
        self._write(view, rows)
