# -*- test-case-name: tests.imapd.commands.test_notify -*-
"""
NOTIFY (RFC 5465): the client says which events of which mailboxes it
wants to hear about, and hears about them as they happen, without IDLE and
between its own commands.

Example::

    C: a1 NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge))
          (PERSONAL (MessageNew MessageExpunge MailboxName))
    S: a1 OK NOTIFY completed
    ... another session delivers to Work ...
    S: * STATUS Work (MESSAGES 3 UIDNEXT 9 UNSEEN 1)

How changes reach the session (DESIGN.md: the store is the only truth,
never in-process callbacks only):

 - every session of a user that set NOTIFY is registered with L{changes};
   when any session of this process finishes a command that may change
   mail or mailboxes (L{MUTATING}), the others are told to look at once,
   at just the mailboxes that command touched (one STATUS read after a
   STORE or APPEND; everything after CREATE, DELETE, RENAME, SUBSCRIBE);
 - each such session also re-checks every
   C{limits.notify_poll_interval} seconds (30 by default), which is how
   changes by other processes, other nodes and an MDA are found;
 - a look is a server-made command (L{Poll}) queued like the client's
   commands, so it never runs in the middle of one: the selected mailbox
   is re-synced as NOOP does (SELECTED: EXPUNGE at once; SELECTED-DELAYED:
   EXPUNGE held back until a command that allows it), and every other
   watched mailbox is read with STATUS and compared with what was last
   said about it; mailbox names and subscriptions are compared with the
   last listing.  During IDLE the IDLE poll does the same (section 4).

Bounds: at most C{limits.max_notify_mailboxes} (64) watched mailboxes
besides the selected one: a NOTIFY SET that names more is refused with
C{NO [NOTIFICATIONOVERFLOW]}; if the set grows past it later (mailboxes
created under PERSONAL or SUBTREE), the session gets an untagged
C{OK [NOTIFICATIONOVERFLOW]} and NOTIFY NONE (section 5.8).  A periodic
re-check costs one store listing and one STATUS read per watched mailbox
(64 every 30 seconds at most); at most one look per session waits at a
time, however many notices come.

Decisions where the RFC leaves room, and differences from Dovecot 2.3:

 - Events of this session's own commands in other mailboxes are reported
   too (section 5 says SHOULD omit): telling them apart would need a read
   right after each own command, in which someone else's change could be
   swallowed.
 - A rename seen by polling (another process) is a C{\\NonExistent} LIST
   for the old name and a LIST for the new one; a rename made in this
   process gives the C{OLDNAME} form (section 5.4).  Dovecot sends
   nothing for a rename.
 - BADEVENT lists the events we support, as section 3.1 asks; Dovecot
   lists the refused ones.  MailboxName with SELECTED is BAD (section
   6.1); Dovecot accepts it.
 - Unsolicited FETCH for flag changes carry UID (section 5.1); Dovecot's
   do not.  NOTIFY SET sends the changes accumulated in the selected
   mailbox (section 3.1); Dovecot does not when SELECTED was not watched.
 - Without SELECTED/SELECTED-DELAYED, or after NOTIFY NONE, the selected
   mailbox is not re-synced at all (section 3.1: "the same as SELECTED
   NONE"; section 5: NOTIFY NONE stops even the usual responses), as in
   Dovecot and Mox; this session's own STORE, EXPUNGE and FETCH still
   answer for themselves.
 - INBOXES is INBOX: delivery writes only there.
 - Groups are looked at in order; the first that names a mailbox and
   lists the event decides, and one that names it with NONE stops the
   search (section 6, as Mox reads it).
"""

from __future__ import annotations

import weakref
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Optional

from imapd import mailboxname, wire
from imapd.errors import CommandFailed
from imapd.parser.notify import MESSAGE_EVENTS, Notify, NotifyGroup
from imapd.parser.types import Command, Fetch, SequenceSet

__all__ = ["handle_notify", "handle_poll", "sync_selected", "changes", "Watch",
           "Poll", "SUPPORTED"]

#: RFC 5465 section 5: the events we can report, in BADEVENT's order.
#: AnnotationChange and the METADATA events need RFC 5257/5464, which we
#: do not offer.
SUPPORTED = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName",
             "SubscriptionChange")

#: Commands after which other sessions of the user look for changes.
MUTATING = frozenset({
    "APPEND", "STORE", "UID STORE", "COPY", "UID COPY", "MOVE", "UID MOVE",
    "EXPUNGE", "UID EXPUNGE", "CLOSE", "FETCH", "UID FETCH", "CREATE", "DELETE",
    "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
})


@dataclass(frozen=True, slots=True)
class Poll(Command):
    """The server's own re-check of a NOTIFY session (never parsed)."""
    name = "NOTIFY POLL"


@dataclass(eq=False)
class Watch:
    """
    One session's NOTIFY settings and what it last told the client.

    @ivar groups: the event groups in order; C{()} after NOTIFY NONE.
    @ivar statuses: watched mailbox -> the L{storage.interfaces.MailboxStatus}
        last told (or read at NOTIFY SET).
    @ivar names: the mailboxes listed last time (for MailboxName).
    @ivar subscribed: the subscriptions last time (SubscriptionChange).
    @ivar renames: old -> new names renamed by sessions of this process
        since the last look.
    @ivar touched: what in-process notices said changed since the last
        look (L{_Changes.post}).
    """

    groups: tuple[NotifyGroup, ...] = ()
    statuses: dict = field(default_factory=dict)
    names: frozenset[str] = frozenset()
    subscribed: frozenset[str] = frozenset()
    renames: dict = field(default_factory=dict)
    #: Mailboxes other sessions of this process changed since the last
    #: look (only those are read then); None: look at everything.
    touched: Optional[set] = field(default_factory=set)
    timer: object = None
    queued: bool = False

    @property
    def selected(self) -> Optional[NotifyGroup]:
        for g in self.groups:
            if g.filter.startswith("SELECTED"):
                return g
        return None

    def wants(self, name: str, event: str, subscribed: frozenset[str]) -> bool:
        """Whether C{event} in mailbox C{name} (not the selected one) is told."""
        for g in self.groups:
            if g.filter.startswith("SELECTED"):
                continue
            if not _matches(g, name, subscribed):
                continue
            if not g.events:
                return False
            if event in g.events:
                return True
        return False

    def cancel(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


def _matches(group: NotifyGroup, name: str, subscribed: frozenset[str]) -> bool:
    """RFC 5465 section 6: whether the group's filter covers mailbox C{name}."""
    kind = group.filter
    if kind == "PERSONAL":
        return True
    if kind == "INBOXES":
        return name == "INBOX"
    if kind == "SUBSCRIBED":
        return name in subscribed
    names = group.mailboxes
    if kind == "MAILBOXES":
        return name in names
    if kind == "SUBTREE":
        from imapd.mailboxname import DELIMITER

        return any(name == n or name.startswith(n + DELIMITER) for n in names)
    return False


class _Changes:
    """
    In-process change notices: the NOTIFY sessions of each user, told to
    look at once when another session of the user finished a command
    that may have changed something.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, weakref.WeakSet] = {}
        #: Sessions in IDLE (RFC 2177) per user: session -> wake().
        self._idlers: dict[str, weakref.WeakKeyDictionary] = {}

    def idling(self, session, wake) -> None:
        """
        C{session} is in IDLE: C{wake()} when another session of the user
        may have changed its selected mailbox, so that the change is
        reported at once rather than at the next poll (issue 14: all
        sessions of a user share a worker process for this).
        """
        self._idlers.setdefault(session.account.user, weakref.WeakKeyDictionary())[session] = wake

    def idle_done(self, session) -> None:
        found = self._idlers.get(getattr(session.account, "user", None))
        if found is not None:
            found.pop(session, None)

    def watch(self, session) -> None:
        self._sessions.setdefault(session.account.user, weakref.WeakSet()).add(session)

    def unwatch(self, session) -> None:
        found = self._sessions.get(getattr(session.account, "user", None))
        if found is not None:
            found.discard(session)

    def post(self, origin, key: str, cmd) -> None:
        if key not in MUTATING:
            return
        watchers = [s for s in self._sessions.get(origin.account.user, ())
                    if s.notify is not None and s.notify.groups and not s._closing]
        idlers = [(s, wake) for s, wake in list(self._idlers.get(origin.account.user, {}).items())
                  if s is not origin and s.selected is not None and not s._closing]
        if not watchers and not idlers:
            return
        touched = _touched(origin, key, cmd)
        for session, wake in idlers:
            if touched is None or session.selected.mailbox.name in touched:
                wake()
        for session in watchers:
            watch = session.notify
            if key == "RENAME":
                watch.renames[_name(session, cmd.old)] = _name(session, cmd.new)
            if session is origin:
                continue
            if touched is None or watch.touched is None:
                watch.touched = None
            else:
                watch.touched |= touched
            _look_soon(session)


def _touched(origin, key: str, cmd) -> Optional[set]:
    """
    The mailboxes a command of C{origin} may have changed, or None when
    mailbox names or subscriptions may have changed (or we cannot tell):
    then the next look reads everything.  This keeps a look after another
    session's STORE to one STATUS read, not one per watched mailbox.
    """
    names = set()
    if key in ("APPEND", "COPY", "UID COPY", "MOVE", "UID MOVE"):
        names.add(_name(origin, cmd.mailbox))
    if key != "APPEND":
        if origin.selected is None:
            return None
        names.add(origin.selected.mailbox.name)
    return names


#: The process's change notices.
changes = _Changes()


def _name(session, raw: bytes) -> str:
    return mailboxname.from_wire(raw, utf8=session.imap4rev2)


def _look_soon(session, delay: float = 0) -> None:
    """Queue one L{Poll} (at most one waits at a time)."""
    watch = session.notify
    if watch is None or watch.queued:
        return
    watch.queued = True
    session.clock.callLater(delay, session.enqueue_internal, Poll("*"))


def _schedule(session) -> None:
    """Plan the periodic look, which reads everything (other processes)."""
    watch = session.notify
    watch.cancel()
    if watch.groups:
        watch.timer = session.clock.callLater(
            session.limits.notify_poll_interval, _look_everything, session)


def _look_everything(session) -> None:
    watch = session.notify
    if watch is not None:
        watch.touched = None
        _look_soon(session)


# -- the selected mailbox ------------------------------------------------


async def sync_selected(session, allow_expunge: bool) -> None:
    """
    Re-sync the selected mailbox as NOTIFY asks (called by the session's
    L{imapd.protocol.IMAPServerProtocol.sync}): not at all without
    SELECTED/SELECTED-DELAYED; EXPUNGE held back with SELECTED-DELAYED
    except where a command allows them (section 6.1.2); unsolicited flag
    FETCHes only with FlagChange (section 5.1); and after EXISTS, one
    FETCH of MessageNew's attributes per new message (section 5.2).
    """
    group = session.notify.selected
    if group is None or not group.events:
        return
    view = session.selected
    last = view.uids[-1] if view.uids else 0
    flags = "FlagChange" in group.events

    def keep(line: bytes) -> bool:
        # The view's own lines: FETCH ones are flag updates only.
        return flags or b" FETCH (" not in line

    async def fetch_new() -> None:
        # Section 5.2: after EXISTS, a FETCH of what MessageNew asked for;
        # section 7: before the ESEARCH updates.  UID FETCH gives UID
        # first, as section 5.2's example shows.
        if not group.fetch_atts or session.selected is not view:
            return
        new = view.uids[bisect_right(view.uids, last):]
        if new:
            from imapd.commands.fetch import handle_fetch

            await handle_fetch(session, Fetch(
                "*", SequenceSet(tuple((u, u) for u in new)), group.fetch_atts, uid=True))

    await session.sync(allow_expunge, keep=keep, own=True, after_apply=fetch_new)


# -- other mailboxes -----------------------------------------------------


def _status_line(session, name: str, status, items: list[str]) -> bytes:
    values = {"MESSAGES": status.messages, "UIDNEXT": status.uidnext,
              "UIDVALIDITY": status.uidvalidity, "UNSEEN": status.unseen,
              "HIGHESTMODSEQ": status.highestmodseq}
    if "CONDSTORE" in session.enabled and "HIGHESTMODSEQ" not in items:
        # Sections 5.1-5.3: with CONDSTORE, HIGHESTMODSEQ is included.
        items = items + ["HIGHESTMODSEQ"]
    text = " ".join(f"{i} {values[i]}" for i in items)
    return (b"* STATUS " + mailboxname.astring(name, utf8=session.imap4rev2)
            + b" (" + text.encode() + b")\r\n")


def _read_state(store, watched_filter, limit: int):
    """
    Blocking: the mailbox names, the subscriptions, and the status of each
    mailbox C{watched_filter(name, subscribed)} picks; None for the
    statuses when that is more than C{limit} mailboxes (none is read).
    """
    from storage.errors import StoreError

    names = frozenset(i.name for i in store.list_mailboxes()
                      if "\\Noselect" not in i.attributes and "\\NonExistent" not in i.attributes)
    subscribed = frozenset(store.subscriptions())
    watched = sorted(n for n in names if watched_filter(n, subscribed))
    if len(watched) > limit:
        return names, subscribed, None
    statuses = {}
    for name in watched:
        try:
            statuses[name] = store.status(name)
        except StoreError:
            continue
    return names, subscribed, statuses


def _watched(session, watch: Watch):
    """The filter of mailboxes whose message events are watched."""
    selected = session.selected.mailbox.name if session.selected is not None else None

    def watched(name: str, subscribed: frozenset[str]) -> bool:
        return name != selected and watch.wants(name, "MessageNew", subscribed)
    return watched


def _status_changes(session, watch: Watch, statuses: dict, subscribed) -> list[bytes]:
    """
    Sections 5.1-5.3: a STATUS response for each watched mailbox whose
    message count, UIDNEXT or UIDVALIDITY changed (MessageNew,
    MessageExpunge), or, with FlagChange, whose UNSEEN or HIGHESTMODSEQ did.
    """
    out = []
    for name, new in statuses.items():
        old = watch.statuses.get(name)
        if old is None:
            continue
        if new.uidvalidity != old.uidvalidity:
            items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]
        elif (new.messages, new.uidnext) != (old.messages, old.uidnext):
            items = ["MESSAGES", "UIDNEXT", "UNSEEN"]
        elif ((new.unseen, new.highestmodseq) != (old.unseen, old.highestmodseq)
              and watch.wants(name, "FlagChange", subscribed)):
            items = ["UIDVALIDITY", "UNSEEN"]
        else:
            continue
        out.append(_status_line(session, name, new, items))
    return out


def _name_changes(session, watch: Watch, names, subscribed) -> list[bytes]:
    """
    Section 5.4 (MailboxName): a LIST for each mailbox created, deleted
    (C{\\NonExistent}) or renamed (C{OLDNAME}); section 5.5
    (SubscriptionChange): a LIST with or without C{\\Subscribed}.
    """
    from imapd.mailboxname import DELIMITER

    delim = wire.quoted(DELIMITER.encode())
    utf8 = session.imap4rev2

    def line(attrs: bytes, name: str, extra: bytes = b"") -> bytes:
        return (b"* LIST (" + attrs + b") " + delim + b" "
                + mailboxname.astring(name, utf8=utf8) + extra + b"\r\n")

    out = []
    created = set(names - watch.names)
    deleted = set(watch.names - names)
    for old, new in list(watch.renames.items()):
        if old in deleted and new in created and (
                watch.wants(new, "MailboxName", subscribed)
                or watch.wants(old, "MailboxName", subscribed)):
            out.append(line(b"", new, b' ("OLDNAME" (' + mailboxname.astring(old, utf8=utf8)
                            + b"))"))
            deleted.discard(old)
            created.discard(new)
    watch.renames.clear()
    for name in sorted(deleted):
        if watch.wants(name, "MailboxName", subscribed | watch.subscribed):
            out.append(line(b"\\NonExistent", name))
    for name in sorted(created):
        if watch.wants(name, "MailboxName", subscribed):
            out.append(line(b"", name))
    for name in sorted(subscribed ^ watch.subscribed):
        if watch.wants(name, "SubscriptionChange", subscribed | watch.subscribed):
            out.append(line(b"\\Subscribed" if name in subscribed else b"", name))
    return out


class _Overflow(Exception):
    """More watched mailboxes than C{limits.max_notify_mailboxes}."""


def _read_some(store, names) -> dict:
    """Blocking: the status of each of C{names} that can still be read."""
    from storage.errors import StoreError

    statuses = {}
    for name in names:
        try:
            statuses[name] = store.status(name)
        except StoreError:
            continue
    return statuses


async def _look(session, watch: Watch, initial: bool = False) -> list[bytes]:
    """
    Read the mailboxes, compare with what was last told, remember the new
    state; the responses to send.  C{initial}: only remember.  When only
    in-process notices about some mailboxes came since the last look
    (L{Watch.touched}), only those are read.

    @raises _Overflow: too many mailboxes are watched.
    """
    touched, watch.touched = watch.touched, set()
    if touched is not None and not initial:
        watched = _watched(session, watch)
        some = sorted(n for n in touched if watched(n, watch.subscribed))
        statuses = await session.run(_read_some, session.account.store, some)
        if session.notify is not watch:
            return []
        out = _status_changes(session, watch, statuses, watch.subscribed)
        watch.statuses.update(statuses)
        return out
    names, subscribed, statuses = await session.run(
        _read_state, session.account.store, _watched(session, watch),
        session.limits.max_notify_mailboxes)
    if statuses is None:
        raise _Overflow()
    if session.notify is not watch:
        return []
    out = []
    if not initial:
        out += _name_changes(session, watch, names, subscribed)
        out += _status_changes(session, watch, statuses, subscribed)
    watch.names, watch.subscribed, watch.statuses = names, subscribed, statuses
    return out


async def handle_poll(session, cmd: Poll):
    """A L{Poll}: look, send what changed, and plan the next look."""
    session.suppress_tagged = True
    watch = session.notify
    if watch is None:
        return None
    watch.queued = False
    if not watch.groups:
        return None
    if session.selected is not None:
        group = watch.selected
        await session.sync(allow_expunge=group is not None and group.filter == "SELECTED")
    await _look_and_tell(session, watch)
    if session.notify is watch:
        _schedule(session)
    return None


async def _look_and_tell(session, watch: Watch) -> None:
    try:
        lines = await _look(session, watch)
    except _Overflow:
        # Section 5.8: more than we said we would watch; as NOTIFY NONE.
        watch.cancel()
        session.notify = Watch()
        changes.unwatch(session)
        lines = [b"* OK [NOTIFICATIONOVERFLOW] Too many mailboxes to watch; "
                 b"NOTIFY is now NONE\r\n"]
    for line in lines:
        session.send(line)


async def look_during_idle(session) -> None:
    """
    Section 4: while IDLE runs, it reports the NOTIFY events; the IDLE
    poll re-synced the selected mailbox (as NOTIFY says), this looks at
    the others.
    """
    watch = session.notify
    if watch is not None and watch.groups:
        watch.touched = None
        await _look_and_tell(session, watch)


# -- the command ---------------------------------------------------------


async def handle_notify(session, cmd: Notify):
    """
    RFC 5465 section 3.1.  NOTIFY SET replaces the settings; it implies a
    NOOP (the dispatcher's re-sync after the command, under the new
    settings); with STATUS, one STATUS response per watched mailbox
    before the tagged OK.
    """
    old = session.notify
    if old is not None:
        old.cancel()
    if cmd.groups is None:
        session.notify = Watch()
        changes.unwatch(session)
        return None
    unsupported = [e for g in cmd.groups for e in g.events if e not in SUPPORTED]
    if unsupported:
        raise CommandFailed(f"Unsupported NOTIFY event {unsupported[0]}",
                            f"BADEVENT ({' '.join(SUPPORTED)})")
    groups = tuple(
        NotifyGroup(g.filter, tuple(_name(session, m) for m in g.mailboxes), g.events,
                    g.fetch_atts)
        for g in cmd.groups)
    watch = Watch(groups)
    if old is not None:
        watch.renames = old.renames
    if any("FlagChange" in g.events for g in groups if not g.filter.startswith("SELECTED")):
        # Flag changes elsewhere are told by HIGHESTMODSEQ (section 5.1),
        # which means CONDSTORE for this client (as Dovecot 2.3 does).
        from imapd.commands.any import enable_condstore

        enable_condstore(session)
    if session.selected is not None:
        # Section 3.1: the implicit NOOP reports whatever the settings so
        # far held back; the dispatcher's re-sync then uses the new ones.
        session.notify = None
        try:
            await session.sync(allow_expunge=True)
        finally:
            session.notify = old
    session.notify = watch
    try:
        await _look(session, watch, initial=True)
    except _Overflow:
        # Section 3.1: prohibitively expensive; the old settings stay.
        session.notify = old
        if old is not None and old.groups:
            _schedule(session)
        raise CommandFailed(
            f"NOTIFY would watch more than {session.limits.max_notify_mailboxes} mailboxes",
            "NOTIFICATIONOVERFLOW") from None
    if cmd.status:
        for name, status in watch.statuses.items():
            session.send(_status_line(session, name, status,
                                      ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]))
    changes.watch(session)
    _schedule(session)
    return None
