# -*- test-case-name: tests.e2e.test_e2e_admin_control -*-
"""
C{imapd-admin who} and C{kick}: the running daemon's logged-in sessions,
through its control socket (L{imapd.control}); the counterparts of
C{doveadm who} and C{doveadm kick}.

    who  [-u USER | -A] [--json]         sessions, of one user or all
    kick USER | -u USER | -A [--json]    end them (BYE, then close)

Both work against the single process and the multi-process master (which
asks its mail workers).  C{who -u USER} and C{kick} exit 1 when the user
has no session; a daemon that cannot be reached is exit 2.
"""

from __future__ import annotations

from imapd.adminops.common import EX_NOTFOUND, EX_OK, Failed, add_command, emit

__all__ = ["add_commands"]

_TEXT_KEYS = ("user", "session", "peer", "mailbox", "seconds", "tls", "process", "pid")


def add_commands(areas) -> None:
    add_command(areas, "who", _who,
                "the logged-in sessions of the running daemon (its control socket)",
                "  imapd-admin who\n"
                "  imapd-admin who -u alice --json", users="filter")
    p = add_command(areas, "kick", _kick,
                    "end the sessions of a user in the running daemon (BYE, then close)",
                    "  imapd-admin kick alice\n"
                    "  imapd-admin kick -A            # everyone", users="filter")
    p.add_argument("name", nargs="?", metavar="USER", help="the user (or -u USER, or -A)")


def _ask(config, request: dict) -> dict:
    from imapd.control import ControlError, control_path, query

    try:
        result = query(control_path(config), request)
    except ControlError as e:
        raise Failed(str(e)) from None
    return result


def _text(row: dict) -> str:
    return "\t".join(str(row.get(k, "")) if k != "tls" else ("tls" if row[k] else "plain")
                     for k in _TEXT_KEYS)


def _warn_unanswered(result: dict, err) -> None:
    for title in result.get("unanswered") or ():
        print(f"imapd-admin: {title} did not answer in time; its sessions are not shown",
              file=err)


def _who(config, args, out, err):
    result = _ask(config, {"op": "who"})
    rows = sorted(result["sessions"], key=lambda r: (r["user"], r["session"]))
    if args.user:
        rows = [r for r in rows if r["user"] == args.user]
    emit(out, args, rows, _text)
    _warn_unanswered(result, err)
    if args.user and not rows:
        print(f"imapd-admin: {args.user!r} has no session", file=err)
        return EX_NOTFOUND
    return EX_OK


def _kick(config, args, out, err):
    given = [x for x in (args.name, args.user) if x]
    if len(given) + bool(args.all_users) != 1:
        raise Failed("kick: name one user (USER or -u USER), or -A for everyone")
    if args.all_users:
        users = sorted({r["user"] for r in _ask(config, {"op": "who"})["sessions"]})
    else:
        users = given
    rows, status = [], EX_OK
    for user in users:
        result = _ask(config, {"op": "kick", "user": user})
        _warn_unanswered(result, err)
        if not result["sessions"] and not args.all_users:
            print(f"imapd-admin: {user!r} has no session", file=err)
            status = EX_NOTFOUND
        rows.extend(result["sessions"])
    emit(out, args, rows, lambda r: "kicked\t" + _text(r))
    return status
