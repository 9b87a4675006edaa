# -*- test-case-name: tests.imapd.commands.test_esearch -*-
"""
SEARCH and UID SEARCH (RFC 3501 sections 6.4.4 and 6.4.8), with RFC 4731
ESEARCH result options (C{RETURN (MIN MAX ALL COUNT)}) and RFC 5182
SEARCHRES (C{RETURN (SAVE)} and C{$}).
"""

from __future__ import annotations

from imapd import wire
from imapd.errors import CommandFailed
from imapd.parser.types import Search

__all__ = ["handle_search", "run_search", "esearch_response"]


#: Messages per index query and write-back transaction in L{run_search}.
_BATCH = 900


def run_search(view, key, charset, cache=None) -> list[tuple[int, int]]:
    """
    Blocking: the C{(seq, uid)} pairs matching the search program.

    @param cache: an L{imapd.cache.SearchCache} for the program, or None
        to read every message a key needs from the store.
    """
    from imapd.message import Message
    from imapd.search import SearchItem, compile_search, needs_message
    from storage.errors import MessageExpunged

    matcher = compile_search(key, charset, saved_uids=view.saved_uids)
    need = needs_message(key)
    max_seq = len(view.uids)
    max_uid = view.uids[-1] if view.uids else 0
    hits = []
    uids = view.uids
    for start in range(0, len(uids), _BATCH):
        batch = [(seq, uid) for seq, uid in enumerate(uids[start:start + _BATCH], start + 1)
                 if not view.is_vanished(uid)]
        rows = cache.lookup(view, [uid for _seq, uid in batch]) if cache is not None else None
        items = []
        for seq, uid in batch:
            record = view.records[uid]
            loader = None
            if need:
                def loader(uid=uid):
                    return Message(view.mailbox.read(uid))
            item = SearchItem(seq=seq, record=record, flags=view.flags(uid),
                              max_seq=max_seq, max_uid=max_uid,
                              message_loader=loader)
            if rows is not None:
                item.cached = rows.get(uid, {})
                item.computed = {}
                items.append(item)
            try:
                if matcher(item):
                    hits.append((seq, uid))
            except MessageExpunged:
                continue
        if items:
            cache.store(view, items)
    return hits


def esearch_response(tag: str, uid: bool, opts, numbers: list[int]) -> bytes:
    """
    RFC 4731 section 3.1: C{* ESEARCH (TAG "t") [UID] MIN n MAX n ALL set
    COUNT n}.  MIN, MAX and ALL are left out when nothing matched (there
    is no value to give); COUNT is always given when asked for.
    """
    parts = [b"* ESEARCH (TAG " + wire.quoted(tag.encode()) + b")"]
    if uid:
        parts.append(b"UID")
    if numbers:
        if "MIN" in opts:
            parts.append(b"MIN %d" % numbers[0])
        if "MAX" in opts:
            parts.append(b"MAX %d" % numbers[-1])
        if "ALL" in opts:
            parts.append(b"ALL " + wire.uid_set(numbers).encode())
    if "COUNT" in opts:
        parts.append(b"COUNT %d" % len(numbers))
    return b" ".join(parts) + b"\r\n"


def _to_save(opts, hits: list[tuple[int, int]]) -> frozenset[int]:
    """
    RFC 5182 section 2.4: with MIN and/or MAX but neither ALL nor COUNT,
    only the minimum and/or maximum message is saved; otherwise all of
    them.  Saved as UIDs, so that expunges do not shift them.
    """
    if not hits or {"ALL", "COUNT"} & set(opts) or not {"MIN", "MAX"} & set(opts):
        return frozenset(uid for _seq, uid in hits)
    saved = set()
    if "MIN" in opts:
        saved.add(hits[0][1])
    if "MAX" in opts:
        saved.add(hits[-1][1])
    return frozenset(saved)


async def handle_search(session, cmd: Search):
    """
    RFC 3501 section 6.4.4; RFC 4731 when RETURN is given; RFC 5182 SAVE.
    """
    from imapd.cache import SearchCache
    from imapd.search import BadCharset

    view = session.selected
    opts = cmd.return_opts
    saving = opts is not None and "SAVE" in opts
    try:
        cache = SearchCache.for_search(session.account, view.mailbox, cmd.key)
        hits = await session.run(run_search, view, cmd.key, cmd.charset, cache)
    except BadCharset as e:
        if saving:
            # RFC 5182 section 2.1: a failed SEARCH ... SAVE empties $.
            view.saved_uids = frozenset()
        supported = " ".join(getattr(e, "supported", ("US-ASCII", "UTF-8")))
        raise CommandFailed(f"Unsupported charset {cmd.charset}", f"BADCHARSET ({supported})")
    except BaseException:
        if saving:
            view.saved_uids = frozenset()
        raise
    numbers = [uid if cmd.uid else seq for seq, uid in hits]
    if opts is None:
        session.send(b"* SEARCH" + b"".join(b" %d" % n for n in numbers) + b"\r\n")
        return None
    if saving:
        view.saved_uids = _to_save(opts, hits)
    # RFC 5182 section 2.4: SAVE alone returns no ESEARCH response.
    if set(opts) - {"SAVE"}:
        session.send(esearch_response(cmd.tag, cmd.uid, opts, numbers))
    return None
