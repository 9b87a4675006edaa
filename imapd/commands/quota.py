# -*- test-case-name: tests.imapd.commands.test_quota -*-
"""
QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, SETQUOTA, and the checks that
APPEND, COPY and MOVE make before they add messages.

Decisions where the RFC leaves the choice to the server:
 - One quota root per user, named C{""} (the name RFC 2087's examples
   use), covering all of the user's mailboxes.  A user whose
   configuration sets no limit at all has no quota root: GETQUOTAROOT
   lists none, GETQUOTA C{""} is NO (RFC 9208's GETQUOTAROOT allows a mailbox
   without a root, and a QUOTA response needs at least one resource).
 - Resources STORAGE (section 5.1, units of 1024 octets, rounded up) and
   MESSAGE (section 5.2).  Limits come from configuration
   (L{imapd.server.QuotaPolicy}); SETQUOTA is refused and QUOTASET is not
   advertised.
 - Usage is summed over the store's mailboxes (their STATUS, which the
   stores answer from their sync) each time it is needed: no cache of our
   own can go stale when a delivery agent or another node adds mail, and
   the stores already skip re-reading a mailbox whose stat is unchanged
   (about 6 ms for 2,000 messages in four Maildir mailboxes).  The check
   and the write are two steps, so two sessions of one user appending at
   the same instant may both pass and overshoot a limit by at most one
   command's messages.
 - A MOVE between two mailboxes of one user leaves usage unchanged (one
   root covers both), so it is never refused for quota; COPY and APPEND
   are refused when usage plus the new messages would go over a limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from imapd import mailboxname, wire
from imapd.errors import CommandFailed
from imapd.parser.quota import GetQuota, GetQuotaRoot, SetQuota
from storage.errors import MailboxNotFound

__all__ = ["ROOT", "Usage", "usage", "message_size", "check_add", "adder", "refuse", "check_copy",
           "handle_getquota", "handle_getquotaroot", "handle_setquota"]

#: The one quota root of every user (see the module docstring).
ROOT = ""


@dataclass(frozen=True)
class Usage:
    """What a user's mailboxes hold: message count and RFC822.SIZE total."""

    messages: int = 0
    octets: int = 0

    @property
    def storage(self) -> int:
        """RFC 9208 section 5.1: STORAGE counts units of 1024 octets."""
        return (self.octets + 1023) // 1024


def usage(store) -> Usage:
    """
    Blocking: the usage of every selectable mailbox of C{store}.  A
    mailbox deleted between the listing and its STATUS counts as empty.
    """
    messages = octets = 0
    for info in store.list_mailboxes():
        if info.attributes & {"\\Noselect", "\\NonExistent"}:
            continue
        try:
            status = store.status(info.name)
        except MailboxNotFound:
            continue
        size = status.size
        if size == 0 and status.messages:
            mailbox = store.open(info.name, readonly=True)
            try:
                size = sum(r.size for r in mailbox.sync().messages)
            finally:
                mailbox.close()
        messages += status.messages
        octets += size
    return Usage(messages, octets)


def message_size(data: bytes) -> int:
    """The RFC822.SIZE a message will have once stored: lines end in CRLF."""
    bare_lf = data.count(b"\n") - data.count(b"\r\n")
    return len(data) + bare_lf


def _limits(session):
    return session.context.quota.limits_for(session.account.user,
                                            getattr(session.account, "record", None))


def _resources(limits, used: Usage) -> list[tuple[str, int, int]]:
    """The (resource, usage, limit) triples of the resources with a limit."""
    out = []
    if limits.storage:
        out.append(("STORAGE", used.storage, limits.storage))
    if limits.messages:
        out.append(("MESSAGE", used.messages, limits.messages))
    return out


async def check_add(session, messages: int, octets: int) -> None:
    """
    Refuse with C{NO [OVERQUOTA]} (the response code of RFC 5530 section
    3, which RFC 9208 uses for a command that a quota refuses) when adding
    C{messages} messages of C{octets} octets in all would take the user
    over a limit.  Costs nothing when the user has no limit.
    """
    limits = _limits(session)
    if not (limits.storage or limits.messages) or messages == 0:
        return
    used = await session.run(usage, session.account.store)
    refuse(limits, used, messages, octets)


def adder(session):
    """
    A blocking L{check_add} for code already in the storage pool (APPEND
    checks the planned sizes before CATENATE assembles anything, then the
    assembled batch), or C{None} without limits.
    """
    limits = _limits(session)
    if not (limits.storage or limits.messages):
        return None
    store = session.account.store

    def check(messages: int, octets: int) -> None:
        if messages:
            refuse(limits, usage(store), messages, octets)
    return check


def refuse(limits, used: Usage, messages: int, octets: int) -> None:
    """
    Raise C{NO [OVERQUOTA]} when C{messages} more messages of C{octets}
    octets would take C{used} over C{limits} (also used by delivery,
    L{imapd.delivery.core}).
    """
    if limits.messages and used.messages + messages > limits.messages:
        raise CommandFailed(
            f"Quota exceeded: {used.messages} of {limits.messages} messages used, "
            f"{messages} more would not fit", "OVERQUOTA")
    if limits.storage and used.octets + octets > limits.storage * 1024:
        raise CommandFailed(
            f"Quota exceeded: {used.storage} of {limits.storage} KiB used, "
            f"{(octets + 1023) // 1024} KiB more would not fit", "OVERQUOTA")


async def check_copy(session, records: Iterable) -> None:
    """L{check_add} for copies of the message records C{records}."""
    records = list(records)
    await check_add(session, len(records), sum(r.size for r in records))


def _quota_line(resources) -> bytes:
    items = " ".join(f"{name} {used} {limit}" for name, used, limit in resources)
    return b"* QUOTA " + wire.astring(ROOT.encode()) + b" (" + items.encode() + b")\r\n"


async def handle_getquota(session, cmd: GetQuota):
    """
    RFC 9208 GETQUOTA: the usage and limits of a quota root; the only
    root is C{""}, and only for a user with a limit.
    """
    limits = _limits(session)
    if cmd.root != ROOT.encode() or not (limits.storage or limits.messages):
        raise CommandFailed("No such quota root", "NONEXISTENT")
    used = await session.run(usage, session.account.store)
    session.send(_quota_line(_resources(limits, used)))
    return None, "GETQUOTA completed"


async def handle_getquotaroot(session, cmd: GetQuotaRoot):
    """
    RFC 9208 GETQUOTAROOT: the quota roots of an existing mailbox, then a
    QUOTA response for each.  Every mailbox has the root C{""} when the
    user has a limit, and no root otherwise.
    """
    name = mailboxname.from_wire(cmd.mailbox, utf8=session.imap4rev2)
    store = session.account.store
    # The mailbox must exist (GETQUOTAROOT answers NO for a mailbox that does not);
    # STATUS raises MailboxNotFound, which the dispatcher maps to NONEXISTENT.
    await session.run(store.status, name)
    limits = _limits(session)
    line = b"* QUOTAROOT " + mailboxname.astring(name, utf8=session.imap4rev2)
    if not (limits.storage or limits.messages):
        session.send(line + b"\r\n")
        return None, "GETQUOTAROOT completed"
    used = await session.run(usage, store)
    session.send(line + b" " + wire.astring(ROOT.encode()) + b"\r\n"
                 + _quota_line(_resources(limits, used)))
    return None, "GETQUOTAROOT completed"


async def handle_setquota(session, cmd: SetQuota):
    """
    RFC 9208 SETQUOTA: limits here come from the server's
    configuration, so SETQUOTA is refused (and QUOTASET not advertised).
    """
    raise CommandFailed("Quota limits are set in the server configuration, not over IMAP",
                        "NOPERM")
