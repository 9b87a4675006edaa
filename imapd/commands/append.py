# -*- test-case-name: tests.imapd.commands.test_append -*-
"""APPEND (RFC 3501 section 6.3.11; MULTIAPPEND RFC 3502; APPENDUID RFC 4315)."""

from __future__ import annotations

from imapd import mailboxname, wire
from imapd.commands import quota
from imapd.commands.store import validate_flags
from imapd.errors import CommandFailed
from imapd.parser.types import Append

__all__ = ["handle_append"]


def _append(store, name, messages):
    mailbox = store.open(name, False)
    try:
        tx = mailbox.transaction()
        for flags, date, data in messages:
            tx.append(data, flags, date)
        return tx.commit()
    finally:
        mailbox.close()


async def handle_append(session, cmd: Append):
    """
    RFC 3501 section 6.3.11.  All messages of one command are committed
    together, so a MULTIAPPEND adds all or none (RFC 3502 section 6).
    """
    name = mailboxname.from_wire(cmd.mailbox)
    batch = []
    for m in cmd.messages:
        if not m.data:
            raise CommandFailed("Cannot append an empty message")
        batch.append((validate_flags(m.flags), m.date, m.data))
    # RFC 9208: the whole batch fits, or nothing is appended.
    await quota.check_add(session, len(batch), sum(quota.message_size(d) for _f, _d, d in batch))
    result = await session.run(_append, session.account.store, name, batch)
    return f"APPENDUID {result.uidvalidity} {wire.uid_set(result.appended)}", "APPEND completed"
