"""L{SortItem}s for unit tests, built over records like the server's."""

from __future__ import annotations

from datetime import datetime, timezone

from imapd.sort.keys import HeaderKeys, SortItem
from storage.interfaces import MessageRecord


def sort_item(seq: int, uid: int, arrival: float, size: int, keys: HeaderKeys) -> SortItem:
    """A SortItem whose record has INTERNALDATE C{arrival} (POSIX time) and C{size}."""
    record = MessageRecord(uid, frozenset(), datetime.fromtimestamp(arrival, timezone.utc), size)
    return SortItem(seq, uid, record, keys)
