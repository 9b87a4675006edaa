# -*- test-case-name: tests.imapd.commands.test_store -*-
"""
STORE and UID STORE (RFC 3501 sections 6.4.6 and 6.4.8), with RFC 7162's
UNCHANGEDSINCE modifier and MODSEQ in the untagged FETCH responses once
CONDSTORE is enabled.
"""

from __future__ import annotations


from imapd.errors import BadCommand, CommandFailed
from imapd.parser.types import Store
from imapd.selected import format_flag_list
from imapd.wire import uid_set
from storage.flagchange import FlagChange
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


def _change(mode: str, flags: frozenset[str], unchangedsince: int | None) -> FlagChange:
    """The store-level change a STORE action asks for (RFC 3501 6.4.6)."""
    if mode == "+":
        return FlagChange(add=flags, unchangedsince=unchangedsince)
    if mode == "-":
        return FlagChange(remove=flags, unchangedsince=unchangedsince)
    return FlagChange(replace=flags, unchangedsince=unchangedsince)


def _apply(view, pairs, change: FlagChange):
    """
    Blocking: have the store apply C{change} to every named message.

    Every named message goes to the store, not only those whose flags
    this session's view says would change: the view may be stale, and
    C{-FLAGS (\\Seen)} must clear a C{\\Seen} another session set since.
    The store applies the change to the flags it holds, under its lock,
    and checks UNCHANGEDSINCE there (RFC 7162 section 3.1.3), so that the
    check and the write are one step against every process and node that
    writes through the store.

    @return: the UIDs that failed UNCHANGEDSINCE, and those whose flags
        ended other than the client can work out (see
        L{imapd.selected.SelectedView.commit_flags}).
    """
    changes = {uid: change for _seq, uid in pairs
               if uid in view.records and not view.is_vanished(uid)}
    return view.commit_flags(changes)


async def handle_store(session, cmd: Store):
    """
    RFC 3501 section 6.4.6.  Without .SILENT every named message gets an
    untagged FETCH with its flags, changed or not, as Dovecot does.

    Once CONDSTORE is on (RFC 7162 section 3.1.3) those FETCHes carry
    MODSEQ, and with .SILENT the messages that passed UNCHANGEDSINCE still
    get C{FETCH (MODSEQ (n))}; the ones that failed are named in
    C{OK [MODIFIED set]} (sequence numbers, or UIDs for UID STORE).
    """
    view = session.selected
    if view.readonly:
        raise CommandFailed("Mailbox is read-only", "READ-ONLY")
    since = cmd.action.unchangedsince
    if since is not None:
        from imapd.commands.any import enable_condstore

        enable_condstore(session)
    pairs = view.resolve(cmd.sequence, cmd.uid)
    flags = validate_flags(cmd.action.flags)
    change = _change(cmd.action.mode, flags, since)
    modified, surprised = await session.run(_apply, view, pairs, change)
    failed = set(modified)
    # A keyword new to the client is announced before it shows up below.
    out = [view.announce()]
    for seq, uid in pairs:
        if uid not in view.records or uid in failed or view.is_vanished(uid):
            continue  # gone, or left alone: no FETCH (RFC 2180 section 4.2.1)
        items = []
        if cmd.uid:
            items.append(b"UID %d" % uid)
        if not cmd.action.silent or uid in surprised:
            # .SILENT spares the client the flags it can work out itself;
            # flags another party changed too it must still be told.
            items.append(b"FLAGS " + format_flag_list(view.shown_flags(uid)))
        elif not (view.condstore and since is not None):
            continue
        if view.condstore:
            items.append(b"MODSEQ (%d)" % view.records[uid].modseq)
        out.append(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(items)))
    session.send(b"".join(out))
    if failed:
        numbers = [uid if cmd.uid else seq for seq, uid in pairs if uid in failed]
        return "MODIFIED " + uid_set(sorted(numbers)), "Conditional STORE failed"
    return None
