# -*- test-case-name: tests.imapd.commands.test_fetch -*-
"""
FETCH and UID FETCH (RFC 3501 sections 6.4.5 and 6.4.8).

The handler stays thin: rendering is L{imapd.fetch}, message structure is
L{imapd.message}.  Messages are read and rendered in the storage thread
pool in batches, in one job that streams each batch to the reactor thread
as one write (L{imapd.protocol.IMAPServerProtocol.run_streaming}), so a
large FETCH neither blocks the reactor nor builds one huge response, and
pays no pool round trip per batch.
When the account has an index directory, attribute lists that need only
the header or the MIME structure are answered from the per-node cache
(L{imapd.cache}): one lookup and one write-back per batch.
"""

from __future__ import annotations

import time

from imapd.errors import BadCommand, CommandFailed
from imapd.parser.types import Fetch, FetchAttr
from storage.errors import MessageExpunged
from storage.flagchange import FlagChange

__all__ = ["handle_fetch", "mark_seen"]

#: Messages rendered per batch: one index lookup and one write each.
_BATCH = 200
#: Bytes of message content per batch when the messages are read from
#: the store: a batch of long bodies is cut short, so that the reactor
#: writes them to the client while the next ones are read.
_BATCH_BYTES = 1 << 20
#: Seconds one streaming job renders before it gives its pool thread
#: back: other jobs of the same mailbox (L{imapd.server.StoragePool}
#: shares) get their turn, and a long FETCH is not taken for a stuck one.
#: A warm FETCH of 10,000 messages takes one job.
_SLICE = 0.25
_FLAGS = FetchAttr("FLAGS")
_MODSEQ = FetchAttr("MODSEQ")
#: Items answered from the view's records alone, without the store.
_IN_MEMORY = frozenset({"UID", "FLAGS", "MODSEQ"})
#: Most messages such a FETCH renders on the reactor thread rather than
#: in the storage pool (about 1 ms per 500 on this project's machines):
#: a client's flag refresh of a small mailbox then costs no pool trip,
#: and a large one still cannot hold the reactor for long (issue 18).
_INLINE_MAX = 500


def _vanished_line(view, cmd: Fetch) -> bytes:
    """
    Blocking: RFC 7162 section 3.2.6, the VANISHED UID FETCH modifier:
    the UIDs of the command's set expunged since CHANGEDSINCE, as
    C{* VANISHED (EARLIER)}, sent before the FETCH responses.
    """
    from imapd.commands.select import _absent, within
    from imapd.wire import uid_set

    mailbox = view.mailbox
    largest = max(view.uidnext - 1, view.uids[-1] if view.uids else 0)
    finder = getattr(mailbox, "expunged_since", None)
    gone = finder(cmd.changedsince) if finder is not None else None
    if gone is None:
        gone = _absent(view.uids, largest + 1, cmd.sequence)
    else:
        gone = within(gone, cmd.sequence, largest)
    # Messages still in this session's view were not yet reported as
    # expunged to it; they get their VANISHED at the next sync.
    gone = [u for u in gone if u not in view.records]
    if not gone:
        return b""
    return b"* VANISHED (EARLIER) %s\r\n" % uid_set(gone).encode()


_ADD_SEEN = FlagChange(add=frozenset({"\\Seen"}))


def mark_seen(view, uids) -> list[int]:
    """
    Set C{\\Seen} on the messages that lack it (RFC 3501 section 6.4.5:
    BODY[] without .PEEK).  Blocking; returns the UIDs asked for.  The
    store adds C{\\Seen} to the flags it holds (never writes back this
    view's copy, which would undo another session's change).
    """
    changes = {
        u: _ADD_SEEN
        for u in uids
        if u in view.records and "\\Seen" not in view.records[u].flags and not view.is_vanished(u)
    }
    view.commit_flags(changes)
    return list(changes)


def _render_batch(view, pairs, attrs, with_flags, need_message, include_uid, changed,
                  cache=None, budget=None):
    """
    Blocking: render the FETCH responses of C{pairs} into one C{bytes}
    (one transport write).  With a C{budget}, stop after the message whose
    content takes the batch past that many bytes, so that long bodies
    reach the network while the next ones are read.

    @return: C{(data, missing, done)}: the responses, how many named
        messages were gone, and how many of C{pairs} were handled.
    """
    from imapd.fetch import ExpungedMessage, compile_fetch, expunged_record
    from imapd.message import Message

    renderer = compile_fetch(attrs, include_uid)
    render = renderer.render_into
    render_changed = compile_fetch(with_flags, include_uid).render_into if changed else render
    records = view.records
    shown_flags = view.shown_flags
    # Without a FLAGS item the renderer never looks at the flags.
    need_flags = renderer.needs_flags
    out: list[bytes] = []
    missing = 0
    done = 0
    size = 0

    def one(seq, uid, record, message) -> None:
        # RFC 3501 section 6.4.5: a message this FETCH marked \Seen gets
        # its new FLAGS in its response.
        if uid in changed:
            render_changed(out, seq, record, shown_flags(uid), message)
        else:
            render(out, seq, record, shown_flags(uid) if need_flags else None, message)

    def gone(seq, uid, record, row=None) -> None:
        # Another session expunged it: answer with what is left (see
        # handle_fetch), as Dovecot does.
        one(seq, uid, expunged_record(record), ExpungedMessage(row))
    if cache is not None:
        rows = cache.lookup(view, [u for _s, u in pairs])
        make = cache.message_maker(view)
        cached = []
        for seq, uid in pairs:
            done += 1
            record = records.get(uid)
            if record is None:
                missing += 1
                continue
            # Reads the store lazily, only for what the row lacks.
            message = make(uid, rows.get(uid))
            cached.append(message)
            try:
                one(seq, uid, record, message)
            except MessageExpunged:
                missing += 1
                gone(seq, uid, record, rows.get(uid))
        # One transaction per batch, after rendering: the batch's answer
        # does not wait on a busy index.
        cache.store(view, cached)
        return b"".join(out), missing, done
    mailbox = view.mailbox
    for seq, uid in pairs:
        done += 1
        record = records.get(uid)
        if record is None:
            missing += 1
            continue
        message = None
        try:
            if need_message:
                message = Message(mailbox.read(uid))
            one(seq, uid, record, message)
        except MessageExpunged:
            missing += 1
            gone(seq, uid, record)
            continue
        if budget is not None and message is not None:
            size += len(message.raw)
            if size >= budget:
                break
    return b"".join(out), missing, done


def _render_all(emit, view, pairs, start, attrs, with_flags, need_message, include_uid,
                changed, cache, budget) -> tuple[int, int]:
    """
    Blocking: render C{pairs[start:]} batch by batch, handing each batch
    to C{emit} (L{imapd.protocol.IMAPServerProtocol.run_streaming}) as one
    write, for at most L{_SLICE} seconds.

    @return: C{(missing, next)}: how many of the named messages were gone,
        and where the next job starts (C{len(pairs)} when done, or when
        the connection is closing).
    """
    deadline = time.monotonic() + _SLICE
    missing = 0
    i = start
    while i < len(pairs):
        data, lost, done = _render_batch(
            view, pairs[i : i + _BATCH], attrs, with_flags, need_message, include_uid,
            changed, cache, budget)
        i += done
        missing += lost
        if data and not emit(data):
            return missing, len(pairs)
        if time.monotonic() >= deadline:
            break
    return missing, i


async def handle_fetch(session, cmd: Fetch):
    """RFC 3501 section 6.4.5."""
    from imapd.cache import FetchCache
    from imapd.fetch import needs_message, sets_seen

    view = session.selected
    if cmd.vanished and not (cmd.uid and "QRESYNC" in session.enabled):
        # RFC 7162 section 3.2.6: only with UID FETCH, once QRESYNC is on.
        raise BadCommand("VANISHED needs UID FETCH and ENABLE QRESYNC")
    if cmd.sequence.saved and cmd.vanished:
        raise BadCommand("VANISHED cannot be used with $")
    attrs = cmd.attrs
    if cmd.changedsince is not None or _MODSEQ in attrs:
        from imapd.commands.any import enable_condstore

        enable_condstore(session)
    pairs = view.resolve(cmd.sequence, cmd.uid)
    if cmd.changedsince is not None:
        # RFC 7162 section 3.1.4.1: only messages changed since, with
        # their MODSEQ whether asked for or not.
        since = cmd.changedsince
        pairs = [(s, u) for s, u in pairs
                 if u in view.records and view.records[u].modseq > since]
        if _MODSEQ not in attrs:
            attrs = attrs + (_MODSEQ,)
        if cmd.vanished:
            session.send(await session.run(_vanished_line, view, cmd))
    changed: set[int] = set()
    if sets_seen(attrs) and not view.readonly:
        changed = set(await session.run(mark_seen, view, [u for _s, u in pairs]))
        # Its sync may have brought keywords new to the client (RFC 3501
        # section 7.2.6): announced before the FETCHes show them.
        session.send(view.announce())
    with_flags = attrs if any(a.name == "FLAGS" for a in attrs) else attrs + (_FLAGS,)
    if view.condstore and _MODSEQ not in with_flags:
        # RFC 7162 section 3.1.4: a flag change (the implied \Seen) is
        # reported with its MODSEQ once CONDSTORE is on.
        with_flags = with_flags + (_MODSEQ,)
    need = needs_message(attrs)
    cache = FetchCache.for_fetch(session.account, view.mailbox, attrs) if need else None
    budget = _BATCH_BYTES if need and cache is None else None
    missing = 0
    i = 0
    if (not need and not changed and len(pairs) <= _INLINE_MAX
            and all(a.name in _IN_MEMORY for a in attrs)):
        # UID, FLAGS and MODSEQ come from the view's records, which are in
        # memory (invariant 3 concerns the store): no pool trip.
        data, missing, i = _render_batch(view, pairs, attrs, with_flags, False, cmd.uid,
                                         changed)
        session.send(data)
    while i < len(pairs):
        lost, i = await session.run_streaming(
            _render_all, view, pairs, i, attrs, with_flags, need, cmd.uid, changed, cache,
            budget)
        missing += lost
    if missing:
        # RFC 2180 section 4.1 and RFC 5530 section 3: the messages
        # another session expunged are answered with what is left of them
        # (ExpungedMessage) and the command completes with OK
        # [EXPUNGEISSUED], as Dovecot 2.3 does; a NO made clients and
        # test tools take the whole FETCH for failed.  The EXPUNGEs follow
        # at the next command that allows them.
        return "EXPUNGEISSUED", "Some messages were already expunged"
