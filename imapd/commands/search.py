# -*- test-case-name: tests.imapd.commands.test_esearch -*-
"""
SEARCH and UID SEARCH (RFC 3501 sections 6.4.4 and 6.4.8), with RFC 4731
ESEARCH result options (C{RETURN (MIN MAX ALL COUNT)}), RFC 5182
SEARCHRES (C{RETURN (SAVE)} and C{$}) and RFC 5267 CONTEXT=SEARCH
(C{PARTIAL n:m}, C{UPDATE}, the C{CONTEXT} hint; updates are kept by
L{imapd.search.updates}).  A client that enabled IMAP4rev2 always gets
ESEARCH (RFC 9051 section 6.4.4).
"""

from __future__ import annotations

from imapd import cancel, wire
from imapd.errors import CommandFailed
from imapd.parser.types import Search

__all__ = ["in_memory", "handle_search", "run_search", "esearch_response"]


#: Messages per index query and write-back transaction in L{run_search}.
_BATCH = 900


def run_search(view, key, charset, cache=None, fts=None) -> list[tuple[int, int]]:
    """
    Blocking: the C{(seq, uid)} pairs matching the search program.

    @param cache: an L{imapd.cache.SearchCache} for the program, or None
        to read every message a key needs from the store.
    @param fts: the full-text index as this search sees it
        (L{imapd.fts.query.FtsSearch}), or None; ended here.
    """
    from imapd.search import compile_search, needs_message
    from imapd.search.sets import search_by_sets

    try:
        matcher = compile_search(key, charset, saved_uids=view.saved_uids)
        need = needs_message(key)
        if not need:
            # Flag, sequence and UID programs (what clients poll with) are
            # set algebra over the view's flag index; anything else is
            # matched one message at a time below.
            hits = search_by_sets(key, view)
            if hits is not None:
                return hits
        if fts is not None:
            # BODY and TEXT as sets too, from the full-text index: exact
            # for the messages it has; the others are read and matched.
            hits = search_by_sets(key, view, fts.set_leaf(charset))
            if hits is not None:
                indexed = fts.indexed
                # indexed holds only UIDs of the view: as many means all.
                rest = [] if len(indexed) == len(view.uids) else [
                    (seq, uid) for seq, uid in enumerate(view.uids, 1) if uid not in indexed]
                if not rest:
                    return hits
                more = _match_each(view, key, rest, matcher, cache, fts)
                return sorted([h for h in hits if h[1] in indexed] + more)
        return _match_each(view, key, list(enumerate(view.uids, 1)), matcher, cache, fts)
    finally:
        if fts is not None:
            fts.finish()


def _match_each(view, key, pairs, matcher, cache, fts) -> list[tuple[int, int]]:
    """The C{(seq, uid)} of C{pairs} that C{matcher} accepts, one message at a time."""
    from imapd.message import Message
    from imapd.search import SearchItem, needs_body, needs_message
    from storage.errors import MessageExpunged

    need = needs_message(key)
    # Header keys need only the header block: an unindexed message's body
    # (most of the file) is not read for FROM, SUBJECT or HEADER.
    read = view.mailbox.read if needs_body(key) else view.mailbox.read_header
    max_seq = len(view.uids)
    max_uid = view.uids[-1] if view.uids else 0
    hits = []
    for start in range(0, len(pairs), _BATCH):
        cancel.check()  # the client may be gone (imapd.cancel)
        batch = [(seq, uid) for seq, uid in pairs[start:start + _BATCH]
                 if not view.is_vanished(uid)]
        rows = cache.lookup(view, [uid for _seq, uid in batch]) if cache is not None else None
        items = []
        for seq, uid in batch:
            record = view.records[uid]
            loader = None
            if need:
                def loader(uid=uid):
                    return Message(read(uid))
            item = SearchItem(seq=seq, record=record, flags=view.flags(uid),
                              max_seq=max_seq, max_uid=max_uid,
                              message_loader=loader, fts=fts)
            if rows is not None:
                item.cached = rows.get(uid, {})
                item.computed = {}
                items.append(item)
            try:
                if matcher(item):
                    hits.append((seq, uid))
            except MessageExpunged:
                continue
            if fts is not None:
                fts.learn(item)
        if items:
            cache.store(view, items)
    return hits


def _search_indexed(account, view, key, charset, cache, settings):
    """
    Blocking: L{run_search} with the full-text index, where there is one.

    @return: the hits, and whether the index lacks messages of the view
        (the caller has them indexed after its answer).
    """
    from imapd.fts.query import open_search

    fts = open_search(account, view, key, settings)
    hits = run_search(view, key, charset, cache, fts)
    return hits, fts is not None and fts.missing > 0


#: Numbers per piece of an untagged SEARCH response (L{_search_line}).
_PIECE = 4096


def _search_line(numbers: list[int], tail: bytes):
    """The pieces of C{* SEARCH n n ...}, L{_PIECE} numbers each."""
    yield b"* SEARCH"
    for i in range(0, len(numbers), _PIECE):
        yield (" " + " ".join(map(str, numbers[i:i + _PIECE]))).encode()
    yield tail + b"\r\n"


def esearch_response(tag: str, uid: bool, opts, numbers: list[int],
                     modseq: int | None = None,
                     partial: tuple[int, int] | None = None) -> bytes:
    """
    RFC 4731 section 3.1: C{* ESEARCH (TAG "t") [UID] MIN n MAX n ALL set
    COUNT n}.  MIN, MAX and ALL are left out when nothing matched (there
    is no value to give); COUNT is always given when asked for.  RFC 7162
    section 3.1.5 adds C{MODSEQ n} when the search used MODSEQ.

    RFC 5267 section 4.4: C{PARTIAL (low:high set)} gives the results at
    positions low to high of C{numbers} (result order), C{NIL} when there
    are none there; the range is echoed even where it reaches past the
    end.  Ranges in sets fold ascending runs only, so a SORT order
    survives (RFC 5267 section 3.2).
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
    if partial is not None:
        low, high = partial
        window = wire.uid_set(numbers[low - 1:high]).encode() or b"NIL"
        parts.append(b"PARTIAL (%d:%d %s)" % (low, high, window))
    if "COUNT" in opts:
        parts.append(b"COUNT %d" % len(numbers))
    if modseq is not None:
        parts.append(b"MODSEQ %d" % modseq)
    return b" ".join(parts) + b"\r\n"


def uses_modseq(key) -> bool:
    """Whether the search program has a MODSEQ criterion anywhere."""
    if key.name == "MODSEQ":
        return True
    return any(uses_modseq(k) for k in key.children)


def _result_modseq(view, opts, hits: list[tuple[int, int]]) -> int | None:
    """
    RFC 7162 section 3.1.5: the highest MODSEQ of the messages returned.
    With RFC 4731 MIN and/or MAX alone, those are the messages returned
    (as for SAVE, RFC 5182 section 2.4); otherwise all matches.  None
    when nothing matched: there is nothing to report.
    """
    if not hits:
        return None
    if opts is not None and not ({"ALL", "COUNT"} & set(opts)) and {"MIN", "MAX"} & set(opts):
        picked = []
        if "MIN" in opts:
            picked.append(hits[0][1])
        if "MAX" in opts:
            picked.append(hits[-1][1])
    else:
        picked = [uid for _seq, uid in hits]
    return max(view.records[u].modseq for u in picked)


def _to_save(opts, hits: list[tuple[int, int]],
             partial: tuple[int, int] | None = None) -> frozenset[int]:
    """
    RFC 5182 section 2.4: with MIN and/or MAX but neither ALL nor COUNT,
    only the minimum and/or maximum message is saved; otherwise all of
    them.  Saved as UIDs, so that expunges do not shift them.  With
    RFC 5267 PARTIAL, the window returned is saved (as Dovecot 2.3 does;
    RFC 9394 section 3.1 says the same for its PARTIAL).
    """
    if partial is not None:
        hits = hits[partial[0] - 1:partial[1]]
    if not hits or {"ALL", "COUNT"} & set(opts) or not {"MIN", "MAX"} & set(opts):
        return frozenset(uid for _seq, uid in hits)
    saved = set()
    if "MIN" in opts:
        saved.add(hits[0][1])
    if "MAX" in opts:
        saved.add(hits[-1][1])
    return frozenset(saved)


def in_memory(view, key, charset) -> list[tuple[int, int]] | None:
    """
    The C{(seq, uid)} hits of a flag, sequence and UID program (what
    clients poll with), answered on the reactor thread from the view's
    flag index (L{imapd.search.sets}): no store or disk is involved, and
    a pool round trip would cost more than the answer.  C{None} for any
    other program, which goes to the pool (L{run_search}).
    """
    from imapd.search import compile_search, needs_message
    from imapd.search.sets import search_by_sets

    if needs_message(key):
        return None
    # Checks the charset (RFC 3501 section 6.4.4: BADCHARSET) as the
    # pool path does.
    compile_search(key, charset, saved_uids=view.saved_uids)
    return search_by_sets(key, view)


async def handle_search(session, cmd: Search):
    """
    RFC 3501 section 6.4.4; RFC 4731 when RETURN is given; RFC 5182 SAVE.
    """
    from imapd.cache import SearchCache
    from imapd.search import BadCharset

    view = session.selected
    opts = cmd.return_opts
    if opts is None and session.imap4rev2:
        # RFC 9051 section 6.4.4 (and Appendix E): the answer is always
        # ESEARCH, and no result option means ALL; the old SEARCH response
        # is IMAP4rev1's alone.
        opts = ("ALL",)
    saving = opts is not None and "SAVE" in opts
    updating = opts is not None and "UPDATE" in opts
    if updating:
        from imapd.search.updates import check_tag

        check_tag(view, cmd)
    with_modseq = uses_modseq(cmd.key)
    if with_modseq:
        from imapd.commands.any import enable_condstore

        enable_condstore(session)
    try:
        hits = in_memory(view, cmd.key, cmd.charset)
        if hits is None:
            cache = SearchCache.for_search(session.account, view.mailbox, cmd.key)
            hits, lacking = await session.run(_search_indexed, session.account, view,
                                              cmd.key, cmd.charset, cache, session.context.fts)
            if lacking:
                # The rest of a cold mailbox, indexed after the answer.
                from imapd.fts.indexer import for_session

                session.after_answer.append(lambda: for_session(session, view.mailbox.name))
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
    modseq = _result_modseq(view, opts, hits) if with_modseq else None
    if opts is None:
        tail = b" (MODSEQ %d)" % modseq if modseq is not None else b""
        # In parts, with flow control: a large mailbox's result is megabytes.
        await session.send_parts(_search_line(numbers, tail))
        return None
    if saving:
        view.saved_uids = _to_save(opts, hits, cmd.partial)
    if updating:
        from imapd.search.updates import start_updating

        start_updating(session, view, cmd, [uid for _seq, uid in hits])
    # RFC 5182 section 2.4: SAVE alone returns no ESEARCH response.
    if set(opts) - {"SAVE"}:
        session.send(esearch_response(cmd.tag, cmd.uid, opts, numbers, modseq,
                                      cmd.partial))
    return None
