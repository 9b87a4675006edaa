# -*- test-case-name: tests.imapd.adminops.test_mail -*-
"""
C{imapd-admin mailbox|fetch|search|expunge|quota}: a user's mail for
scripts (the counterparts of C{doveadm mailbox}, C{fetch}, C{search},
C{expunge} and C{quota}).

    mailbox list   -u USER|-A [--subscribed]
    mailbox status -u USER|-A [MAILBOX ...]          (default: every mailbox)
    mailbox create -u USER|-A MAILBOX ...
    mailbox delete -u USER|-A MAILBOX ...
    mailbox rename -u USER|-A OLD NEW
    search  -u USER|-A MAILBOX QUERY ...             UIDs
    fetch   -u USER|-A MAILBOX QUERY ... [--fields uid,flags,size,date.received,hdr,body,text]
    expunge -u USER|-A MAILBOX QUERY ...
    quota get|recalc -u USER|-A

Nothing here is a second implementation: the store is the one a login
opens (L{imapd.adminops.common.Site.account}: the realm, the store
registry, the same locks and index); QUERY is IMAP SEARCH syntax read by
the server's parser (L{imapd.parser.searchkey}) and evaluated by the
SEARCH command's own L{imapd.commands.search.run_search}; mailbox names
are checked as CREATE/RENAME check them (L{imapd.mailboxname}), and
DELETE/RENAME drop the index as the commands do
(L{imapd.cache.forget_mailbox}); quota usage is L{imapd.commands.quota.usage}.
Mailbox names are given in UTF-8 with C{/} as the hierarchy delimiter.

Unlike IMAP EXPUNGE, C{expunge} removes the messages QUERY matches
whether or not they are C{\\Deleted} (as C{doveadm expunge} does): write
C{DELETED} into QUERY for the IMAP behaviour.
"""

from __future__ import annotations

from datetime import timezone

from imapd.adminops.common import (Failed, NotFound, add_command, emit, pairs,
                                   run_per_user)

__all__ = ["add_commands", "parse_query", "FETCH_FIELDS"]

#: What C{fetch --fields} can print (Dovecot's doveadm-fetch names).
FETCH_FIELDS = ("uid", "flags", "size", "date.received", "hdr", "body", "text")
_STATUS_KEYS = ("messages", "recent", "unseen", "uidnext", "uidvalidity", "size",
                "highestmodseq")


def add_commands(areas) -> None:
    mailbox = areas.add_parser("mailbox", help="list, inspect and change a user's mailboxes")
    commands = mailbox.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = add_command(commands, "list", _list, "list a user's mailboxes",
                    "  imapd-admin mailbox list -u alice\n"
                    "  imapd-admin mailbox list -A --subscribed --json", users="many")
    p.add_argument("--subscribed", "-s", action="store_true", help="subscribed ones only")
    p = add_command(commands, "status", _status,
                    "messages, recent, unseen, uidnext, uidvalidity, size of mailboxes",
                    "  imapd-admin mailbox status -u alice INBOX\n"
                    "  imapd-admin mailbox status -A --json        # every mailbox of "
                    "every user", users="many")
    p.add_argument("mailboxes", nargs="*", metavar="MAILBOX", help="default: every mailbox")
    p = add_command(commands, "create", _create, "create mailboxes",
                    "  imapd-admin mailbox create -u alice Archive Archive/2026\n"
                    "  imapd-admin mailbox create -A Junk          # for every user",
                    users="many")
    p.add_argument("mailboxes", nargs="+", metavar="MAILBOX")
    p = add_command(commands, "delete", _delete, "delete mailboxes and their messages",
                    "  imapd-admin mailbox delete -u alice Archive/2025\n"
                    "  imapd-admin mailbox delete -A Spam --json", users="many")
    p.add_argument("mailboxes", nargs="+", metavar="MAILBOX")
    p = add_command(commands, "rename", _rename,
                    "rename a mailbox (with its children; INBOX moves its messages)",
                    "  imapd-admin mailbox rename -u alice Old New\n"
                    "  imapd-admin mailbox rename -A Spam Junk", users="many")
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")

    query_help = "IMAP SEARCH keys (RFC 3501 6.4.4), e.g. UNSEEN SINCE 1-Jan-2026"
    p = add_command(areas, "search", _search, "the UIDs of the messages matching QUERY",
                    "  imapd-admin search -u alice INBOX UNSEEN SINCE 1-Jan-2026\n"
                    "  imapd-admin search -A INBOX FROM mallory@example.com --json",
                    users="many")
    p.add_argument("mailbox", metavar="MAILBOX")
    p.add_argument("query", nargs="+", metavar="QUERY", help=query_help)
    p = add_command(areas, "fetch", _fetch, "print fields of the messages matching QUERY",
                    "  imapd-admin fetch -u alice INBOX ALL\n"
                    "  imapd-admin fetch -u alice INBOX 'UID 17' --fields uid,flags,hdr\n"
                    "  imapd-admin fetch -u alice INBOX SUBJECT invoice --fields text --json\n"
                    f"fields: {', '.join(FETCH_FIELDS)}", users="many")
    p.add_argument("mailbox", metavar="MAILBOX")
    p.add_argument("query", nargs="+", metavar="QUERY", help=query_help)
    p.add_argument("--fields", "-f", default="uid,flags,size,date.received",
                   help="comma-separated (default uid,flags,size,date.received)")
    p = add_command(areas, "expunge", _expunge,
                    "remove the messages matching QUERY (\\Deleted or not)",
                    "  imapd-admin expunge -u alice Trash BEFORE 1-Jan-2026\n"
                    "  imapd-admin expunge -A Junk DELETED", users="many")
    p.add_argument("mailbox", metavar="MAILBOX")
    p.add_argument("query", nargs="+", metavar="QUERY", help=query_help)

    quota = areas.add_parser("quota", help="a user's quota usage and limits")
    commands = quota.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_command(commands, "get", _quota(False), "usage and limits ([quota])",
                "  imapd-admin quota get -u alice\n"
                "  imapd-admin quota get -A --json", users="many")
    add_command(commands, "recalc", _quota(True),
                "re-read every mailbox from the store, then print usage (imapd keeps no "
                "quota counter that could drift: usage is summed from the mailboxes)",
                "  imapd-admin quota recalc -u alice", users="many")


# -- helpers -------------------------------------------------------------


def _name(text: str, creating: bool = False) -> str:
    """A mailbox name as the IMAP commands accept it (UTF-8, L{imapd.mailboxname})."""
    from imapd import mailboxname
    from imapd.errors import IMAPError

    try:
        return mailboxname.from_wire(text.encode("utf-8", "surrogateescape"), utf8=True,
                                     creating=creating)
    except IMAPError as e:
        raise Failed(f"mailbox name {text!r}: {e.text}") from None


def parse_query(words: list[str]):
    """
    The search program of QUERY words (joined by spaces, as an IMAP
    SEARCH command's arguments), read by the server's own parser.

    @raises Failed: the line is not IMAP SEARCH syntax (the parser's reason).
    """
    from imapd.parser.primitives import NotParseable
    from imapd.parser.searchkey import parse_search_keys
    from imapd.parser.types import SearchKey

    line = " ".join(words).encode("utf-8")
    try:
        keys, pos = parse_search_keys(line, 0, _MAX_DEPTH)
    except NotParseable as e:
        raise Failed(f"QUERY: {e.reason} (at byte {e.pos})") from None
    if pos != len(line):
        raise Failed(f"QUERY: unexpected text at byte {pos}: {line[pos:pos + 20]!r}")
    return SearchKey("AND", children=keys)


#: The nesting the session parser allows (limits.max_search_depth's default).
_MAX_DEPTH = 32


def _open(store, name: str, readonly: bool):
    from storage.errors import MailboxNotFound

    try:
        return store.open(name, readonly=readonly)
    except MailboxNotFound:
        raise NotFound(f"no mailbox {name!r}") from None


def _matches(account, mailbox, key):
    """
    The mailbox's view (as a session selecting it has) and the UIDs
    matching C{key}, through the SEARCH command's evaluation and index.
    """
    from imapd.cache import SearchCache
    from imapd.commands.search import run_search
    from imapd.selected import SelectedView

    view = SelectedView(mailbox, mailbox.sync(), readonly=True)
    cache = SearchCache.for_search(account, mailbox, key)
    return view, [uid for _seq, uid in run_search(view, key, None, cache)]


def _in_mailbox(site, user: str, name: str, readonly: bool, work):
    """C{work(account, mailbox)} on the user's mailbox C{name}, opened for it and closed."""
    with site.account(user, existing=True) as account:
        mailbox = _open(account.store, name, readonly=readonly)
        try:
            return work(account, mailbox)
        finally:
            mailbox.close()


def _selectable(store) -> list[str]:
    return [info.name for info in store.list_mailboxes()
            if not info.attributes & {"\\Noselect", "\\NonExistent"}]


# -- mailbox -------------------------------------------------------------


def _list(config, args, out, err):
    def one(site, user):
        with site.account(user, existing=True) as account:
            store = account.store
            if args.subscribed:
                return [{"mailbox": name, "attributes": []} for name in store.subscriptions()]
            return [{"mailbox": info.name, "attributes": sorted(info.attributes)}
                    for info in store.list_mailboxes()]

    rows, status = run_per_user(config, args, err, one)
    emit(out, args, rows, lambda r: "\t".join(
        ([r["user"]] if "user" in r else []) + [r["mailbox"]]))
    return status


def _status(config, args, out, err):
    from storage.errors import MailboxNotFound

    names = [_name(n) for n in args.mailboxes]

    def one(site, user):
        with site.account(user, existing=True) as account:
            store = account.store
            rows = []
            for name in names or _selectable(store):
                try:
                    st = store.status(name)
                except MailboxNotFound:
                    if names:
                        raise NotFound(f"no mailbox {name!r}") from None
                    continue  # deleted since the listing
                rows.append({"mailbox": name, **{k: getattr(st, k) for k in _STATUS_KEYS}})
            return rows

    rows, status = run_per_user(config, args, err, one)
    emit(out, args, rows, lambda r: "\t".join(
        ([r["user"]] if "user" in r else []) + [r["mailbox"], pairs(r, _STATUS_KEYS)]))
    return status


def _changes(config, args, out, err, change) -> int:
    """
    Run C{change(account)} (which returns C{(action, mailbox)} pairs) for
    C{-u USER} or every user (C{-A}, where a user the change fails for is
    reported and the others go on); print one line per change.
    """
    def one(site, user):
        with site.account(user) as account:
            return [{"action": action, "mailbox": name} for action, name in change(account)]

    rows, status = run_per_user(config, args, err, one)
    emit(out, args, rows, lambda r: "\t".join(
        ([r["user"]] if "user" in r else []) + [f"{r['action']} {r['mailbox']}"]))
    return status


def _each(names, inbox_refusal: str, action: str, act):
    """The change of C{act(account, name)} on each name (never INBOX), as C{action}."""
    def change(account):
        done = []
        for name in names:
            if name == "INBOX":
                raise Failed(inbox_refusal)
            act(account, name)
            done.append((action, name))
        return done
    return change


def _create(config, args, out, err):
    from storage.errors import MailboxExists

    def create(account, name):
        try:
            account.store.create(name)
        except MailboxExists:
            raise Failed(f"mailbox {name!r} exists already") from None

    names = [_name(n, creating=True).rstrip("/") for n in args.mailboxes]
    return _changes(config, args, out, err,
                    _each(names, "INBOX always exists", "created", create))


def _delete(config, args, out, err):
    from imapd.cache import forget_mailbox
    from storage.errors import MailboxNotFound

    def delete(account, name):
        try:
            forget_mailbox(account, name, False, lambda: account.store.delete(name))
        except MailboxNotFound:
            raise NotFound(f"no mailbox {name!r}") from None

    names = [_name(n) for n in args.mailboxes]
    return _changes(config, args, out, err,
                    _each(names, "INBOX cannot be deleted", "deleted", delete))


def _rename(config, args, out, err):
    from imapd.cache import forget_mailbox
    from storage.errors import MailboxExists, MailboxNotFound

    old, new = _name(args.old), _name(args.new, creating=True)
    if new == "INBOX":
        raise Failed("cannot rename to INBOX")

    def change(account):
        try:
            forget_mailbox(account, old, True, lambda: account.store.rename(old, new))
        except MailboxNotFound:
            raise NotFound(f"no mailbox {old!r}") from None
        except MailboxExists:
            raise Failed(f"mailbox {new!r} exists already") from None
        return [(f"renamed {old} to", new)]

    return _changes(config, args, out, err, change)


# -- search, fetch, expunge ---------------------------------------------


def _search(config, args, out, err):
    key = parse_query(args.query)
    name = _name(args.mailbox)

    def one(site, user):
        return _in_mailbox(site, user, name, True, lambda account, mailbox: [
            {"mailbox": name, "uid": uid} for uid in _matches(account, mailbox, key)[1]])

    rows, status = run_per_user(config, args, err, one)
    emit(out, args, rows, lambda r: "\t".join(
        ([r["user"]] if "user" in r else []) + [str(r["uid"])]))
    return status


def _fields(text: str) -> list[str]:
    fields = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in fields if f not in FETCH_FIELDS]
    if unknown or not fields:
        raise Failed(f"--fields: unknown {', '.join(unknown) or '(none)'}; "
                     f"use {','.join(FETCH_FIELDS)}")
    return fields


def _fetch_row(mailbox, record, fields) -> dict:
    from imapd.message import Message

    row = {}
    raw = None
    for field in fields:
        if field == "uid":
            row[field] = record.uid
        elif field == "flags":
            # As stored: \\Recent belongs to sessions, not to the message.
            row[field] = sorted(record.flags)
        elif field == "size":
            row[field] = record.size
        elif field == "date.received":
            row[field] = record.internaldate.astimezone(timezone.utc).isoformat()
        else:
            if raw is None:
                raw = mailbox.read(record.uid)
            header = Message(raw).header_bytes()
            part = {"hdr": header, "body": raw[len(header):], "text": raw}[field]
            row[field] = part.decode("utf-8", "replace")
    return row


def _fetch(config, args, out, err):
    from storage.errors import MessageExpunged

    key = parse_query(args.query)
    fields = _fields(args.fields)
    name = _name(args.mailbox)

    def fetch(account, mailbox):
        view, uids = _matches(account, mailbox, key)
        rows = []
        for uid in uids:
            try:
                rows.append(_fetch_row(mailbox, view.records[uid], fields))
            except MessageExpunged:
                continue
        return rows

    def one(site, user):
        return _in_mailbox(site, user, name, True, fetch)

    rows, status = run_per_user(config, args, err, one)

    def text(row):
        lines = []
        for k, v in row.items():
            v = " ".join(v) if isinstance(v, list) else v
            if isinstance(v, str) and "\n" in v:
                lines.append(f"{k}:\n{v.rstrip()}")
            else:
                lines.append(f"{k}: {v}")
        return "\n".join(lines) + "\n"

    emit(out, args, rows, text)
    return status


def _expunge(config, args, out, err):
    key = parse_query(args.query)
    name = _name(args.mailbox)

    def expunge(account, mailbox):
        uids = _matches(account, mailbox, key)[1]
        if not uids:
            return []
        tx = mailbox.transaction()
        try:
            for uid in uids:
                tx.expunge(uid)
            result = tx.commit()
        except BaseException:
            tx.rollback()
            raise
        return [{"mailbox": name, "uid": uid} for uid in result.expunged]

    def one(site, user):
        return _in_mailbox(site, user, name, False, expunge)

    rows, status = run_per_user(config, args, err, one)
    emit(out, args, rows, lambda r: "\t".join(
        ([r["user"]] if "user" in r else []) + ["expunged", str(r["uid"])]))
    return status


# -- quota ---------------------------------------------------------------


def _quota(recalc: bool):
    def run(config, args, out, err):
        from imapd.commands.quota import usage
        from imapd.tap import _quota_policy

        policy = _quota_policy(config.quota)

        def one(site, user):
            with site.account(user, existing=True) as account:
                if recalc:
                    for name in _selectable(account.store):
                        mailbox = account.store.open(name, readonly=True)
                        try:
                            mailbox.sync()
                        finally:
                            mailbox.close()
                used = usage(account.store)
            limits = policy.limits_for(user, account.record)
            return [{"storage_kib": used.storage, "storage_limit_kib": limits.storage,
                     "messages": used.messages, "messages_limit": limits.messages}]

        rows, status = run_per_user(config, args, err, one)
        emit(out, args, rows, lambda r: pairs(r, list(r)))
        return status

    return run
