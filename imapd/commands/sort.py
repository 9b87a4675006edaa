# -*- test-case-name: tests.imapd.commands.test_sort -*-
"""
SORT and UID SORT (RFC 5256 section 3, RFC 5957 SORT=DISPLAY), with
RFC 5267 ESORT result options, RFC 5182 SAVE and RFC 5267 CONTEXT=SORT
(C{PARTIAL n:m} of the sorted result, C{UPDATE}: ADDTO/REMOVEFROM with
positions in sort order, kept by L{imapd.search.updates}).

Command: C{SORT [RETURN (options)] (criteria) charset search-keys}.
Example: C{a1 SORT (REVERSE DATE SUBJECT) UTF-8 ALL} answers
C{* SORT 5 3 4 1 2}; C{a2 SORT RETURN (MIN COUNT) (DATE) UTF-8 ALL}
answers C{* ESEARCH (TAG "a2") MIN 5 COUNT 5}.

The search runs first (L{imapd.commands.search.run_search}), then the
matching messages are ordered by L{imapd.sort.sort_items}; both run in the
storage thread pool because they may read messages.
"""

from __future__ import annotations

from imapd.parser.sort import Sort

__all__ = ["handle_sort", "run_sort", "sorted_search"]


def sorted_search(view, cmd) -> list[tuple[int, int]]:
    """Blocking: the search of a SORT or THREAD command, C{(seq, uid)} pairs."""
    # RFC 5256 section 3: an unknown charset is NO [BADCHARSET], naming
    # the charsets we know under their usual names.
    from imapd.commands.search import run_search
    from imapd.search import KNOWN_CHARSETS, BadCharset, compile_search

    try:
        if all(k.name == "ALL" for k in cmd.key.children):
            # Webmail sends ALL nearly always: skip per-message matching,
            # but still check the charset (RFC 5256 section 3).
            compile_search(cmd.key, cmd.charset)
            return [(seq, uid) for seq, uid in enumerate(view.uids, 1)
                    if not view.is_vanished(uid)]
        return run_search(view, cmd.key, cmd.charset)
    except BadCharset:
        raise BadCharset(KNOWN_CHARSETS, cmd.charset) from None


def run_sort(view, cmd: Sort, index=None) -> list[tuple[int, int]]:
    """
    Blocking: the C{(seq, uid)} pairs of the matches, in SORT order.

    @param index: the mailbox's L{imapd.cache.SortCache}, or None.
    """
    from imapd.sort.keys import CRITERION_GROUPS, load_items, mailbox_identity, sort_items
    from imapd.sort.results import cached_answer

    hits = sorted_search(view, cmd)

    def compute() -> list[tuple[int, int]]:
        groups = frozenset().union(*(CRITERION_GROUPS[name] for name, _r in cmd.criteria))
        items = sort_items(load_items(view, hits, groups, index), cmd.criteria)
        return [(i.seq, i.uid) for i in items]
    # The same criteria over the same messages give the same order
    # (imapd.sort.results): webmail repeats its SORT on every page.
    return cached_answer((mailbox_identity(view), "SORT", cmd.criteria),
                         hits, compute)


async def handle_sort(session, cmd: Sort):
    """
    RFC 5256 section 3; C{NO [BADCHARSET]} comes from the search.  With
    RETURN, RFC 5267 section 3: an ESEARCH response whose MIN and MAX are
    the first and last message I{in sort order} and whose ALL lists the
    messages in sort order (ranges only for ascending runs, so the order
    survives); SAVE keeps the matches for C{$} (RFC 5182 section 2.4).
    """
    from imapd.cache import SortCache
    from imapd.commands.search import _to_save, esearch_response

    view = session.selected
    opts = cmd.return_opts
    saving = opts is not None and "SAVE" in opts
    updating = opts is not None and "UPDATE" in opts
    if updating:
        from imapd.search.updates import check_tag

        check_tag(view, cmd)
    try:
        ordered = await session.run(run_sort, view, cmd,
                                    SortCache.for_account(session.account, view.mailbox))
    except BaseException:
        # RFC 5182 section 2.1: a failed SAVE leaves $ empty.
        if saving:
            view.saved_uids = frozenset()
        raise
    numbers = [uid if cmd.uid else seq for seq, uid in ordered]
    if opts is None:
        session.send(b"* SORT" + b"".join(b" %d" % n for n in numbers) + b"\r\n")
        return
    if saving:
        # Given the sorted pairs, RFC 5182's MIN/MAX-only rule saves the
        # first and last in sort order, as MIN and MAX report them.
        view.saved_uids = _to_save(opts, ordered, cmd.partial)
    if updating:
        from imapd.search.updates import start_updating

        start_updating(session, view, cmd, [uid for _seq, uid in ordered])
    # RFC 5182 section 2.4: SAVE alone returns no ESEARCH response.
    if set(opts) - {"SAVE"}:
        session.send(esearch_response(cmd.tag, cmd.uid, opts, numbers,
                                      partial=cmd.partial))
