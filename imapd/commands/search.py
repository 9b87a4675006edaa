# -*- test-case-name: tests.imapd.commands.test_search -*-
"""SEARCH and UID SEARCH (RFC 3501 sections 6.4.4 and 6.4.8)."""

from __future__ import annotations

from imapd.errors import CommandFailed
from imapd.parser.types import Search

__all__ = ["handle_search", "run_search"]


def run_search(view, key, charset) -> list[tuple[int, int]]:
    """Blocking: the C{(seq, uid)} pairs matching the search program."""
    from imapd.message import Message
    from imapd.search import SearchItem, compile_search, needs_message
    from storage.errors import MessageExpunged

    matcher = compile_search(key, charset)
    need = needs_message(key)
    max_seq = len(view.uids)
    max_uid = view.uids[-1] if view.uids else 0
    hits = []
    for seq, uid in enumerate(view.uids, 1):
        if view.is_vanished(uid):
            continue
        record = view.records[uid]
        loader = None
        if need:
            def loader(uid=uid):
                return Message(view.mailbox.read(uid))
        try:
            if matcher(SearchItem(seq=seq, record=record, flags=view.flags(uid),
                                  max_seq=max_seq, max_uid=max_uid,
                                  message_loader=loader)):
                hits.append((seq, uid))
        except MessageExpunged:
            continue
    return hits


async def handle_search(session, cmd: Search):
    """RFC 3501 section 6.4.4."""
    from imapd.search import BadCharset

    view = session.selected
    try:
        hits = await session.run(run_search, view, cmd.key, cmd.charset)
    except BadCharset as e:
        supported = " ".join(getattr(e, "supported", ("US-ASCII", "UTF-8")))
        raise CommandFailed(f"Unsupported charset {cmd.charset}", f"BADCHARSET ({supported})")
    numbers = [uid if cmd.uid else seq for seq, uid in hits]
    session.send(b"* SEARCH" + b"".join(b" %d" % n for n in numbers) + b"\r\n")
