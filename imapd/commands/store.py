# -*- test-case-name: tests.imapd.commands.test_store -*-
"""STORE and UID STORE (RFC 3501 sections 6.4.6 and 6.4.8)."""

from __future__ import annotations


from imapd.errors import BadCommand, CommandFailed
from imapd.parser.types import Store
from imapd.selected import format_flag_list
from storage.interfaces import SYSTEM_FLAGS

__all__ = ["handle_store", "validate_flags"]


def validate_flags(flags) -> frozenset[str]:
    """
    Flags a client may set: the system flags and keywords.  C{\\Recent}
    is the server's (RFC 3501 section 2.3.2) and is ignored; any other
    backslash flag is an error.
    """
    out = set()
    for flag in flags:
        if flag.startswith("\\"):
            canon = "\\" + flag[1:].capitalize()
            if canon == "\\Recent":
                continue
            if canon not in SYSTEM_FLAGS:
                raise BadCommand(f"Unknown system flag {flag}")
            out.add(canon)
        else:
            out.add(flag)
    return frozenset(out)


def _apply(view, pairs, mode, flags):
    """Blocking: compute and commit the new flags; return changed UIDs."""
    updates = {}
    for _seq, uid in pairs:
        rec = view.records.get(uid)
        if rec is None or view.is_vanished(uid):
            continue
        if mode == "+":
            new = rec.flags | flags
        elif mode == "-":
            new = rec.flags - flags
        else:
            new = flags
        if new != rec.flags:
            updates[uid] = new
    view.commit_flags(updates)
    return list(updates)


async def handle_store(session, cmd: Store):
    """
    RFC 3501 section 6.4.6.  Without .SILENT every named message gets an
    untagged FETCH with its flags, changed or not, as Dovecot does.
    """
    view = session.selected
    if view.readonly:
        raise CommandFailed("Mailbox is read-only", "READ-ONLY")
    pairs = view.resolve(cmd.sequence, cmd.uid)
    flags = validate_flags(cmd.action.flags)
    await session.run(_apply, view, pairs, cmd.action.mode, flags)
    if cmd.action.silent:
        return
    out = []
    for seq, uid in pairs:
        if uid not in view.records:
            continue
        uid_part = b"UID %d " % uid if cmd.uid else b""
        out.append(b"* %d FETCH (%sFLAGS %s)\r\n" % (seq, uid_part, format_flag_list(view.flags(uid))))
    session.send(b"".join(out))
