# -*- test-case-name: tests.imapd.commands.test_mailboxes -*-
"""
Mailbox management: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST,
LSUB, STATUS (RFC 3501 sections 6.3.3-6.3.10) and NAMESPACE (RFC 2342),
with LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE and
CREATE-SPECIAL-USE (RFC 6154).

Names travel in modified UTF-7, or in UTF-8 once the client enabled
IMAP4rev2 (RFC 9051 section 5.1): every name in or out goes through
L{imapd.mailboxname} with C{utf8=session.imap4rev2}, and LIST patterns are
matched against names in the client's encoding.
"""

from __future__ import annotations

from imapd import mailboxname, wire
from imapd.cache import forget_mailbox
from imapd.errors import BadCommand, CommandFailed
from imapd.listpattern import check_patterns, compile_pattern
from imapd.logtext import log_safe
from imapd.mailboxname import DELIMITER
from imapd.parser.listext import CreateSpecialUse, ListExtended
from imapd.parser.types import (Create, Delete, List, Lsub, Namespace, Rename,
                                Status, Subscribe, Unsubscribe)
from imapd.server import SPECIAL_USE_ATTRIBUTES
from storage.errors import MailboxExists, MailboxNotFound, StoreError

__all__ = ["handle_create", "handle_delete", "handle_rename", "handle_subscribe",
           "handle_unsubscribe", "handle_list", "handle_lsub", "handle_status",
           "handle_namespace", "pattern_matcher"]

_DELIM_WIRE = wire.quoted(DELIMITER.encode())


def special_use(session, name: str) -> frozenset[str]:
    """
    The RFC 6154 attributes of mailbox C{name} (empty for most), from the
    configured special-use mailboxes (L{imapd.server.MailboxPolicy};
    names compared without regard to case, whole names).
    """
    wanted = name.lower()
    return frozenset(attr for box, attr in session.context.mailboxes.special_use
                     if box.lower() == wanted)


async def _auto_create(session, infos: dict) -> bool:
    """
    Create the configured C{auto_create} mailboxes that C{infos} (the
    store's listing) lacks, like Dovecot's C{auto = create}.  A mailbox
    another session created meanwhile is fine; one the store refuses is
    logged and skipped, so that LIST still answers.  Returns whether
    anything was created, so that the caller lists again.
    """
    created = False
    present = {n.lower() for n in infos}
    for name in session.context.mailboxes.auto_create:
        if name.lower() in present:
            continue
        try:
            await session.run(session.account.store.create, name)
        except MailboxExists:
            pass
        except StoreError as e:
            session.log.warn("auto_create {name!r} failed for {user}: {error}",
                             name=name, user=log_safe(session.account.user), error=e)
            continue
        created = True
    return created


async def _mailboxes(session) -> dict:
    """The store's mailboxes by name, after any auto-creation."""
    store = session.account.store
    infos = {i.name: i for i in await session.run(store.list_mailboxes)}
    if await _auto_create(session, infos):
        infos = {i.name: i for i in await session.run(store.list_mailboxes)}
    return infos


async def handle_create(session, cmd: Create | CreateSpecialUse):
    """
    RFC 3501 section 6.3.3.  A trailing delimiter only declares the intent
    to create children; the name is created without it.

    RFC 6154 section 3, C{CREATE name (USE (...))}: special uses come
    from the name (the configured special-use mailboxes, L{special_use}),
    so a USE list is honoured only when it is what the name gets anyway;
    otherwise nothing is created and the answer is C{NO [USEATTR]}.
    """
    name = mailboxname.from_wire(cmd.mailbox, utf8=session.imap4rev2,
                                 creating=True).rstrip(DELIMITER)
    if not name:
        raise CommandFailed("Mailbox name is empty", "CANNOT")
    if name == "INBOX":
        raise CommandFailed("INBOX always exists", "ALREADYEXISTS")
    if isinstance(cmd, CreateSpecialUse) and cmd.use:
        wanted = {_canonical_use(a) for a in cmd.use}
        if wanted != special_use(session, name):
            raise CommandFailed(
                "Special-use attributes follow the mailbox name here: "
                + (" ".join(sorted(special_use(session, name))) or "none") + f" for {name}",
                "USEATTR")
    await session.run(session.account.store.create, name)


async def handle_delete(session, cmd: Delete):
    """RFC 3501 section 6.3.4."""
    name = mailboxname.from_wire(cmd.mailbox, utf8=session.imap4rev2)
    if name == "INBOX":
        raise CommandFailed("INBOX cannot be deleted", "CANNOT")
    store = session.account.store
    # The index of a deleted mailbox is dead weight (issue 6).
    await session.run(forget_mailbox, session.account, name, False,
                      lambda: store.delete(name))


async def handle_rename(session, cmd: Rename):
    """RFC 3501 section 6.3.5, INBOX included (its messages move)."""
    old = mailboxname.from_wire(cmd.old, utf8=session.imap4rev2)
    new = mailboxname.from_wire(cmd.new, utf8=session.imap4rev2, creating=True)
    if new == "INBOX":
        raise CommandFailed("Cannot rename to INBOX", "ALREADYEXISTS")
    store = session.account.store
    await session.run(forget_mailbox, session.account, old, True,
                      lambda: store.rename(old, new))


async def handle_subscribe(session, cmd: Subscribe):
    """RFC 3501 section 6.3.6."""
    name = mailboxname.from_wire(cmd.mailbox, utf8=session.imap4rev2)
    await session.run(session.account.store.subscribe, name)


async def handle_unsubscribe(session, cmd: Unsubscribe):
    """RFC 3501 section 6.3.7."""
    name = mailboxname.from_wire(cmd.mailbox, utf8=session.imap4rev2)
    await session.run(session.account.store.unsubscribe, name)


def pattern_matcher(reference: bytes, pattern: bytes):
    """
    A predicate over wire-encoded names for LIST/LSUB (RFC 3501 section
    6.3.8): C{*} matches anything, C{%} anything but the delimiter.  The
    reference is prefixed to the pattern.  Stores spell INBOX in capitals
    and RFC 3501 section 5.1 makes it case-insensitive, so a pattern that
    starts with any spelling of INBOX is matched as C{INBOX}.  Pattern
    and names are compared as text: modified UTF-7 is ASCII, and an
    IMAP4rev2 client's UTF-8 must match character by character.

    The client controls the pattern: matching is linear in the name
    (L{imapd.listpattern}), never a backtracking regular expression.

    @raises BadCommand: C{[LIMIT]}, the pattern is too long.
    """
    check_patterns(reference, (pattern,))
    full = (reference + pattern).decode("utf-8", "replace")
    head = full[:5]
    if head.upper() == "INBOX" and (len(full) == 5 or full[5] in (DELIMITER, "*", "%")):
        full = "INBOX" + full[5:]
    match = compile_pattern(full, DELIMITER)

    def matches(name: bytes) -> bool:
        return match(name.decode("utf-8", "replace"))

    return matches


def _canonical_use(attr: str) -> str:
    """C{\\sent} -> C{\\Sent}; an unknown attribute stays as sent."""
    for known in SPECIAL_USE_ATTRIBUTES:
        if known.lower() == attr.lower():
            return known
    return attr


def _list_line(session, kind: bytes, attrs, name: str, extra: bytes = b"") -> bytes:
    return (
        b"* " + kind + b" (" + " ".join(sorted(attrs)).encode() + b") " + _DELIM_WIRE + b" "
        + mailboxname.astring(name, utf8=session.imap4rev2) + extra + b"\r\n"
    )


def _list_attrs(session, info) -> frozenset[str]:
    """The store's attributes plus the RFC 6154 ones of a selectable mailbox."""
    if "\\Noselect" in info.attributes:
        return info.attributes
    return info.attributes | special_use(session, info.name)


async def handle_list(session, cmd: List | ListExtended):
    """
    RFC 3501 section 6.3.8; RFC 5258 when the client used the extended
    syntax.  Special-use attributes are given in every LIST answer, as
    Dovecot does (RFC 6154 section 2 allows it).
    """
    if isinstance(cmd, ListExtended):
        await _list_extended(session, cmd)
        return
    if cmd.pattern == b"":
        # The special case that asks for the delimiter and root.
        session.send(b"* LIST (\\Noselect) " + _DELIM_WIRE + b' ""\r\n')
        return
    matches = pattern_matcher(cmd.reference, cmd.pattern)
    infos = (await _mailboxes(session)).values()
    utf8 = session.imap4rev2
    # Made as they are sent, in parts with flow control (issue 18: a LIST
    # of very many names is megabytes).
    await session.send_parts(
        _list_line(session, b"LIST", _list_attrs(session, info), info.name)
        for info in sorted(infos, key=lambda i: (i.name != "INBOX", i.name))
        if matches(mailboxname.to_wire(info.name, utf8)))


async def select_list_line(session, name: str) -> bytes:
    """
    RFC 9051 section 6.3.2: an IMAP4rev2 SELECT/EXAMINE answers with a
    C{* LIST} of the mailbox, its attributes accurate: the ones a plain
    LIST gives.  No OLDNAME: we never normalize a name (L{mailboxname}).
    """
    infos = await session.run(session.account.store.list_mailboxes)
    attrs: frozenset[str] = frozenset()
    for info in infos:
        if info.name == name:
            attrs = _list_attrs(session, info)
            break
    return _list_line(session, b"LIST", attrs, name)


def _name_order(name: str) -> tuple[bool, str]:
    return (name != "INBOX", name)


async def _list_extended(session, cmd: ListExtended) -> None:
    """
    RFC 5258 section 3.  Selection: SUBSCRIBED (subscribed names, existing
    or not: C{\\NonExistent}), SPECIAL-USE (RFC 6154 section 5.1), REMOTE
    (no remote mailboxes here, so nothing changes), RECURSIVEMATCH (a
    matching name with a descendant that meets the selection but does
    not match the patterns is returned with CHILDINFO, section 3.5).
    Return: SUBSCRIBED, CHILDREN (the store always gives them), SPECIAL-USE
    (always given), STATUS (RFC 5819: one STATUS after each selectable
    mailbox's LIST).
    """
    if cmd.patterns == (b"",) and not cmd.select_opts:
        # The delimiter and root request (RFC 5258 section 3, RFC 3501).
        session.send(b"* LIST (\\Noselect) " + _DELIM_WIRE + b' ""\r\n')
        return
    store = session.account.store
    infos = await _mailboxes(session)
    select = set(cmd.select_opts)
    by_subscribed = "SUBSCRIBED" in select
    by_special = "SPECIAL-USE" in select
    recursive = "RECURSIVEMATCH" in select
    show_subscribed = by_subscribed or "SUBSCRIBED" in cmd.return_opts
    subscribed: set[str] = set()
    if show_subscribed:
        subscribed = set(await session.run(store.subscriptions))
    check_patterns(cmd.reference, cmd.patterns)
    matchers = [pattern_matcher(cmd.reference, p) for p in cmd.patterns if p]

    def matches(name: str) -> bool:
        wire_name = mailboxname.to_wire(name, session.imap4rev2)
        return any(m(wire_name) for m in matchers)

    def meets(name: str) -> bool:
        """Whether C{name} satisfies the selection criteria."""
        if by_subscribed and name not in subscribed:
            return False
        if by_special and (name not in infos or not _list_attrs(session, infos[name]) & set(SPECIAL_USE_ATTRIBUTES)):
            return False
        return by_subscribed or name in infos

    candidates = set(infos)
    if by_subscribed:
        candidates |= subscribed
    childinfo: dict[str, bool] = {}
    if recursive:
        # Ancestors of names meeting the criteria that do not match.
        for name in list(candidates):
            if meets(name) and not matches(name):
                parts = name.split(DELIMITER)
                for i in range(1, len(parts)):
                    parent = DELIMITER.join(parts[:i])
                    childinfo[parent] = True
                    candidates.add(parent)
    criteria = [o for o in ("SUBSCRIBED", "SPECIAL-USE") if o in select]
    existing_parents = {n.rsplit(DELIMITER, 1)[0] for n in infos if DELIMITER in n}
    out = []
    for name in sorted(candidates, key=_name_order):
        if not matches(name):
            continue
        hit = meets(name)
        if not hit and not childinfo.get(name):
            continue
        if name in infos:
            attrs = set(_list_attrs(session, infos[name]))
        else:
            attrs = {"\\NonExistent"}
            if "CHILDREN" in cmd.return_opts:
                attrs.add("\\HasChildren" if name in existing_parents else "\\HasNoChildren")
        if show_subscribed and name in subscribed:
            attrs.add("\\Subscribed")
        extra = b""
        if childinfo.get(name):
            extra = (b' ("CHILDINFO" ('
                     + b" ".join(wire.quoted(c.encode()) for c in criteria) + b"))")
        out.append(_list_line(session, b"LIST", attrs, name, extra))
        if (cmd.status_items and name in infos
                and "\\Noselect" not in attrs and "\\NonExistent" not in attrs):
            line = await _status_line(session, name, cmd.status_items, quiet=True)
            if line:
                out.append(line)
    session.send(b"".join(out))


async def handle_lsub(session, cmd: Lsub):
    """
    RFC 3501 section 6.3.9.  Subscribed names that no longer exist are
    still listed (RFC 3501 allows it), marked C{\\Noselect}.

    A pattern ending in C{%} also lists the levels of hierarchy above a
    subscribed name it does not reach (C{a/b/c} alone subscribed: C{%}
    gives C{a}, C{a/%} gives C{a/b}), marked C{\\Noselect} when they
    are not subscribed themselves: section 6.3.9 requires it, and
    section 6.3.8 says why only for a trailing C{%}.  Dovecot does the
    same.
    """
    matches = pattern_matcher(cmd.reference, cmd.pattern)
    store = session.account.store
    subscribed = await session.run(store.subscriptions)
    infos = {i.name: i for i in await session.run(store.list_mailboxes)}
    levels = (cmd.reference + cmd.pattern).endswith(b"%")
    wanted = set(subscribed)
    utf8 = session.imap4rev2
    listed: dict[str, bool] = {}  # name -> \\Noselect, in answer order
    for name in subscribed:
        if matches(mailboxname.to_wire(name, utf8)):
            listed[name] = name not in infos or "\\Noselect" in infos[name].attributes
        elif levels:
            parts = name.split(DELIMITER)
            for i in range(len(parts) - 1, 0, -1):
                parent = DELIMITER.join(parts[:i])
                if matches(mailboxname.to_wire(parent, utf8)):
                    if parent not in wanted:
                        listed.setdefault(parent, True)
                    break
    out = [_list_line(session, b"LSUB", {"\\Noselect"} if noselect else set(), name)
           for name, noselect in listed.items()]
    session.send(b"".join(out))


_STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE",
                 "APPENDLIMIT", "DELETED", "DELETED-STORAGE", "HIGHESTMODSEQ")


def _deleted(store, name: str) -> tuple[int, int]:
    """
    Blocking: RFC 9208 (and RFC 9051) STATUS DELETED, the number of
    messages flagged C{\\Deleted}, and DELETED-STORAGE, what an EXPUNGE
    would free: the sum of their RFC822.SIZE in octets, as RFC 9208
    allows (it names no unit for it, and the sum of sizes is octets).
    """
    mailbox = store.open(name, readonly=True)
    try:
        gone = [r for r in mailbox.sync().messages if "\\Deleted" in r.flags]
    finally:
        mailbox.close()
    return len(gone), sum(r.size for r in gone)


def _mailbox_size(store, name: str) -> int:
    """
    Blocking: RFC 8438 SIZE, the sum of RFC822.SIZE, from a read-only
    sync, for stores whose status leaves C{size} at 0.
    """
    mailbox = store.open(name, readonly=True)
    try:
        return sum(r.size for r in mailbox.sync().messages)
    finally:
        mailbox.close()


async def handle_status(session, cmd: Status):
    """RFC 3501 section 6.3.10."""
    name = mailboxname.from_wire(cmd.mailbox, utf8=session.imap4rev2)
    session.send(await _status_line(session, name, cmd.items))


async def _status_line(session, name: str, items, quiet: bool = False) -> bytes:
    """
    The C{* STATUS} response for C{name}.  With C{quiet} (LIST-STATUS,
    RFC 5819 section 2), a mailbox whose status cannot be read gives
    C{b""} instead of an error.
    """
    for item in items:
        if item not in _STATUS_ITEMS:
            raise BadCommand(f"Unknown STATUS item {item}")
    try:
        status = await session.run(session.account.store.status, name)
    except MailboxNotFound:
        if quiet:
            return b""
        raise
    values = {
        "MESSAGES": status.messages,
        "RECENT": status.recent,
        "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen,
        "SIZE": status.size,
        # RFC 7889 section 3.2: one limit for every mailbox.
        "APPENDLIMIT": session.limits.max_literal,
        # RFC 7162 section 3.1.6 (a CONDSTORE enabling command).
        "HIGHESTMODSEQ": status.highestmodseq,
    }
    if "HIGHESTMODSEQ" in items:
        from imapd.commands.any import enable_condstore

        enable_condstore(session)
    if "SIZE" in items and status.size == 0 and status.messages > 0:
        values["SIZE"] = await session.run(_mailbox_size, session.account.store, name)
    if "DELETED" in items or "DELETED-STORAGE" in items:
        # RFC 9208 sections 5.1 and 5.2: QUOTA=RES-STORAGE and RES-MESSAGE
        # require these two items.
        values["DELETED"], values["DELETED-STORAGE"] = (
            await session.run(_deleted, session.account.store, name))
    text = " ".join(f"{item} {values[item]}" for item in items)
    return (b"* STATUS " + mailboxname.astring(name, utf8=session.imap4rev2)
            + b" (" + text.encode() + b")\r\n")


async def handle_namespace(session, cmd: Namespace):
    """RFC 2342: one personal namespace, no shared or other users'."""
    session.send(b'* NAMESPACE (("" ' + _DELIM_WIRE + b")) NIL NIL\r\n")
