# -*- test-case-name: tests.imapd.commands.test_append -*-
"""
APPEND (RFC 3501 section 6.3.11; MULTIAPPEND RFC 3502; APPENDUID RFC 4315;
literal8 RFC 3516 section 4.4; CATENATE RFC 4469).
"""

from __future__ import annotations

from typing import Optional

from imapd import mailboxname, wire
from imapd.catenate import Catenator, Spool
from imapd.commands import quota
from imapd.commands.store import validate_flags
from imapd.errors import BadCommand, CommandFailed
from imapd.fts import indexer as fts_indexer
from imapd.message import protect_binary_parts
from imapd.parser.types import Append
from storage.errors import MailboxNotFound

__all__ = ["handle_append", "check_urls"]


def _build(messages, catenator, check_quota=None) -> list:
    """
    Blocking: the messages to append, as bytes or, for CATENATE, as a
    L{Spool} the parts were streamed into (never the whole message in
    memory).  URL sizes are checked against the limits, and the batch
    against the quota, before any URL is fetched (L{imapd.catenate}).
    """
    batch = []
    try:
        try:
            planned = iter(catenator.plan([parts for _f, _d, _data, parts, _b in messages
                                           if parts]))
            if check_quota is not None:
                check_quota(len(messages), sum(
                    next(planned) if parts else quota.message_size(data)
                    for _f, _d, data, parts, _b in messages))
            # CATENATE sources are read before the target is opened or
            # anything is queued: a bad URL leaves no trace (RFC 4469 section 3).
            for flags, date, data, parts, binary in messages:
                if parts:
                    spool = Spool()
                    batch.append((flags, date, spool))
                    catenator.build_into(parts, spool)
                    if not spool.size:
                        raise CommandFailed("Cannot append an empty message")
                    if not binary:
                        continue
                    # BINARY parts need the message whole (below).
                    data = spool.read()
                    spool.close()
                    batch.pop()
                if binary:
                    # RFC 3516 section 4.4: binary content comes back exactly;
                    # the encoding may change where the stores' CRLF line ends
                    # would otherwise alter it.
                    data = protect_binary_parts(data)
                batch.append((flags, date, data))
        finally:
            catenator.close()
    except BaseException:
        _release(batch)
        raise
    return batch


def _release(batch) -> None:
    """Close the spools of a batch (their files go with them)."""
    for _f, _d, data in batch:
        if isinstance(data, Spool):
            data.close()


def _stored_size(data) -> int:
    return data.stored_size if isinstance(data, Spool) else quota.message_size(data)


def _append(store, name, messages, catenator, check_quota):
    """
    Blocking, all of APPEND's work in one trip to the storage pool (each
    trip costs a queue, a wake-up and a coroutine step): open the target,
    which raises L{MailboxNotFound} (C{NO [TRYCREATE]}) before any URL or
    quota is looked at, as L{_target_exists} explains; assemble the
    messages (L{_build}); check the assembled batch against the quota
    (RFC 9208: the whole batch fits, or nothing is appended; CATENATE
    sources count too); then commit them in one transaction.
    """
    mailbox = store.open(name, False)
    try:
        built = _build(messages, catenator, check_quota)
        try:
            if check_quota is not None:
                check_quota(len(built), sum(_stored_size(d) for _f, _d, d in built))
            tx = mailbox.transaction()
            for flags, date, data in built:
                if isinstance(data, Spool):
                    tx.append_file(data.rewind(), flags, date)
                else:
                    tx.append(data, flags, date)
            return tx.commit()
        finally:
            _release(built)
    finally:
        mailbox.close()


def _catenator(session) -> Catenator:
    selected = session.selected.mailbox.name if session.selected is not None else None
    return Catenator(session.account.store, selected, session.limits.max_literal)


def _target_exists(store, name: str) -> None:
    """
    Blocking: raise L{MailboxNotFound} unless the APPEND target exists.
    RFC 3501 section 6.3.11 answers a missing target with C{NO
    [TRYCREATE]}, and the client acts on that code (it creates the
    mailbox and tries again); CATENATE (RFC 4469 section 3) keeps
    APPEND's semantics.  So the target is checked before anything else
    (URLs, quota), or a URL error or an over-quota answer would hide the
    one the client can fix.  Dovecot answers in this order too.
    """
    store.open(name, True).close()


def _check(catenator, urls, target: Optional[str]):
    try:
        if target is not None:
            _target_exists(catenator.store, target)
        for url in urls:
            catenator.resolve(url)
    finally:
        catenator.close()


async def check_urls(session, urls: tuple[bytes, ...], mailbox: Optional[bytes] = None) -> None:
    """
    Resolve CATENATE URLs while the command is still arriving (RFC 4469
    Appendix A); the protocol calls this before the next continuation.
    C{mailbox}, the APPEND's target as sent, is checked first.

    @raises CommandFailed: C{[TRYCREATE]} for a missing target,
        C{[BADURL url]} for the first bad URL.
    """
    target = None
    if mailbox is not None:
        target = mailboxname.from_wire(mailbox, utf8=session.imap4rev2)
    try:
        await session.run(_check, _catenator(session), urls, target)
    except MailboxNotFound as e:
        raise CommandFailed(str(e) or "Mailbox does not exist", "TRYCREATE") from None


async def handle_append(session, cmd: Append):
    """
    RFC 3501 section 6.3.11.  All messages of one command are committed
    together, so a MULTIAPPEND adds all or none (RFC 3502 section 6).
    """
    name = mailboxname.from_wire(cmd.mailbox, utf8=session.imap4rev2)
    batch = []
    try:
        for m in cmd.messages:
            if not m.data and not m.catenate:
                raise CommandFailed("Cannot append an empty message")
            batch.append((validate_flags(m.flags), m.date, m.data, m.catenate, m.binary))
    except (CommandFailed, BadCommand):
        # A missing target first (NO [TRYCREATE]), then this.
        await session.run(_target_exists, session.account.store, name)
        raise
    result = await session.run(_append, session.account.store, name, batch,
                               _catenator(session), quota.adder(session))
    # Indexed for SEARCH after the answer, in the background (imapd.fts).
    session.after_answer.append(lambda: fts_indexer.for_session(session, name))
    return f"APPENDUID {result.uidvalidity} {wire.uid_set(result.appended)}", "APPEND completed"
