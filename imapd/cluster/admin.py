# -*- test-case-name: tests.imapd.cluster.test_admin -*-
"""
C{imapd-admin cluster ...}: change and inspect the host table.

    cluster add HOST [--weight N] [--port P] [--lmtp-port P]
    cluster remove|down|up HOST
    cluster flush HOST                  place a host's users again (as move)
    cluster weight HOST N
    cluster owner USER|-u USER|-A [-v]  the owner's address
    cluster status USER|-u USER|-A      current and hashed host, hash, epoch
    cluster move USER HOST              place USER on HOST now: its new logins
                                        wait until its sessions on the old host
                                        ended (imapd.cluster.moves)
    cluster map [--users]               the host table (and every user)
    cluster export tsv|json|transport|qgrp [--domain D] [--output FILE]

Every command has --json (one JSON array; C{export --json} is the json
format) and --help with examples; refusals exit 1, usage mistakes 2.

Every change is made under the host table's dotlock (L{HostsFile.update});
after it, the files of C{[cluster] export_files} are rewritten atomically.
"""

from __future__ import annotations

import json
import socket
import time

from imapd.cluster.exports import (FORMATS, ExportError, export, users_of, write_export_files,
                                   write_file)
from imapd.cluster.owner import Directory, directory_from_config
from imapd.cluster.table import TableError

__all__ = ["add_commands"]

#: Who ends the sessions left on the old host: that node itself, when it
#: runs with [cluster] node = its address (imapd.cluster.sessions).
NOT_KICKED = ("sessions open on {host} end within seconds if that node runs with "
              "[cluster] node = \"{host}\"; otherwise they stay there until they log out")


class _Refused(Exception):
    pass


#: Examples shown by each command's --help.
EXAMPLES = {
    "add": ["cluster add 192.0.2.11", "cluster add 192.0.2.12 --weight 50 --port 143 --json"],
    "remove": ["cluster remove 192.0.2.12"],
    "down": ["cluster down 192.0.2.12"],
    "up": ["cluster up 192.0.2.12"],
    "flush": ["cluster flush 192.0.2.12"],
    "weight": ["cluster weight 192.0.2.11 200"],
    "owner": ["cluster owner alice", "cluster owner -v alice@example.org",
              "cluster owner -A --json"],
    "status": ["cluster status alice", "cluster status -A --json"],
    "move": ["cluster move alice 192.0.2.12"],
    "map": ["cluster map", "cluster map --users", "cluster map --json"],
    "export": ["cluster export transport --domain example.org -o /etc/postfix/imapd_transport",
               "cluster export --json"],
}


def add_commands(areas) -> None:
    import argparse

    cluster = areas.add_parser("cluster", help="user/node affinity: the host table")
    commands = cluster.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, run, help_, *arguments):
        p = commands.add_parser(
            name, help=help_, description=help_[:1].upper() + help_[1:] + ".",
            epilog="examples:\n" + "".join(f"  imapd-admin -c /etc/imapd/imapd.toml {e}\n"
                                           for e in EXAMPLES[name]),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        for args, kwargs in arguments:
            p.add_argument(*args, **kwargs)
        p.add_argument("--json", action="store_true", help="JSON output for scripts")
        p.set_defaults(run=lambda config, args, out, err: _run(run, config, args, out, err))
        return p

    def users(p):
        # USER as issue 15 names it, or -u USER / -A as every command.
        p.add_argument("user", nargs="?", metavar="USER")
        group = p.add_mutually_exclusive_group()
        group.add_argument("-u", "--user", dest="user_option", metavar="USER", help="the user")
        group.add_argument("-A", "--all-users", action="store_true",
                           help="every user of the passwd-file")

    host = (("host",), {"metavar": "HOST", "help": "the host's IP address"})
    user = (("user",), {"metavar": "USER"})
    command("add", _add, "add a host (up)", host,
            (("--weight",), {"type": int, "default": 100, "help": "ring points (0-1000)"}),
            (("--port",), {"type": int, "default": 143, "help": "its IMAP port"}),
            (("--lmtp-port",), {"type": int, "default": 24, "help": "its LMTP port"}))
    command("remove", _change("remove"), "remove a host", host)
    command("down", _change("down"), "take a host out of the ring", host)
    command("up", _change("up"), "put a host back (it takes new users only)", host)
    command("flush", _flush, "place a host's users again", host)
    command("weight", _weight, "change a host's ring points", host,
            (("weight",), {"type": int, "metavar": "N"}))
    users(command("owner", _owner, "print the address of a user's host",
                  (("--verbose", "-v"), {"action": "store_true",
                                         "help": "also the hash, the ring's host and the epoch"})))
    users(command("status", _status, "a user's current and hashed host, hash and epoch"))
    command("move", _move, "place a user on a host now", user, host)
    command("map", _map, "print the host table", (("--users",), {
        "action": "store_true", "help": "and every user of the passwd-file with its owner"}))
    command("export", _export, "print the user map for an MTA or webmail",
            (("format",), {"choices": FORMATS, "nargs": "?",
                           "help": "the format (--json alone: json)"}),
            (("--domain",), {"default": None,
                             "help": "append @DOMAIN to user names without one"}),
            (("--output", "-o"), {"metavar": "FILE",
                                  "help": "write FILE atomically instead of printing"}))


def _run(run, config, args, out, err) -> int:
    try:
        directory = directory_from_config(config.cluster, writer=_writer(config.cluster))
        return run(config, directory, args, out, err) or 0
    except (TableError, ValueError, _Refused) as e:
        print(f"imapd-admin: {e}", file=err)
        return 1
    except _Usage as e:
        print(f"imapd-admin cluster {args.command}: {e}", file=err)
        return 2


class _Usage(Exception):
    pass


def _emit(args, out, rows: list, text) -> None:
    """C{rows} as one JSON array with C{--json}, else C{text(row)} a line each."""
    if args.json:
        json.dump(rows, out, ensure_ascii=False)
        out.write("\n")
        return
    for row in rows:
        print(text(row), file=out)


def _say(args, out, err, line: str) -> None:
    """A progress line: standard output, or standard error when it is JSON."""
    print(line, file=err if args.json else out)


def _writer(section) -> str:
    # The admin's placement records (cluster move) are its own file.
    return "admin-" + (section.node or socket.gethostname())


def _changed(config, directory: Directory, table, args, out, what: str) -> None:
    _emit(args, out, [{"change": what, "host": _canonical(args.host), "epoch": table.epoch}],
          lambda row: f"{row['change']} (epoch {row['epoch']})")
    _write_exports(config, directory)


def _add(config, directory, args, out, err):
    table = directory.hosts.update(
        lambda t: t.add(args.host, port=args.port, lmtp_port=args.lmtp_port, weight=args.weight))
    _changed(config, directory, table, args, out, f"added {args.host}")


def _change(name):
    def run(config, directory, args, out, err):
        placed = directory.placements.users_on(_canonical(args.host), time.time())
        if name == "remove":
            table = directory.hosts.update(lambda t: t.remove(args.host))
        else:
            table = directory.hosts.update(lambda t: t.set_up(args.host, name == "up"))
        _changed(config, directory, table, args, out, f"{args.host} {name}")
        if placed and name != "up":
            print(NOT_KICKED.format(host=_canonical(args.host)), file=err)
    return run


def _weight(config, directory, args, out, err):
    table = directory.hosts.update(lambda t: t.set_weight(args.host, args.weight))
    _changed(config, directory, table, args, out, f"{args.host} weight {args.weight}")


def _flush(config, directory, args, out, err):
    host = _canonical(args.host)
    users = directory.placements.users_on(host, time.time())
    table = _moving(config, directory, users, host,
                    lambda: directory.hosts.update(lambda t: t.flush(args.host)), args, out, err)
    _changed(config, directory, table, args, out,
             f"flushed {args.host}: {len(users)} placed users are placed again at their "
             f"next lookup")


def _moving(config, directory, keys, old: str, change, args, out, err):
    """
    Move C{keys} (hash keys) away from host C{old} by C{change} the way a
    Dovecot director does (L{imapd.cluster.moves}): block their new
    logins, make the change (their sessions on C{old} are then ended by
    that node at its next check), wait until C{old} reports them gone (at
    most C{move_timeout}), then C{user_kick_delay} more, and unblock.

    @return: what C{change} returned.
    """
    from imapd.cluster.moves import wait_sessions_gone

    if not keys:
        return change()
    section = config.cluster
    started = time.time()
    deadline = started + section.move_timeout
    directory.moves.block(keys, deadline + section.user_kick_delay)
    try:
        result = change()
        left = wait_sessions_gone(directory.reports, old, keys, deadline)
        time.sleep(section.user_kick_delay)
    finally:
        directory.moves.release(keys)
    if left:
        print(f"{len(left)} of the users still had sessions on {old} after "
              f"{section.move_timeout:g} seconds: " + NOT_KICKED.format(host=old), file=err)
    _say(args, out, err, f"new logins of {len(keys)} users waited "
         f"{time.time() - started:.1f}s for their sessions on {old} to end")
    return result


def _canonical(host: str) -> str:
    from imapd.cluster.table import _address

    return _address(host)


def _named_users(config, args) -> list[str]:
    if args.all_users:
        if args.user or args.user_option:
            raise _Usage("name a USER or -A, not both")
        return list(_users(config))
    user = args.user or args.user_option
    if not user or (args.user and args.user_option):
        raise _Usage("name one USER (or -u USER), or -A")
    return [user]


def _owner(config, directory, args, out, err):
    rows = []
    for name in _named_users(config, args):
        status = directory.status(name)
        if status.current is None:
            raise _Refused("no host is up: the user has no owner")
        rows.append({"user": name, "host": status.current.address,
                     "placed": bool(status.placed), "key": status.key, "hash": status.hash,
                     "ring": status.hashed.address if status.hashed else None,
                     "epoch": status.epoch})

    def text(row):
        prefix = f"{row['user']}\t" if args.all_users else ""
        if not args.verbose:
            return prefix + row["host"]
        how = "placed" if row["placed"] else "hashed"
        return (f"{row['host']} {how} user={row['user']} key={row['key']} "
                f"hash={row['hash']} ring={row['ring'] or '-'} epoch={row['epoch']}")
    _emit(args, out, rows, text)


def _status(config, directory, args, out, err):
    args.verbose = True
    return _owner(config, directory, args, out, err)


def _move(config, directory, args, out, err):
    table = directory.hosts.table()
    host = table.get(_canonical(args.host))
    if host is None or not host.up:
        raise _Refused(f"{args.host} is not an up host of the table")
    old = directory.status(args.user).current
    from imapd.cluster.hashing import expand_key

    key = expand_key(args.user, directory.fmt)

    def place():
        now = time.time()
        held = directory.placements.lookup(key, now)
        # Later than every writer's line, so that it is the one that holds.
        when = now if held is None else max(now, held.when + 0.001)
        directory.placements.record(key, host.address, table.epoch, when)
        directory.placements.flush(now)
    if old is not None and old.address != host.address:
        _moving(config, directory, [key], old.address, place, args, out, err)
    else:
        place()
    _emit(args, out, [{"user": args.user, "host": host.address,
                       "was": old.address if old else None,
                       "expire": config.cluster.user_expire}],
          lambda row: f"{row['user']} placed on {row['host']} (was {row['was'] or '-'}) "
                      f"for {row['expire']:g} seconds after its last lookup")
    _write_exports(config, directory)


def _share(table) -> dict[str, float]:
    """Fraction of the hash space each up host owns on the ring."""
    points = table.ring().points()
    share: dict[str, float] = {}
    for i, (h, address) in enumerate(points):
        previous = points[i - 1][0] if i else points[-1][0] - 2 ** 32
        share[address] = share.get(address, 0.0) + (h - previous) / 2 ** 32
    return share


def _map(config, directory, args, out, err):
    table = directory.hosts.table()
    share = _share(table)
    now = time.time()
    rows = [{"address": h.address, "imap_port": h.port, "lmtp_port": h.lmtp_port,
             "weight": h.weight, "state": "up" if h.up else "down", "changed": h.changed,
             "share": round(share.get(h.address, 0.0), 6),
             "placed": len(directory.placements.users_on(h.address, now))}
            for h in table.hosts]
    if args.json:
        if args.users:
            raise _Usage("--users with --json: use 'cluster export --json' for the users")
        _emit(args, out, rows, str)
        return
    print(f"# host table {directory.hosts.path}, epoch {table.epoch}", file=out)
    print("#address\timap_port\tlmtp_port\tweight\tstate\tchanged\tshare\tplaced", file=out)
    for r in rows:
        print(f"{r['address']}\t{r['imap_port']}\t{r['lmtp_port']}\t{r['weight']}\t"
              f"{r['state']}\t{r['changed']}\t{100 * r['share']:.1f}%\t{r['placed']}", file=out)
    if args.users:
        out.write(export("tsv", _users(config), directory))


def _export(config, directory, args, out, err):
    fmt = args.format or ("json" if args.json else None)
    if fmt is None:
        raise _Usage(f"name a format ({', '.join(FORMATS)}) or --json")
    if args.json and fmt != "json":
        raise _Usage(f"--json is the json format, not {fmt}")
    domain = config.cluster.export_domain if args.domain is None else args.domain
    text = export(fmt, _users(config), directory, domain)
    if args.output:
        write_file(args.output, text)
    else:
        out.write(text)


def _users(config) -> tuple[str, ...]:
    try:
        return users_of(config)
    except ExportError as e:
        raise _Refused(str(e)) from None


def _write_exports(config, directory) -> None:
    try:
        write_export_files(config, directory)
    except ExportError as e:
        raise _Refused(str(e)) from None
