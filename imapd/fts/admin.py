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


class _Refused(Exception):
    pass


def add_commands(areas) -> None:
    fts = areas.add_parser("fts", help="the full-text index behind SEARCH BODY/TEXT")
    commands = fts.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, run, help_ in (
            ("status", _status, "what a user's full-text index holds, and its check"),
            ("rebuild", _rebuild, "forget a user's full-text index and build it again")):
        p = commands.add_parser(name, help=help_)
        p.add_argument("-u", "--user", required=True, metavar="USER")
        p.add_argument("mailbox", nargs="?", metavar="MAILBOX",
                       help="one mailbox (default: every selectable one)")
        p.set_defaults(run=lambda config, args, out, err, run=run:
                       _run(run, config, args, out, err))


def _run(run, config, args, out, err) -> int:
    from imapd.defaults import prepare_delivery
    from imapd.delivery.core import DeliveryError, Deliverer, userdb_lookup
    from imapd.fts import settings_from
    from storage.errors import StoreError

    try:
        effective = prepare_delivery(config)
        deliverer = Deliverer(effective.mail_location, userdb_lookup(effective.passwd_file),
                              effective.index_dir)
        recipient = deliverer.resolve(args.user)
        store = deliverer.open_store(recipient)
    except DeliveryError as e:
        print(f"imapd-admin: {e.text}", file=err)
        return 1
    except (StoreError, OSError) as e:
        print(f"imapd-admin: {args.user}: {e}", file=err)
        return 1
    try:
        names = [args.mailbox] if args.mailbox else sorted(
            info.name for info in store.list_mailboxes()
            if "\\Noselect" not in info.attributes and "\\NonExistent" not in info.attributes)
        failed = False
        for name in names:
            try:
                failed |= bool(run(store, recipient.user, effective.index_dir, name,
                                   settings_from(config), out))
            except (StoreError, _Refused) as e:
                print(f"imapd-admin: {name}: {e}", file=err)
                failed = True
        return 1 if failed else 0
    finally:
        store.close()


def _status(store, user, index_dir, name, settings, out) -> bool:
    """One line per mailbox; True when the check found damage."""
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
        check = _check(index.path)
        stats = index.stats()
        print(f"{name}: messages={len(live)} indexed={indexed} too_large={too_large} "
              f"missing={len(live - set(docs))} bytes={stats['bytes']} check={check}",
              file=out)
        return check not in ("ok", "empty")
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


def _rebuild(store, user, index_dir, name, settings, out) -> bool:
    from imapd.fts.indexer import update_mailbox

    if not settings.enabled:
        raise _Refused("[fts] enabled = false: the server does not use the index")
    result = update_mailbox(store, user, index_dir, name, settings, rebuild=True)
    _chown_like(index_dir, user, store, name)
    print(f"{name}: indexed={result.indexed} documents={result.documents}", file=out)
    return False


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
