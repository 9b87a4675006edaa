# -*- test-case-name: tests.imapd.commands.test_store -*-
"""
STORE and UID STORE (RFC 3501 sections 6.4.6 and 6.4.8), with RFC 7162's
UNCHANGEDSINCE modifier and MODSEQ in the untagged FETCH responses once
CONDSTORE is enabled.
"""

from __future__ import annotations


from imapd.errors import BadCommand, CommandFailed
from imapd.parser.types import Store
from imapd.selected import flag_lock, format_flag_list
from imapd.wire import uid_set
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


def _apply(view, pairs, mode, flags, unchangedsince=None):
    """
    Blocking: compute and commit the new flags.

    With C{unchangedsince} (RFC 7162 section 3.1.3) the MODSEQs are read
    fresh from the store first, and a message whose MODSEQ is above it is
    left alone and returned in the "modified" list.  Against the other
    sessions of this process the check and the write are one step (every
    flag change takes the same L{flag_lock}); against other processes and
    programs there remains a window of one sync between them.

    @return: the UIDs changed, and the UIDs that failed UNCHANGEDSINCE.
    """
    if unchangedsince is None:
        return _apply_locked(view, pairs, mode, flags, None)
    with flag_lock(view.mailbox):
        return _apply_locked(view, pairs, mode, flags, unchangedsince)


def _apply_locked(view, pairs, mode, flags, unchangedsince):
    current = view.records
    if unchangedsince is not None:
        current = {r.uid: r for r in view.mailbox.sync().messages}
    updates = {}
    modified = []
    # One result per distinct flag set: a STORE 1:* on 10,000 messages
    # would otherwise make 10,000 equal frozensets that live until the
    # commit ends, long enough to count as long-lived for the garbage
    # collector and bring on a full collection.
    results: dict[frozenset[str], frozenset[str]] = {}
    for _seq, uid in pairs:
        rec = view.records.get(uid)
        if rec is None or view.is_vanished(uid):
            continue
        base = rec.flags
        if unchangedsince is not None:
            fresh = current.get(uid)
            if fresh is None or fresh.modseq > unchangedsince:
                modified.append(uid)
                continue
            # The store's flags as of the check, which passed: the change
            # applies to what the client's MODSEQ stands for.
            base = fresh.flags
        new = results.get(base)
        if new is None:
            if mode == "+":
                new = base | flags
            elif mode == "-":
                new = base - flags
            else:
                new = flags
            results[base] = new
        if new != base:
            updates[uid] = new
    view.commit_flags(updates)
    return list(updates), modified


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
    _changed, modified = await session.run(_apply, view, pairs, cmd.action.mode, flags, since)
    failed = set(modified)
    out = []
    for seq, uid in pairs:
        if uid not in view.records or uid in failed:
            continue
        items = []
        if cmd.uid:
            items.append(b"UID %d" % uid)
        if not cmd.action.silent:
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
