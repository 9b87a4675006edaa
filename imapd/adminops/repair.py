# -*- test-case-name: tests.imapd.adminops.test_repair -*-
"""
C{imapd-admin index rebuild|remove} and C{force-resync}: the per-node
index and the store's own UID records, repaired by hand (the
counterparts of C{doveadm index}, C{doveadm force-resync}).

    index remove  -u USER|-A [MAILBOX]      drop the node's cache
    index rebuild -u USER|-A [MAILBOX]      drop it and fill it again
    force-resync  -u USER|-A MAILBOX [--uidvalidity N]

The index (L{index}, DESIGN.md rule 2) is only a cache: removing it is
always safe, and a rebuild fills it with what a FETCH of ENVELOPE,
BODYSTRUCTURE and the header, and a SEARCH of FROM/TO/CC/BCC/SUBJECT,
would compute (L{imapd.cache.FetchCache}, L{imapd.cache.SearchCache}: the
same rows the sessions read).  UIDs never come from it.

C{force-resync} repairs what the store keeps UIDs in (rule 1): a
Maildir's C{dovecot-uidlist} (L{storage.maildir.repair}) or an mbox's
C{X-IMAPbase}/C{X-UID} fields (L{storage.mbox.repair}), keeping every
UID and the UIDVALIDITY that can still be read, then syncs the mailbox
as a login would, which gives UIDs to mail that has none yet.  Mailbox
C{*} means every mailbox of the user.
"""

from __future__ import annotations

from imapd.adminops.common import Failed, NotFound, add_command, emit, pairs, run_per_user

__all__ = ["add_commands", "rebuild_index"]

#: Messages read per FETCH/SEARCH batch while rebuilding.
_BATCH = 500


def add_commands(areas) -> None:
    index = areas.add_parser("index", help="remove or rebuild the node's mailbox index (cache)")
    commands = index.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, run, text, example in (
            ("remove", _remove, "remove the index databases of mailboxes (a cache: always safe)",
             "  imapd-admin index remove -u alice\n"
             "  imapd-admin index remove -u alice Archive/2025"),
            ("rebuild", _rebuild,
             "remove and fill again the index of mailboxes (ENVELOPE, BODYSTRUCTURE, "
             "header, search fields)",
             "  imapd-admin index rebuild -u alice INBOX\n"
             "  imapd-admin index rebuild -A --json")):
        p = add_command(commands, name, run, text, example, users="many")
        p.add_argument("mailbox", nargs="?", metavar="MAILBOX",
                       help="default: every mailbox of the user")
    p = add_command(areas, "force-resync", _resync,
                    "repair a Maildir's dovecot-uidlist or an mbox's X-IMAPbase/X-UID "
                    "without renumbering, then sync",
                    "  imapd-admin force-resync -u alice INBOX\n"
                    "  imapd-admin force-resync -u alice '*'          # every mailbox\n"
                    "  imapd-admin force-resync -u alice INBOX --uidvalidity 1700000000",
                    users="many")
    p.add_argument("mailbox", metavar="MAILBOX", help="a mailbox, or * for every mailbox")
    p.add_argument("--uidvalidity", type=_uidvalidity, metavar="N",
                   help="the UIDVALIDITY clients know, used only if the store's is unreadable "
                        "and the modseq log does not remember it")


def _uidvalidity(text: str) -> int:
    import argparse

    if not text.isdigit() or not 0 < int(text) < 2**32:
        raise argparse.ArgumentTypeError(f"not a UIDVALIDITY (1 to 4294967295): {text!r}")
    return int(text)


def _names(account, name) -> list[str]:
    from imapd.adminops.mail import _name, _selectable

    if name is None or name == "*":
        return _selectable(account.store)
    return [_name(name)]


def _identity(account, name: str) -> str:
    from imapd.cache import _identities

    found = _identities(account, name, False)
    if not found:
        raise Failed(f"mailbox {name!r}: the store has no index identity for it")
    return found[0]


def _indexes(config, args, out, err, verb: str, work) -> int:
    """
    C{work(account, name)} (a row) for each mailbox named (or every one)
    of each user, with the index directory required; one line per row.
    """
    def one(site, user):
        with site.account(user, existing=True) as account:
            if not account.index_dir:
                raise Failed("no index directory configured (option 'mail.index_dir')")
            return [{"mailbox": name, **work(account, name)}
                    for name in _names(account, args.mailbox)]

    rows, status = run_per_user(config, args, err, one)
    emit(out, args, rows, lambda r: "\t".join(
        ([r["user"]] if "user" in r else []) + [verb, r["mailbox"], pairs(
            r, [k for k in r if k not in ("user", "mailbox")])]))
    return status


def _remove(config, args, out, err):
    from index import remove_index

    def work(account, name):
        if args.mailbox not in (None, "*"):
            _exists(account, name)
        return {"freed_bytes": remove_index(account.index_dir, _identity(account, name))}

    return _indexes(config, args, out, err, "removed", work)


def _exists(account, name: str) -> None:
    from storage.errors import MailboxNotFound

    try:
        account.store.open(name, readonly=True).close()
    except MailboxNotFound:
        raise NotFound(f"no mailbox {name!r}") from None


def rebuild_index(account, mailbox) -> int:
    """
    Fill the node's index of the open C{mailbox} for every message, with
    the rows FETCH and SEARCH keep (the caches' own code computes and
    writes them).  Blocking.

    @return: the number of messages indexed.
    """
    from imapd.cache import FetchCache, SearchCache, mailbox_identity
    from imapd.parser.types import FetchAttr
    from imapd.search import SearchItem
    from imapd.search.match import SEARCH_COLUMNS
    from imapd.selected import SelectedView
    from storage.errors import MessageExpunged

    view = SelectedView(mailbox, mailbox.sync(), readonly=True)
    attrs = [FetchAttr(name) for name in ("ENVELOPE", "BODY", "BODYSTRUCTURE",
                                          "RFC822.HEADER")]
    fetch = FetchCache.for_fetch(account, mailbox, attrs)
    search = SearchCache(account.index_dir, mailbox_identity(account.user, mailbox),
                         tuple(sorted(SEARCH_COLUMNS.values())))
    uids = list(view.uids)
    done = 0
    max_uid = uids[-1] if uids else 0
    for start in range(0, len(uids), _BATCH):
        batch = uids[start:start + _BATCH]
        make = fetch.message_maker(view)
        rows = fetch.lookup(view, batch)
        messages = []
        for uid in batch:
            m = make(uid, rows.get(uid))
            try:
                m.envelope()
                m.bodystructure(False)
                m.bodystructure(True)
                m.header_bytes()
            except MessageExpunged:
                continue
            messages.append(m)
        fetch.store(view, messages)
        cached = search.lookup(view, batch)
        items = []
        for seq, uid in enumerate(batch, start + 1):
            record = view.records.get(uid)
            if record is None:
                continue
            item = SearchItem(seq=seq, record=record, flags=view.flags(uid),
                              max_seq=len(uids), max_uid=max_uid,
                              message_loader=_loader(mailbox, uid),
                              cached=cached.get(uid, {}), computed={})
            try:
                for name in SEARCH_COLUMNS:
                    item.field_text(name)
            except MessageExpunged:
                continue
            items.append(item)
        search.store(view, items)
        done += len(messages)
    return done


def _loader(mailbox, uid):
    from imapd.message import Message

    return lambda: Message(mailbox.read(uid))


def _rebuild(config, args, out, err):
    from imapd.adminops.mail import _open
    from index import remove_index

    def work(account, name):
        mailbox = _open(account.store, name, readonly=True)
        try:
            remove_index(account.index_dir, _identity(account, name))
            return {"messages": rebuild_index(account, mailbox)}
        finally:
            mailbox.close()

    return _indexes(config, args, out, err, "rebuilt", work)


def _resync(config, args, out, err):
    from imapd.adminops.mail import _open
    from storage.maildir.mailbox import MaildirMailbox
    from storage.maildir.repair import repair_uidlist
    from storage.mbox.repair import repair_mbox

    def one(site, user):
        with site.account(user, existing=True) as account:
            rows = []
            for name in _names(account, args.mailbox):
                # Opened without a sync: a Maildir reads its uidlist at the
                # first sync, an mbox open only parses (no write).
                mailbox = _open(account.store, name, readonly=False)
                try:
                    if isinstance(mailbox, MaildirMailbox):
                        repair = repair_uidlist(mailbox, args.uidvalidity)
                        what = "dovecot-uidlist"
                    else:
                        repair = repair_mbox(mailbox, args.uidvalidity)
                        what = "X-IMAPbase/X-UID"
                finally:
                    mailbox.close()
                # Then as a login syncs: new files get UIDs, the index and
                # the modseq log catch up.
                mailbox = _open(account.store, name, readonly=False)
                try:
                    snapshot = mailbox.sync()
                finally:
                    mailbox.close()
                for problem in repair.problems:
                    print(f"imapd-admin: {user} {name}: {problem}", file=err)
                rows.append({"mailbox": name, "repaired": what if repair.changed else "",
                             "uidvalidity": snapshot.uidvalidity,
                             "uidnext": snapshot.uidnext,
                             "messages": len(snapshot.messages),
                             "problems": list(repair.problems)})
            return rows

    rows, status = run_per_user(config, args, err, one)

    def text(r):
        state = f"repaired {r['repaired']}" if r["repaired"] else "sound"
        return "\t".join(([r["user"]] if "user" in r else []) + [
            r["mailbox"], state, pairs(r, ["uidvalidity", "uidnext", "messages"])])

    emit(out, args, rows, text)
    return status
