# -*- test-case-name: tests.imapd.commands.test_select -*-
"""
SELECT and EXAMINE (RFC 3501 sections 6.3.1, 6.3.2), CHECK, CLOSE, EXPUNGE
(6.4.1-6.4.3), UNSELECT (RFC 3691) and UID EXPUNGE (RFC 4315).
"""

from __future__ import annotations

from imapd import mailboxname
from imapd.errors import CommandFailed
from imapd.parser.types import Check, Close, Expunge, Select, Unselect
from imapd.selected import SelectedView, format_flag_list
from storage.interfaces import SYSTEM_FLAGS

__all__ = ["handle_select", "handle_check", "handle_close", "handle_unselect",
           "handle_expunge", "close_selected"]


async def close_selected(session, expunge: bool) -> None:
    """
    Leave the selected state.  With C{expunge}, remove C{\\Deleted}
    messages silently first (CLOSE, RFC 3501 section 6.4.2).
    """
    view = session.selected
    session.selected = None
    session.state = "auth"
    if view is None:
        return
    if expunge and not view.readonly:
        await session.run(_expunge_deleted, view.mailbox, None)
    await session.run(view.mailbox.close)


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


async def handle_select(session, cmd: Select):
    """
    RFC 3501 sections 6.3.1/6.3.2.  A failed SELECT leaves no mailbox
    selected, so the previous one is closed first.
    """
    if session.selected is not None:
        await close_selected(session, expunge=False)
    name = mailboxname.from_wire(cmd.mailbox)
    store = session.account.store
    mailbox = await session.run(store.open, name, cmd.readonly)
    try:
        snapshot = await session.run(mailbox.sync)
    except BaseException:
        await session.run(mailbox.close)
        raise
    view = SelectedView(mailbox, snapshot, cmd.readonly)
    flags = sorted(SYSTEM_FLAGS) + list(snapshot.keywords)
    out = [
        b"* FLAGS " + format_flag_list(flags) + b"\r\n",
        b"* %d EXISTS\r\n" % view.exists,
        b"* %d RECENT\r\n" % len(view.recent),
    ]
    unseen = view.first_unseen()
    if unseen is not None:
        out.append(b"* OK [UNSEEN %d] First unseen.\r\n" % unseen)
    out.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % view.uidvalidity)
    out.append(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % view.uidnext)
    if cmd.readonly:
        out.append(b"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n")
    else:
        # \* : clients may create new keywords (RFC 3501 section 7.1).
        out.append(b"* OK [PERMANENTFLAGS " + format_flag_list(flags)[:-1] + b" \\*)] Flags permitted.\r\n")
    session.send(b"".join(out))
    session.selected = view
    session.state = "selected"
    key = "EXAMINE" if cmd.readonly else "SELECT"
    return ("READ-ONLY" if cmd.readonly else "READ-WRITE"), f"{key} completed"


async def handle_check(session, cmd: Check):
    """RFC 3501 section 6.4.1: our stores are always checkpointed; re-sync."""


async def handle_close(session, cmd: Close):
    """RFC 3501 section 6.4.2: expunge silently, then deselect."""
    await close_selected(session, expunge=True)


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
