# -*- test-case-name: tests.imapd.test_admin_migrate -*-
"""
C{imapd-admin migrate}: move one user's mail between stores so that their
mail clients notice nothing (L{storage.migrate}).

    imapd-admin migrate -u alice --from 'mbox:~/mail:INBOX=/var/mail/%u' \\
        --to 'maildir:~/Maildir'
    imapd-admin migrate -u alice --from maildir:~/Maildir --to mbox:~/mail --json

Locations are C{mail_location} strings (L{storage.location}); C{~} and
C{%h} are the user's home (C{--home}, else the passwd entry).  Run it
again as often as you like: it copies what is missing and updates flags
the source changed since; stop the daemon for the user (or keep them
from logging in) for the final run, then switch C{mail_location}.
"""

from __future__ import annotations

import os
import pwd

__all__ = ["add_commands"]

EXAMPLES = """\
  imapd-admin migrate -u alice --from 'mbox:~/mail:INBOX=/var/mail/%u' --to maildir:~/Maildir
  imapd-admin migrate -u bob --home /home/bob --from maildir:~/Maildir --to mbox:~/mail --json
  imapd-admin -c /etc/imapd/imapd.toml migrate -A --from 'mbox:~/mail:INBOX=/var/mail/%u' --to maildir:~/Maildir

The source is never written.  A second run only copies what changed; a run
that was killed is completed by running it again.  A user of the user
database is worked on as that user (files stay the user's).
"""


def add_commands(areas) -> None:
    from imapd.adminops.common import add_command

    p = add_command(areas, "migrate", _run,
                    "move a user's mail between mbox and Maildir, keeping every UID",
                    EXAMPLES, users="many")
    p.description = ("Copy a user's mail to another store keeping UIDVALIDITY, UIDs, UIDNEXT, "
                     "flags, keywords, subscriptions (and MODSEQs where this server kept them).")
    p.add_argument("--from", dest="source", required=True, metavar="LOCATION",
                   help="the source mail_location (mbox:... or maildir:...)")
    p.add_argument("--to", dest="target", required=True, metavar="LOCATION",
                   help="the target mail_location (mbox:... or maildir:...)")
    p.add_argument("--home", metavar="DIR",
                   help="the user's home for ~ and %%h (default: the user database's, "
                        "else the passwd entry)")


def _record(site, user: str):
    """The user database's record of C{user}, or None (a tool run without one)."""
    from imapd.adminops.common import NotFound

    if site is None:
        return None
    try:
        return site.lookup(user)
    except NotFound:
        return None


def _home(user: str, given: str | None, record, site) -> str | None:
    if given:
        return given
    if record is not None:
        return record.home
    if site is not None:  # the configured user database does not know the user
        return None
    try:
        return pwd.getpwnam(user.partition("@")[0]).pw_dir
    except KeyError:
        return None


def _run(config, args, out, err) -> int:
    """
    C{-u USER}: with or without a configuration (C{--home} or the passwd
    entry give the home then); C{-A}: every user of the configuration's
    user database, each reported, the worst status returned.
    """
    from imapd.adminops.common import EX_ERROR, Failed, Site, as_user, emit

    if args.all_users:
        if args.home:
            raise Failed("--home names one user's home: use it with -u")
        site = Site(config)
        users = site.users()
    else:
        # Without --config a plain tool on the given locations: the home is
        # --home or the passwd entry's (a UW-IMAP host's users).
        site = Site(config) if args.config else None
        users = [args.user]
    rows, status = [], 0
    for user in users:
        record = _record(site, user)
        prefix = f"{user}: " if args.all_users else ""
        if record is not None:
            with as_user(record):
                row, code = _one(user, args, record, site, out, err, prefix)
        else:
            row, code = _one(user, args, None, site, out, err, prefix)
        status = max(status, code)
        if row is not None:
            rows.append(row)
    if args.json:
        emit(out, args, rows, str)
    return status if status <= EX_ERROR else EX_ERROR


def _one(user: str, args, record, site, out, err, prefix: str):
    """Migrate one user: (the JSON row or None, exit status)."""
    from storage.errors import StoreError
    from storage.location import parse_location
    from storage.migrate.engine import migrate, open_source, open_target, same_place

    home = _home(user, args.home, record, site)
    if home is None:
        print(f"imapd-admin: {prefix}no user {user!r} in the user database", file=err)
        return None, 1
    try:
        src_loc = parse_location(args.source, user, home)
        dst_loc = parse_location(args.target, user, home)
        if src_loc.root == dst_loc.root or same_place(src_loc.root, dst_loc.root):
            print(f"imapd-admin: {prefix}--from and --to are the same place ({src_loc.root})",
                  file=err)
            return None, 1
        source = open_source(args.source, user, home)
        if not os.path.exists(src_loc.root) and not (
                src_loc.inbox and os.path.exists(src_loc.inbox)):
            print(f"imapd-admin: {prefix}the source {src_loc.root} does not exist", file=err)
            return None, 1
        target = open_target(args.target, user, home)

        def progress(r) -> None:
            if not args.json:
                print(f"{prefix}{r.name}: {r.messages} messages ({r.kind}), UIDVALIDITY "
                      f"{r.uidvalidity}, UIDNEXT {r.uidnext}: {r.copied} copied, "
                      f"{r.flags_updated} flag changes, {r.expunged} expunged"
                      + (f", {len(r.refused)} UIDs expunged in the target not copied again"
                         if r.refused else ""), file=out)

        report = migrate(source, target, progress=progress)
    except StoreError as e:
        print(f"imapd-admin: {prefix}migrate: {e}", file=err)
        return None, 1
    if args.json:
        return {
            "user": user, "changed": report.changed, "seconds": round(report.seconds, 3),
            "copied": report.copied, "subscribed": report.subscribed,
            "mailboxes": [{"name": r.name, "source_kind": r.kind,
                           "uidvalidity": r.uidvalidity, "uidnext": r.uidnext,
                           "messages": r.messages, "copied": r.copied,
                           "flags_updated": r.flags_updated, "expunged": r.expunged,
                           "refused": list(r.refused)} for r in report.mailboxes],
        }, 0
    rate = report.copied / report.seconds if report.seconds > 0 else 0.0
    if report.subscribed:
        print(f"{prefix}subscribed: {', '.join(report.subscribed)}", file=out)
    print(prefix + ("done" if report.changed else "nothing to do") +
          f": {report.copied} messages copied in {report.seconds:.2f} s"
          + (f" ({rate:.0f} messages/s)" if report.copied else ""), file=out)
    return None, 0
