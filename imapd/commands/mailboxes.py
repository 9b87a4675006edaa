# -*- test-case-name: tests.imapd.commands.test_mailboxes -*-
"""
Mailbox management: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST,
LSUB, STATUS (RFC 3501 sections 6.3.3-6.3.10) and NAMESPACE (RFC 2342).
"""

from __future__ import annotations

import re

from imapd import mailboxname, wire
from imapd.errors import BadCommand, CommandFailed
from imapd.mailboxname import DELIMITER
from imapd.parser.types import (Create, Delete, List, Lsub, Namespace, Rename,
                                Status, Subscribe, Unsubscribe)
from storage.errors import MailboxNotFound

__all__ = ["handle_create", "handle_delete", "handle_rename", "handle_subscribe",
           "handle_unsubscribe", "handle_list", "handle_lsub", "handle_status",
           "handle_namespace", "pattern_matcher"]

_DELIM_WIRE = wire.quoted(DELIMITER.encode())


async def handle_create(session, cmd: Create):
    """
    RFC 3501 section 6.3.3.  A trailing delimiter only declares the intent
    to create children; the name is created without it.
    """
    name = mailboxname.from_wire(cmd.mailbox).rstrip(DELIMITER)
    if not name:
        raise CommandFailed("Mailbox name is empty", "CANNOT")
    if name == "INBOX":
        raise CommandFailed("INBOX always exists", "ALREADYEXISTS")
    await session.run(session.account.store.create, name)


async def handle_delete(session, cmd: Delete):
    """RFC 3501 section 6.3.4."""
    name = mailboxname.from_wire(cmd.mailbox)
    if name == "INBOX":
        raise CommandFailed("INBOX cannot be deleted", "CANNOT")
    await session.run(session.account.store.delete, name)


async def handle_rename(session, cmd: Rename):
    """RFC 3501 section 6.3.5, INBOX included (its messages move)."""
    old = mailboxname.from_wire(cmd.old)
    new = mailboxname.from_wire(cmd.new)
    if new == "INBOX":
        raise CommandFailed("Cannot rename to INBOX", "ALREADYEXISTS")
    await session.run(session.account.store.rename, old, new)


async def handle_subscribe(session, cmd: Subscribe):
    """RFC 3501 section 6.3.6."""
    await session.run(session.account.store.subscribe, mailboxname.from_wire(cmd.mailbox))


async def handle_unsubscribe(session, cmd: Unsubscribe):
    """RFC 3501 section 6.3.7."""
    await session.run(session.account.store.unsubscribe, mailboxname.from_wire(cmd.mailbox))


def pattern_matcher(reference: bytes, pattern: bytes):
    """
    A predicate over wire-encoded names for LIST/LSUB (RFC 3501 section
    6.3.8): C{*} matches anything, C{%} anything but the delimiter.  The
    reference is prefixed to the pattern.  Stores spell INBOX in capitals
    and RFC 3501 section 5.1 makes it case-insensitive, so a pattern that
    starts with any spelling of INBOX is matched as C{INBOX}.
    """
    full = (reference + pattern).decode("ascii", "replace")
    head = full[:5]
    if head.upper() == "INBOX" and (len(full) == 5 or full[5] in (DELIMITER, "*", "%")):
        full = "INBOX" + full[5:]
    rx = []
    for ch in full:
        if ch == "*":
            rx.append(".*")
        elif ch == "%":
            rx.append("[^" + re.escape(DELIMITER) + "]*")
        else:
            rx.append(re.escape(ch))
    regex = re.compile("".join(rx), re.DOTALL)

    def matches(name: bytes) -> bool:
        return regex.fullmatch(name.decode("ascii", "replace")) is not None

    return matches


def _list_line(kind: bytes, attrs, name: str) -> bytes:
    return (
        b"* " + kind + b" (" + " ".join(sorted(attrs)).encode() + b") "
        + _DELIM_WIRE + b" " + wire.astring(mailboxname.to_wire(name)) + b"\r\n"
    )


async def handle_list(session, cmd: List):
    """RFC 3501 section 6.3.8."""
    if cmd.pattern == b"":
        # The special case that asks for the delimiter and root.
        session.send(b"* LIST (\\Noselect) " + _DELIM_WIRE + b' ""\r\n')
        return
    matches = pattern_matcher(cmd.reference, cmd.pattern)
    infos = await session.run(session.account.store.list_mailboxes)
    out = []
    for info in sorted(infos, key=lambda i: (i.name != "INBOX", i.name)):
        if matches(mailboxname.to_wire(info.name)):
            out.append(_list_line(b"LIST", info.attributes, info.name))
    session.send(b"".join(out))


async def handle_lsub(session, cmd: Lsub):
    """
    RFC 3501 section 6.3.9.  Subscribed names that no longer exist are
    still listed (RFC 3501 allows it), marked C{\\Noselect}.
    """
    matches = pattern_matcher(cmd.reference, cmd.pattern)
    store = session.account.store
    subscribed = await session.run(store.subscriptions)
    infos = {i.name: i for i in await session.run(store.list_mailboxes)}
    out = []
    for name in subscribed:
        if matches(mailboxname.to_wire(name)):
            attrs = set()
            if name not in infos or "\\Noselect" in infos[name].attributes:
                attrs.add("\\Noselect")
            out.append(_list_line(b"LSUB", attrs, name))
    session.send(b"".join(out))


_STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


async def handle_status(session, cmd: Status):
    """RFC 3501 section 6.3.10."""
    name = mailboxname.from_wire(cmd.mailbox)
    for item in cmd.items:
        if item not in _STATUS_ITEMS:
            raise BadCommand(f"Unknown STATUS item {item}")
    status = await session.run(session.account.store.status, name)
    values = {
        "MESSAGES": status.messages,
        "RECENT": status.recent,
        "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen,
    }
    items = " ".join(f"{item} {values[item]}" for item in cmd.items)
    session.send(
        b"* STATUS " + wire.astring(mailboxname.to_wire(name)) + b" (" + items.encode() + b")\r\n"
    )


async def handle_namespace(session, cmd: Namespace):
    """RFC 2342: one personal namespace, no shared or other users'."""
    session.send(b'* NAMESPACE (("" ' + _DELIM_WIRE + b")) NIL NIL\r\n")
