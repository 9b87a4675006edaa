# -*- test-case-name: tests.imapd.fts.test_fts_admin -*-
"""
C{imapd-admin fts ...}: the full-text index of one user's mailboxes.

    fts status  -u USER [MAILBOX]   messages, indexed, missing, size, check
    fts rebuild -u USER [MAILBOX]   forget the index and build it again now

Without MAILBOX, every selectable mailbox of the user.  The index is this
node's (C{[mail] index_dir} of the configuration given), so run it on
the node whose index is meant.  C{status} also runs FTS5's own
C{integrity-check}, which finds damage SQLite cannot see (an index that
disagrees with its text); C{rebuild} is the cure for it, and for a file
written by an older release.  Both are safe beside a running server
(SQLite's locking; a search meanwhile reads what the index lacks).
"""

from __future__ import annotations

import os
import sqlite3

__all__ = ["add_commands"]


def add_commands(areas) -> None:
    from imapd.adminops.common import add_command

    fts = areas.add_parser("fts", help="the full-text index behind SEARCH BODY/TEXT")
    commands = fts.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = add_command(commands, "status", _status,
                    "what a user's full-text index holds, and its check",
                    "  imapd-admin fts status -u alice\n"
                    "  imapd-admin fts status -A --json            # every user's mailboxes",
                    users="many")
    p.add_argument("mailbox", nargs="?", metavar="MAILBOX",
                   help="one mailbox (default: every selectable one)")
    p = add_command(commands, "rebuild", _rebuild,
                    "forget a user's full-text index and build it again",
                    "  imapd-admin fts rebuild -u alice INBOX\n"
                    "  imapd-admin fts rebuild -A", users="many")
    p.add_argument("mailbox", nargs="?", metavar="MAILBOX",
                   help="one mailbox (default: every selectable one)")


def _names(store, mailbox):
    from imapd.adminops.common import NotFound
    from storage.errors import MailboxNotFound

    if mailbox:
        try:
            store.status(mailbox)
        except MailboxNotFound:
            raise NotFound(f"no mailbox {mailbox!r}") from None
        return [mailbox]
    return sorted(info.name for info in store.list_mailboxes()
                  if "\\Noselect" not in info.attributes
                  and "\\NonExistent" not in info.attributes)


def _status(config, args, out, err) -> int:
    """
    One row per mailbox: messages, indexed, too large to index, missing,
    size and the check; status 1 when a check found damage (run
    C{rebuild}).
    """
    from imapd.adminops.common import emit, run_per_user

    def one(site, user):
        index_dir = site.effective.index_dir
        with site.account(user, existing=True) as account:
            return [_status_row(account.store, user, index_dir, name)
                    for name in _names(account.store, args.mailbox)]

    rows, status = run_per_user(config, args, err, one)
    emit(out, args, rows, lambda r: ("" if "user" not in r or not args.all_users
                                     else f"{r['user']}\t") + (
        f"{r['mailbox']}: messages={r['messages']} indexed={r['indexed']} "
        f"too_large={r['too_large']} missing={r['missing']} bytes={r['bytes']} "
        f"check={r['check']}"))
    if any(r["check"] not in ("ok", "empty") for r in rows):
        status = max(status, 1)
    return status


def _status_row(store, user, index_dir, name) -> dict:
    from imapd.cache import mailbox_identity
    from imapd.fts.query import fts_index

    mailbox = store.open(name, readonly=True)
    try:
        snapshot = mailbox.sync()
        index = fts_index(index_dir, mailbox_identity(user, mailbox))
        docs = index.documents(snapshot.uidvalidity)
        live = {r.uid for r in snapshot.messages}
        indexed = sum(1 for uid, (_size, complete) in docs.items() if uid in live and complete)
        too_large = sum(1 for uid, (_size, complete) in docs.items()
                        if uid in live and not complete)
        return {"mailbox": name, "messages": len(live), "indexed": indexed,
                "too_large": too_large, "missing": len(live - set(docs)),
                "bytes": index.stats()["bytes"], "check": _check(index.path)}
    finally:
        mailbox.close()


def _check(path: str) -> str:
    # FTS5's integrity-check compares the inverted index with the text;
    # SQLite's checks the b-trees.  Read-only beside a running server.
    if not os.path.exists(path):
        return "empty"
    try:
        conn = sqlite3.connect(path, timeout=5)
    except sqlite3.Error as e:
        return f"failed ({e})"
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            return f"damaged ({result})"
        conn.execute("INSERT INTO text(text) VALUES ('integrity-check')")
        return "ok"
    except sqlite3.Error as e:
        return f"damaged ({e})"
    finally:
        conn.close()


def _rebuild(config, args, out, err) -> int:
    from imapd.adminops.common import Failed, emit, run_per_user
    from imapd.fts import settings_from
    from imapd.fts.indexer import update_mailbox

    settings = settings_from(config)
    if not settings.enabled:
        raise Failed("[fts] enabled = false: the server does not use the index")

    def one(site, user):
        index_dir = site.effective.index_dir
        rows = []
        with site.account(user, existing=True) as account:
            for name in _names(account.store, args.mailbox):
                result = update_mailbox(account.store, user, index_dir, name, settings,
                                        rebuild=True)
                _chown_like(index_dir, user, account.store, name)
                rows.append({"mailbox": name, "indexed": result.indexed,
                             "documents": result.documents})
        return rows

    rows, status = run_per_user(config, args, err, one)
    emit(out, args, rows, lambda r: ("" if "user" not in r or not args.all_users
                                     else f"{r['user']}\t") + (
        f"{r['mailbox']}: indexed={r['indexed']} documents={r['documents']}"))
    return status


def _chown_like(index_dir: str, user: str, store, name: str) -> None:
    # Run as root, the files it created belong to root; the server (its
    # mail worker's uid) must still write them: give them the owner of
    # the index directory, as the server made it.
    if os.geteuid() != 0:
        return
    from imapd.cache import mailbox_identity
    from imapd.fts.query import fts_index

    st = os.stat(index_dir)
    mailbox = store.open(name, readonly=True)
    try:
        path = fts_index(index_dir, mailbox_identity(user, mailbox)).path
    finally:
        mailbox.close()
    for suffix in ("", "-wal", "-shm"):
        try:
            os.chown(path + suffix, st.st_uid, st.st_gid)
        except FileNotFoundError:
            pass
