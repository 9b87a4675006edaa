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

import json
import os
import pwd

__all__ = ["add_commands"]

EXAMPLES = """examples:
  imapd-admin migrate -u alice --from 'mbox:~/mail:INBOX=/var/mail/%u' --to maildir:~/Maildir
  imapd-admin migrate -u bob --home /home/bob --from maildir:~/Maildir --to mbox:~/mail --json

The source is never written.  A second run only copies what changed; a run
that was killed is completed by running it again.
"""


def add_commands(areas) -> None:
    import argparse

    p = areas.add_parser(
        "migrate", help="move a user's mail between mbox and Maildir, keeping every UID",
        description="Copy a user's mail to another store keeping UIDVALIDITY, UIDs, UIDNEXT, "
        "flags, keywords, subscriptions (and MODSEQs where this server kept them).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-u", "--user", required=True, metavar="USER")
    p.add_argument("--from", dest="source", required=True, metavar="LOCATION",
                   help="the source mail_location (mbox:... or maildir:...)")
    p.add_argument("--to", dest="target", required=True, metavar="LOCATION",
                   help="the target mail_location (mbox:... or maildir:...)")
    p.add_argument("--home", metavar="DIR",
                   help="the user's home for ~ and %%h (default: the passwd entry)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=_run)


def _home(user: str, given: str | None) -> str | None:
    if given:
        return given
    try:
        return pwd.getpwnam(user.partition("@")[0]).pw_dir
    except KeyError:
        return None


def _run(config, args, out, err) -> int:
    from storage.errors import StoreError
    from storage.location import parse_location
    from storage.migrate.engine import migrate, open_source, open_target, same_place

    home = _home(args.user, args.home)
    try:
        src_loc = parse_location(args.source, args.user, home)
        dst_loc = parse_location(args.target, args.user, home)
        if src_loc.root == dst_loc.root or same_place(src_loc.root, dst_loc.root):
            print(f"imapd-admin: --from and --to are the same place ({src_loc.root})", file=err)
            return 1
        source = open_source(args.source, args.user, home)
        if not os.path.exists(src_loc.root) and not (
                src_loc.inbox and os.path.exists(src_loc.inbox)):
            print(f"imapd-admin: the source {src_loc.root} does not exist", file=err)
            return 1
        target = open_target(args.target, args.user, home)

        def progress(r) -> None:
            if not args.json:
                print(f"{r.name}: {r.messages} messages ({r.kind}), UIDVALIDITY "
                      f"{r.uidvalidity}, UIDNEXT {r.uidnext}: {r.copied} copied, "
                      f"{r.flags_updated} flag changes, {r.expunged} expunged"
                      + (f", {len(r.refused)} UIDs expunged in the target not copied again"
                         if r.refused else ""), file=out)

        report = migrate(source, target, progress=progress)
    except StoreError as e:
        print(f"imapd-admin: migrate: {e}", file=err)
        return 1
    rate = report.copied / report.seconds if report.seconds > 0 else 0.0
    if args.json:
        json.dump({
            "user": args.user, "changed": report.changed, "seconds": round(report.seconds, 3),
            "copied": report.copied, "subscribed": report.subscribed,
            "mailboxes": [{"name": r.name, "source_kind": r.kind,
                           "uidvalidity": r.uidvalidity, "uidnext": r.uidnext,
                           "messages": r.messages, "copied": r.copied,
                           "flags_updated": r.flags_updated, "expunged": r.expunged,
                           "refused": list(r.refused)} for r in report.mailboxes],
        }, out, indent=2)
        print(file=out)
    else:
        if report.subscribed:
            print(f"subscribed: {', '.join(report.subscribed)}", file=out)
        print(("done" if report.changed else "nothing to do") +
              f": {report.copied} messages copied in {report.seconds:.2f} s"
              + (f" ({rate:.0f} messages/s)" if report.copied else ""), file=out)
    return 0
