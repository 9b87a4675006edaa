# -*- test-case-name: tests.imapd.commands.test_copymove -*-
"""
COPY (RFC 3501 section 6.4.7), MOVE (RFC 6851) and their UID forms, with
RFC 4315 COPYUID.
"""

from __future__ import annotations

from imapd import mailboxname, wire
from imapd.commands import quota
from imapd.errors import CommandFailed
from imapd.fts import indexer as fts_indexer
from imapd.parser.types import Copy, Move

__all__ = ["handle_copy", "handle_move"]


def _copy(store, source, name, uids):
    """Blocking: copy C{uids} of the open C{source} into mailbox C{name}."""
    target = store.open(name, False)
    try:
        tx = target.transaction()
        tx.copy_from(source, uids)
        return tx.commit()
    finally:
        target.close()


def _expunge(mailbox, uids):
    tx = mailbox.transaction()
    for uid in uids:
        tx.expunge(uid)
    return tx.commit()


async def _copy_command(session, cmd, move: bool = False):
    view = session.selected
    pairs = view.resolve(cmd.sequence, cmd.uid)
    uids = [u for _s, u in pairs if not view.is_vanished(u)]
    name = mailboxname.from_wire(cmd.mailbox, utf8=session.imap4rev2)
    if not uids:
        return None, []
    if not move:
        # RFC 9208: a MOVE within the user's one quota root changes no usage.
        await quota.check_copy(session, (view.records[u] for u in uids))
    result = await session.run(_copy, session.account.store, view.mailbox, name, uids)
    # The copies are indexed for SEARCH after the answer (imapd.fts).
    session.after_answer.append(lambda: fts_indexer.for_session(session, name))
    source = result.source_uids or tuple(uids)
    code = f"COPYUID {result.uidvalidity} {wire.uid_set(source)} {wire.uid_set(result.appended)}"
    return code, list(source)


async def handle_copy(session, cmd: Copy):
    """RFC 3501 section 6.4.7."""
    code, _uids = await _copy_command(session, cmd)
    return code, "COPY completed"


async def handle_move(session, cmd: Move):
    """
    RFC 6851 section 3.3: COPYUID goes in an untagged OK before the
    EXPUNGEs, since the tagged OK comes after them.
    """
    view = session.selected
    if view.readonly:
        raise CommandFailed("Mailbox is read-only", "READ-ONLY")
    code, uids = await _copy_command(session, cmd, move=True)
    if code is None:
        return None
    session.send(f"* OK [{code}] Moved\r\n".encode())
    await session.run(_expunge, view.mailbox, uids)
    for line in view.remove(uids):
        session.send(line)
