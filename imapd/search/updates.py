# -*- test-case-name: tests.imapd.commands.test_context_search -*-
"""
Search results kept up to date for the client: RFC 5267 section 4.3
(C{SEARCH/SORT RETURN (UPDATE)}, CONTEXT=SEARCH and CONTEXT=SORT).

A searching command with UPDATE registers an L{Updating} result in the
selected view's L{UpdateContexts}; the view holds them, so they end with
the selection (section 4.3: "Updates will cease when the mailbox is no
longer selected").  The result is told to the client again, as the
difference from what it was last told, in unsolicited
C{* ESEARCH (TAG "t") [UID] REMOVEFROM (...) ADDTO (...)} responses:

 - at a re-sync of the view (L{refresh}, called by the session after the
   changes of the store were applied, so an ADDTO naming new message
   numbers comes after their EXISTS, section 4.3.3), whoever made the
   change: this session, another session, process or node, an MDA;
 - just before the EXPUNGE (or VANISHED) responses of messages that
   leave a result by being expunged (L{UpdateContexts.removing}, called
   by L{imapd.selected.SelectedView.remove}), numbered as the client
   still numbers them (section 4.3.4).

When updates are sent: only at re-syncs that may also send EXPUNGE, that
is, never while a command that uses message sequence numbers (FETCH,
STORE, SEARCH, ...) is answered (RFC 3501 section 7.4.1), not even for
UID results; they go out at the next command that allows them, at NOOP,
or during IDLE.  That is when Dovecot 2.3 sends them too.

Cost: a result is evaluated again only when the view changed (its
C{version}), with the same code as the command (flag, sequence and UID
programs on the reactor from the flag index; others in the storage pool,
helped by the search and sort caches).  At most
C{limits.max_updating_searches} (8) results per session are kept up to
date; past that, and for programs whose
result changes with the clock (YOUNGER, OLDER) or with the saved result
C{$}, the command says C{* NO [NOUPDATE "tag"]} and still answers its
other options (section 4.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from imapd import wire

__all__ = ["Updating", "UpdateContexts", "refusal",
           "contexts_of", "refresh", "esearch_line", "check_tag",
           "start_updating"]

@dataclass
class Updating:
    """
    One result kept up to date.

    @ivar cmd: the L{imapd.parser.types.Search} or
        L{imapd.parser.sort.Sort} that asked for it (tag, UID-ness,
        program, charset, sort criteria).
    @ivar uids: the result as the client knows it, as UIDs, in result
        order (mailbox order for SEARCH, sort order for SORT).
    @ivar version: the view version the result was computed at.
    @ivar upto: the highest UID of the mailbox then: messages above it
        are new to the mailbox, not just to the result.
    """

    cmd: object
    uids: list[int]
    version: int
    upto: int = 0

    @property
    def sorted(self) -> bool:
        return self.cmd.name == "SORT"

    def numbers(self, view, uids) -> list[int]:
        """UIDs, or the view's sequence numbers for a non-UID command."""
        if self.cmd.uid:
            return list(uids)
        return [view.seq_of(u) for u in uids]

    def removal(self, view, gone: set[int]) -> Optional[bytes]:
        """
        The C{REMOVEFROM} data item that takes C{gone} out of the result,
        numbered by the view as it is now; the result drops them.  For
        SORT each run of neighbours is one C{position set} pair, the
        positions counted after the earlier pairs were applied (section
        4.3.4); for SEARCH the position is 0 and the set in mailbox order.
        """
        out = [u for u in self.uids if u in gone]
        if not out:
            return None
        if not self.sorted:
            pairs = [(0, out)]
        else:
            pairs, kept = [], 0
            for u in self.uids:
                if u not in gone:
                    kept += 1
                elif pairs and pairs[-1][0] == kept + 1:
                    pairs[-1][1].append(u)
                else:
                    pairs.append((kept + 1, [u]))
        item = self._pairs(b"REMOVEFROM", view, pairs)
        self.uids = [u for u in self.uids if u not in gone]
        return item

    def addition(self, view, new: list[int]) -> Optional[bytes]:
        """
        The C{ADDTO} data item that turns the result (with nothing to
        remove any more) into C{new}: for SORT, runs of new neighbours at
        their final positions, in ascending order, so each insertion
        lands where it belongs (section 4.3.3); for SEARCH position 0.
        """
        have = set(self.uids)
        if not self.sorted:
            pairs = [(0, [u for u in new if u not in have])]
            if not pairs[0][1]:
                pairs = []
        else:
            pairs = []
            for pos, u in enumerate(new, 1):
                if u in have:
                    continue
                if pairs and pairs[-1][0] + len(pairs[-1][1]) == pos:
                    pairs[-1][1].append(u)
                else:
                    pairs.append((pos, [u]))
        self.uids = list(new)
        return self._pairs(b"ADDTO", view, pairs) if pairs else None

    def _pairs(self, name: bytes, view, pairs) -> bytes:
        parts = []
        for pos, uids in pairs:
            numbers = self.numbers(view, uids)
            if not self.sorted:
                numbers.sort()
            parts.append(b"%d %s" % (pos, wire.uid_set(numbers).encode()))
        return name + b" (" + b" ".join(parts) + b")"


def esearch_line(cmd, items: list[bytes]) -> bytes:
    """C{* ESEARCH (TAG "t") [UID] item...} for an update."""
    head = b"* ESEARCH (TAG " + wire.quoted(cmd.tag.encode()) + b")"
    if cmd.uid:
        head += b" UID"
    return b" ".join([head] + items) + b"\r\n"


class UpdateContexts:
    """The results of one selected view kept up to date, by tag."""

    def __init__(self) -> None:
        self.by_tag: dict[str, Updating] = {}

    def __bool__(self) -> bool:
        return bool(self.by_tag)

    def __len__(self) -> int:
        return len(self.by_tag)

    def removing(self, view, doomed: set[int]) -> list[bytes]:
        """
        Called by L{imapd.selected.SelectedView.remove} before it removes
        C{doomed} and writes their EXPUNGEs: the REMOVEFROM responses,
        numbered as the client numbers the messages until then (RFC 5267
        section 4.3.4: "MUST be sent prior to the expunge notification").
        """
        out = []
        for c in self.by_tag.values():
            item = c.removal(view, doomed)
            if item is not None:
                out.append(esearch_line(c.cmd, [item]))
        return out


def contexts_of(view) -> UpdateContexts:
    """The view's L{UpdateContexts}, made on first use."""
    if view.contexts is None:
        view.contexts = UpdateContexts()
    return view.contexts


def _uses(key, test) -> bool:
    """Whether C{test} holds for a node of the search program."""
    return test(key) or any(_uses(k, test) for k in key.children)


def refusal(session, view, cmd) -> Optional[str]:
    """
    Why the result of C{cmd} cannot be kept up to date, or None.
    RFC 5267 section 4.3.1 lets the server refuse (NOUPDATE).
    """
    if _uses(cmd.key, lambda k: k.name in ("YOUNGER", "OLDER")):
        # RFC 5032: the result changes as time passes, without any change
        # to the mailbox that would make us look again.
        return "YOUNGER/OLDER results change with the clock: not updated"
    if _uses(cmd.key, lambda k: k.name in ("SEQSET", "UID")
             and getattr(k.value, "saved", False)):
        return "Results using $ are not updated"
    # Section 4.3.1: at least one per client; each costs a re-evaluation
    # per change of the mailbox.
    most = max(1, session.limits.max_updating_searches)
    if view.contexts is not None and len(view.contexts) >= most:
        return f"Too many updating searches (at most {most})"
    return None


async def evaluate(session, view, cmd) -> list[int]:
    """The UIDs of C{cmd}'s result in result order, as the command finds them."""
    if cmd.name == "SORT":
        from imapd.cache import SortCache
        from imapd.commands.sort import run_sort

        pairs = await session.run(run_sort, view, cmd,
                                  SortCache.for_account(session.account, view.mailbox))
    else:
        from imapd.cache import SearchCache
        from imapd.commands.search import in_memory, run_search

        pairs = in_memory(view, cmd.key, cmd.charset)
        if pairs is None:
            cache = SearchCache.for_search(session.account, view.mailbox, cmd.key)
            pairs = await session.run(run_search, view, cmd.key, cmd.charset, cache)
    return [uid for _seq, uid in pairs]


async def refresh(session, view) -> None:
    """
    Send the ADDTO/REMOVEFROM responses for every result of C{view} whose
    content may have changed since it was last told (the view changed).
    A result that can no longer be computed (the store failed) is dropped
    with a C{* NO [NOUPDATE]}, rather than failing the command that
    happened to re-sync.  With RFC 5465 section 7's C{UPDATE (fetch-atts)}
    the messages added get a FETCH of those first.
    """
    contexts = view.contexts
    for tag, c in list(contexts.by_tag.items()):
        if c.version == view.version:
            continue
        try:
            new = await evaluate(session, view, c.cmd)
        except Exception:
            session.log.failure("updating search {tag} failed", tag=tag)
            contexts.by_tag.pop(tag, None)
            session.send(b"* NO [NOUPDATE " + wire.quoted(tag.encode())
                         + b"] Search result can no longer be updated\r\n")
            continue
        if session.selected is not view or contexts.by_tag.get(tag) is not c:
            continue
        c.version = view.version
        upto, c.upto = c.upto, view.uids[-1] if view.uids else 0
        keep = set(new)
        known = set(c.uids)
        items = [c.removal(view, {u for u in c.uids if u not in keep})]
        if c.sorted and [u for u in new if u in known] != c.uids:
            # Sort keys do not change, so the messages that stay keep
            # their order; if they did not, start the result afresh.
            items.append(c.removal(view, set(c.uids)))
            known = set()
        items.append(c.addition(view, new))
        items = [i for i in items if i is not None]
        # RFC 5465 section 7: the FETCH is for new messages, not for old
        # ones that a flag change brought into the result.
        added = [u for u in new if u not in known and u > upto]
        if added and c.cmd.update_atts:
            from imapd.commands.fetch import handle_fetch
            from imapd.parser.types import Fetch, SequenceSet

            await handle_fetch(session, Fetch(
                "*", SequenceSet(tuple((u, u) for u in sorted(added))), c.cmd.update_atts,
                uid=True))
        if items:
            session.send(esearch_line(c.cmd, items))


def check_tag(view, cmd) -> None:
    """
    RFC 5267 section 4.3: UPDATE under the tag of a result still being
    updated is refused with BAD (the tag is what names the result).

    @raises BadCommand: the tag is in use.
    """
    from imapd.errors import BadCommand

    if view.contexts is not None and cmd.tag in view.contexts.by_tag:
        raise BadCommand(f"Tag reuse: {cmd.tag} names a search still being updated")


def start_updating(session, view, cmd, uids: list[int]) -> None:
    """
    Keep the result C{uids} (result order) of C{cmd} up to date, or tell
    the client why not: C{* NO [NOUPDATE "tag"]} (section 4.3.1), after
    which the command still answers its other options and succeeds.
    """
    why = refusal(session, view, cmd)
    if why is not None:
        session.send(b"* NO [NOUPDATE " + wire.quoted(cmd.tag.encode()) + b"] "
                     + why.encode() + b"\r\n")
        return
    contexts_of(view).by_tag[cmd.tag] = Updating(cmd, list(uids), view.version,
                                                 view.uids[-1] if view.uids else 0)
