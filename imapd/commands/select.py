# -*- test-case-name: tests.imapd.commands.test_select -*-
"""
SELECT and EXAMINE (RFC 3501 sections 6.3.1, 6.3.2), CHECK, CLOSE, EXPUNGE
(6.4.1-6.4.3), UNSELECT (RFC 3691) and UID EXPUNGE (RFC 4315), with the
RFC 7162 select parameters CONDSTORE and QRESYNC, and the RFC 9051
section 6.3.2 answer for IMAP4rev2 clients.
"""

from __future__ import annotations

from bisect import bisect_right

from twisted.logger import Logger

from imapd import mailboxname
from imapd.errors import BadCommand, CommandFailed
from imapd.parser.primitives import NotParseable
from imapd.parser.qresync import parse_qresync_param
from imapd.parser.types import Check, Close, Expunge, QresyncParam, Select, SequenceSet, Unselect
from imapd.selected import SelectedView, flags_lines, format_flag_list
from imapd.wire import uid_set

_log = Logger()

#: Messages up to which SELECT builds the flag index on the reactor
#: thread (about 0.1 ms for 1,000) rather than in the storage pool.
_INLINE_INDEX = 1000

__all__ = ["handle_select", "handle_check", "handle_close", "handle_unselect",
           "handle_expunge", "close_selected"]


async def close_selected(session, expunge: bool) -> int | None:
    """
    Leave the selected state.  With C{expunge}, remove C{\\Deleted}
    messages silently first (CLOSE, RFC 3501 section 6.4.2).

    @return: with QRESYNC enabled and C{expunge}, the HIGHESTMODSEQ after
        the expunge (RFC 7162 section 3.2.8); else None.
    """
    view = session.selected
    session.selected = None
    session.state = "auth"
    if view is None:
        return None
    highest = None
    try:
        if expunge and not view.readonly:
            await session.run(_expunge_deleted, view.mailbox, None)
            if view.qresync:
                highest = (await session.run(view.mailbox.sync)).highestmodseq or None
    finally:
        await session.run(view.mailbox.close)
    return highest


def _expunge_deleted(mailbox, only_uids):
    snapshot = mailbox.sync()
    doomed = [
        r.uid for r in snapshot.messages
        if "\\Deleted" in r.flags and (only_uids is None or r.uid in only_uids)
    ]
    if not doomed:
        return ()
    tx = mailbox.transaction()
    for uid in doomed:
        tx.expunge(uid)
    return tx.commit().expunged or tuple(doomed)


def _select_params(session, cmd: Select) -> tuple[bool, QresyncParam | None]:
    """
    RFC 4466 select parameters: CONDSTORE and QRESYNC (RFC 7162 sections
    3.1.8 and 3.2.5); anything else is a client error.  Checked before the
    current mailbox is closed, so a BAD leaves it selected.
    """
    condstore = False
    qresync = None
    seen = set()
    for name, value in cmd.params:
        if name in seen:
            raise BadCommand(f"Select parameter {name} given twice")
        seen.add(name)
        if name == "CONDSTORE" and value is None:
            condstore = True
        elif name == "QRESYNC":
            if "QRESYNC" not in session.enabled:
                # RFC 7162 section 3.2.5: BAD unless ENABLE QRESYNC came first.
                raise BadCommand("QRESYNC must be enabled first (ENABLE QRESYNC)")
            try:
                qresync = parse_qresync_param(value)
            except NotParseable as e:
                raise BadCommand(f"Invalid QRESYNC parameter: {e.reason}") from None
        else:
            raise BadCommand(f"Unknown select parameter {name}")
    return condstore, qresync


def within(uids: list[int], sequence: SequenceSet | None, largest: int) -> list[int]:
    """
    The members of C{uids} (ascending) that C{sequence} names, C{*} being
    C{largest}.  The client's ranges are merged and searched by bisection,
    so a long known-uids list against a long tombstone list stays cheap.
    """
    if sequence is None:
        return list(uids)
    spans = []
    for low, high in sequence.ranges:
        a = largest if low is None else low
        b = largest if high is None else high
        spans.append((a, b) if a <= b else (b, a))
    spans.sort()
    starts: list[int] = []
    ends: list[int] = []
    for a, b in spans:
        if ends and a <= ends[-1] + 1:
            ends[-1] = max(ends[-1], b)
        else:
            starts.append(a)
            ends.append(b)
    out = []
    for u in uids:
        i = bisect_right(starts, u) - 1
        if i >= 0 and u <= ends[i]:
            out.append(u)
    return out


def _absent(present: list[int], uidnext: int, known: SequenceSet | None) -> list[int]:
    """
    UIDs below C{uidnext} not in C{present} (ascending), limited to
    C{known}: the fallback VANISHED (EARLIER) answer when the store no
    longer has the tombstones (RFC 7162 section 3.2.5.1 allows a
    superset).  Walks the client's ranges, so its cost is bounded by what
    the client named and by the mailbox, not by UIDNEXT.
    """
    have = set(present)
    largest = uidnext - 1
    if known is None:
        ranges = [(1, largest)]
    else:
        ranges = []
        for low, high in known.ranges:
            a = largest if low is None else low
            b = largest if high is None else high
            if a > b:
                a, b = b, a
            ranges.append((a, min(b, largest)))
    out: set[int] = set()
    budget = 1_000_000  # a limit on what one client can make us list
    for a, b in ranges:
        for u in range(a, b + 1):
            if u not in have:
                out.add(u)
                budget -= 1
                if budget <= 0:
                    raise CommandFailed("QRESYNC range too large; resync without it", "LIMIT")
    return sorted(out)


def _qresync_lines(view, mailbox, snapshot, param: QresyncParam) -> bytes:
    """
    Blocking: RFC 7162 section 3.2.5.1: VANISHED (EARLIER) for what was
    expunged since the client's MODSEQ, then a FETCH (UID FLAGS MODSEQ)
    for every message changed since.  Nothing when the UIDVALIDITY is
    not the client's: it has to resync from scratch anyway.
    """
    if param.uidvalidity != snapshot.uidvalidity or not snapshot.highestmodseq:
        return b""
    largest = snapshot.uidnext - 1
    finder = getattr(mailbox, "expunged_since", None)
    gone = finder(param.modseq) if finder is not None else None
    if gone is None:
        gone = _absent([r.uid for r in snapshot.messages], snapshot.uidnext, param.known_uids)
    else:
        gone = within(gone, param.known_uids, largest)
    out = []
    if gone:
        out.append(b"* VANISHED (EARLIER) %s\r\n" % uid_set(gone).encode())
    for seq, uid in enumerate(view.uids, 1):
        record = view.records[uid]
        if record.modseq > param.modseq:
            out.append(b"* %d FETCH (UID %d FLAGS %s MODSEQ (%d))\r\n"
                       % (seq, uid, format_flag_list(view.shown_flags(uid)), record.modseq))
    return b"".join(out)


def _open_synced(store, name: str, readonly: bool):
    """
    Blocking: open the mailbox and make its first sync, in one trip to the
    storage pool (each trip is a queue, a thread wake-up and a coroutine
    step); closed again if the sync fails.
    """
    mailbox = store.open(name, readonly)
    try:
        return mailbox, mailbox.sync()
    except BaseException:
        mailbox.close()
        raise


async def handle_select(session, cmd: Select):
    """
    RFC 3501 sections 6.3.1/6.3.2.  A failed SELECT leaves no mailbox
    selected, so the previous one is closed first; with QRESYNC enabled
    the client is told so by C{* OK [CLOSED]} (RFC 7162 section 3.2.11),
    and so is an IMAP4rev2 client (RFC 9051 section 6.3.2).

    For IMAP4rev2 (RFC 9051 section 6.3.2 and Appendix E) the answer
    drops C{* n RECENT} and C{[UNSEEN n]} and adds the required
    C{* LIST} of the mailbox with its attributes.
    """
    from imapd.commands.any import enable_condstore, highestmodseq_line
    from imapd.commands.mailboxes import select_list_line

    rev2 = session.imap4rev2
    condstore, qresync = _select_params(session, cmd)
    if session.selected is not None:
        await close_selected(session, expunge=False)
        if "QRESYNC" in session.enabled or rev2:
            session.send(b"* OK [CLOSED] Previous mailbox closed.\r\n")
    if condstore:
        # After the close: the HIGHESTMODSEQ below is the new mailbox's,
        # never the one being left (RFC 7162 section 3.1).
        enable_condstore(session)
    name = mailboxname.from_wire(cmd.mailbox, utf8=rev2)
    store = session.account.store
    mailbox, snapshot = await session.run(_open_synced, store, name, cmd.readonly)
    view = SelectedView(mailbox, snapshot, cmd.readonly)
    view.condstore = "CONDSTORE" in session.enabled
    view.qresync = "QRESYNC" in session.enabled
    view.imap4rev2 = rev2
    flags_line, permanent_line = flags_lines(snapshot.keywords, cmd.readonly)
    out = [flags_line, b"* %d EXISTS\r\n" % view.exists]
    if not rev2:
        out.append(b"* %d RECENT\r\n" % len(view.recent))
        unseen = view.first_unseen()
        if unseen is not None:
            out.append(b"* OK [UNSEEN %d] First unseen.\r\n" % unseen)
    out.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % view.uidvalidity)
    out.append(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % view.uidnext)
    out.append(permanent_line)
    if rev2:
        try:
            out.append(await select_list_line(session, name))
        except BaseException:
            await session.run(mailbox.close)
            raise
    # RFC 7162 section 3.1.2.1: a server with persistent MODSEQs sends
    # HIGHESTMODSEQ with every successful SELECT/EXAMINE, enabled or not
    # (clients ignore codes they do not know, RFC 3501 section 7.1), and
    # NOMODSEQ (section 3.1.2.2) for a store without them.
    out.append(highestmodseq_line(snapshot.highestmodseq))
    if qresync is not None:
        out.append(await session.run(_qresync_lines, view, mailbox, snapshot, qresync))
    session.send(b"".join(out))
    session.selected = view
    session.state = "selected"
    # A client's next command is nearly always a flag SEARCH (UNSEEN,
    # NOT DELETED) or a FETCH of flags: build the view's flag index now,
    # not when the SEARCH waits for it (1 ms for 10,000 messages; shared by
    # every session of the state).  A small mailbox's takes less than a
    # pool trip costs, so it is built here; a large one's in the pool,
    # while the tagged OK travels.
    if len(view.uids) <= _INLINE_INDEX:
        view.flag_index()
    else:
        session.run(view.flag_index).addErrback(
            lambda f: _log.failure("Building the flag index of {name!r}", f, name=name))
    key = "EXAMINE" if cmd.readonly else "SELECT"
    return ("READ-ONLY" if cmd.readonly else "READ-WRITE"), f"{key} completed"


async def handle_check(session, cmd: Check):
    """RFC 3501 section 6.4.1: our stores are always checkpointed; re-sync."""


async def handle_close(session, cmd: Close):
    """
    RFC 3501 section 6.4.2: expunge silently, then deselect; with QRESYNC
    the tagged OK carries the new HIGHESTMODSEQ (RFC 7162 section 3.2.8).
    """
    highest = await close_selected(session, expunge=True)
    if highest is not None:
        return f"HIGHESTMODSEQ {highest}", "CLOSE completed"
    return None


async def handle_unselect(session, cmd: Unselect):
    """RFC 3691: deselect without expunging."""
    await close_selected(session, expunge=False)


async def handle_expunge(session, cmd: Expunge):
    """
    RFC 3501 section 6.4.3, and RFC 4315 UID EXPUNGE, which only removes
    the named messages among the C{\\Deleted} ones.
    """
    view = session.selected
    if view.readonly:
        raise CommandFailed("Mailbox is read-only", "READ-ONLY")
    only = None
    if cmd.uids is not None:
        only = {uid for _seq, uid in view.resolve(cmd.uids, uid=True)}
    expunged = await session.run(_expunge_deleted, view.mailbox, only)
    for line in view.remove(expunged):
        session.send(line)
    if view.qresync:
        # RFC 7162 section 3.2.7: the tagged OK says the HIGHESTMODSEQ the
        # expunge led to, so the client can store it with its cache.
        snapshot = await session.run(view.mailbox.sync)
        if snapshot.highestmodseq:
            key = "UID EXPUNGE" if cmd.uids is not None else "EXPUNGE"
            return f"HIGHESTMODSEQ {snapshot.highestmodseq}", f"{key} completed"
    return None
