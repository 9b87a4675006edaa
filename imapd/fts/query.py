# -*- test-case-name: tests.imapd.fts.test_fts_search -*-
"""
L{FtsSearch}: one SEARCH's view of a mailbox's full-text index.

It is made in the storage pool at the start of the search, reads which
messages the index has (L{index.fts.FtsIndex.documents}) and then, once
per needle, which of them contain it.  All of it happens in one read
transaction, so the search sees one state of the index even while the
indexer (L{imapd.fts.indexer}) writes.

Answers, and why they equal the scan's:
  - a message counts as indexed only if its row is complete and of its
    size (the key (UIDVALIDITY, UID) names the message, RFC 3501 section
    2.3.1.1; the size guards against a mailbox recreated with a recycled
    UIDVALIDITY, as in L{imapd.cache});
  - the row holds the matcher's own folded values (L{imapd.fts.extract})
    and the needle is the matcher's own folded needle
    (L{imapd.search.match.needle}), so "in the index" is "found by the
    scan" for needles of 3 characters or more without the separator;
  - anything else (a shorter needle, a message not indexed, a failing
    index) is answered C{None}: the matcher then reads the message.

Messages read this way are indexed on the way (L{learn}), within a
memory bound, and written once the search is done (L{finish}).
"""

from __future__ import annotations

from typing import Callable, Optional

from index.fts import MIN_NEEDLE, SEPARATOR, FtsDoc, FtsIndex
from imapd.fts import DEFAULT, FtsSettings

__all__ = ["FtsSearch", "open_search", "fts_index", "uses_text"]

#: The index columns each key reads (RFC 3501 section 6.4.4: BODY is the
#: body, TEXT the header and the body).
_COLUMNS = {"BODY": ("body",), "TEXT": ("header", "body", "parts")}

#: Characters of text a search keeps for writing back; the indexer does
#: the rest.
_PENDING_LIMIT = 32 * 1024 * 1024


def uses_text(key) -> bool:
    """Whether the search program has a BODY or TEXT key anywhere."""
    if key.name in _COLUMNS:
        return True
    return any(uses_text(c) for c in key.children)


def fts_index(index_dir: str, identity: str) -> FtsIndex:
    """This thread's open full-text index of the mailbox C{identity}."""
    from imapd.cache import _index_for

    return _index_for(index_dir, identity, FtsIndex)


def open_search(account, view, key, settings: Optional[FtsSettings] = None
                ) -> Optional["FtsSearch"]:
    """
    Blocking: the index as a search of C{key} in C{view} uses it, or None
    when there is none to use (disabled, no index directory, no BODY or
    TEXT key).
    """
    from imapd.cache import mailbox_identity

    settings = settings or DEFAULT
    index_dir = getattr(account, "index_dir", None)
    if not settings.enabled or not index_dir or not uses_text(key):
        return None
    index = fts_index(index_dir, mailbox_identity(account.user, view.mailbox))
    return FtsSearch(index, view, settings)


class FtsSearch:
    """
    @ivar indexed: the UIDs of the view whose text the index has.
    """

    def __init__(self, index: FtsIndex, view, settings: FtsSettings = DEFAULT) -> None:
        self.index = index
        self.settings = settings
        self.uidvalidity = view.uidvalidity
        self._hits: dict[tuple[str, str], Optional[set[int]]] = {}
        self._pending: list[FtsDoc] = []
        self._pending_chars = 0
        self._reading = index.begin_read()
        docs = index.documents(view.uidvalidity)
        records = view.records
        # The same documents list (the file unchanged) and the same
        # records (the same snapshot, or this view unchanged) give the same
        # answer: kept on the index, so the next session's SEARCH in an
        # unchanged 100,000-message mailbox does not compare them again.
        key = (len(records), getattr(view, "version", None))
        cached = getattr(index, "_fts_indexed", None)
        if cached is not None and cached[0] is docs and cached[1] is records \
                and cached[2] == key:
            indexed, known_live = cached[3], cached[4]
        else:
            indexed = set()
            known_live = 0
            for uid, (size, complete) in docs.items():
                record = records.get(uid)
                if record is None:
                    continue
                known_live += 1
                if not complete:
                    continue
                known = record.known_size
                if known is None or size is None or known == size:
                    indexed.add(uid)
            index._fts_indexed = (docs, records, key, frozenset(indexed), known_live)
        self._docs = docs
        self._learnt: set[int] = set()
        self.indexed = indexed
        #: Messages of the view the index has no row for (see L{missing}).
        self._unknown = len(view.uids) - known_live

    def hits(self, kind: str, needle: str) -> Optional[set[int]]:
        """
        The indexed UIDs whose text has C{needle} for key C{kind} (BODY
        or TEXT), or None when the index cannot answer for this needle.
        """
        found = self._hits.get((kind, needle), False)
        if found is not False:
            return found
        found = None
        if len(needle) >= MIN_NEEDLE and SEPARATOR not in needle:
            found = self.index.match(_COLUMNS[kind], needle)
            if found is not None:
                found &= self.indexed
        self._hits[(kind, needle)] = found
        return found

    def answer(self, kind: str, needle: str, record) -> Optional[bool]:
        """Whether the message of C{record} matches, or None: read it."""
        if record.uid not in self.indexed:
            return None
        found = self.hits(kind, needle)
        return None if found is None else record.uid in found

    def set_leaf(self, charset) -> Callable:
        """
        For L{imapd.search.sets.search_by_sets}: the hits of a BODY or
        TEXT key among the indexed messages, None for any other key and
        for a needle the index cannot answer.
        """
        from imapd.search.match import needle

        def leaf(key) -> Optional[set[int]]:
            if key.name not in _COLUMNS:
                return None
            return self.hits(key.name, needle(key.value, charset))
        return leaf

    def learn(self, item) -> None:
        """
        Keep the row of a message the search had to read (the matcher
        loaded it), for L{finish} to write.
        """
        message = item._message
        uid = item.record.uid
        if message is None or uid in self._docs or uid in self._learnt \
                or self._pending_chars > _PENDING_LIMIT:
            return
        from imapd.fts.extract import document

        texts = document(message, self.settings.max_part_size)
        self._learnt.add(uid)
        self._unknown -= 1
        self._pending.append(FtsDoc(uid, len(message.raw), texts))
        self._pending_chars += sum(map(len, texts)) if texts else 0

    @property
    def missing(self) -> int:
        """Messages of the view that neither the index nor this search's rows cover."""
        return max(self._unknown, 0)

    def finish(self) -> None:
        """End the read and write what L{learn} kept.  Blocking."""
        if self._reading:
            self._reading = False
            self.index.end_read()
        if self._pending:
            pending, self._pending = self._pending, []
            self.index.add(self.uidvalidity, pending)
