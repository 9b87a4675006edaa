# -*- test-case-name: tests.imapd.cluster.test_admin -*-
"""
C{imapd-admin cluster ...}: change and inspect the host table.

    cluster add HOST [--weight N] [--port P] [--lmtp-port P]
    cluster remove|down|up HOST
    cluster flush HOST                  place a host's users again (as move)
    cluster weight HOST N
    cluster owner USER [--verbose]      the owner's address
    cluster status USER                 current and hashed host, hash, epoch
    cluster move USER HOST              place USER on HOST now: its new logins
                                        wait until its sessions on the old host
                                        ended (imapd.cluster.moves)
    cluster map [--users]               the host table (and every user)
    cluster export tsv|json|transport|qgrp [--domain D] [--output FILE]

Every change is made under the host table's dotlock (L{HostsFile.update});
after it, the files of C{[cluster] export_files} are rewritten atomically.
"""

from __future__ import annotations

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


def add_commands(areas) -> None:
    cluster = areas.add_parser("cluster", help="user/node affinity: the host table")
    commands = cluster.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, run, help_, *arguments):
        p = commands.add_parser(name, help=help_)
        for args, kwargs in arguments:
            p.add_argument(*args, **kwargs)
        p.set_defaults(run=lambda config, args, out, err: _run(run, config, args, out, err))
        return p

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
    command("owner", _owner, "print the address of a user's host", user,
            (("--verbose", "-v"), {"action": "store_true",
                                   "help": "also the hash, the ring's host and the epoch"}))
    command("status", _status, "a user's current and hashed host, hash and epoch", user)
    command("move", _move, "place a user on a host now", user, host)
    command("map", _map, "print the host table", (("--users",), {
        "action": "store_true", "help": "and every user of the passwd-file with its owner"}))
    command("export", _export, "print the user map for an MTA or webmail",
            (("format",), {"choices": FORMATS}),
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


def _writer(section) -> str:
    # The admin's placement records (cluster move) are its own file.
    return "admin-" + (section.node or socket.gethostname())


def _changed(config, directory: Directory, table, out, what: str) -> None:
    print(f"{what} (epoch {table.epoch})", file=out)
    _write_exports(config, directory)


def _add(config, directory, args, out, err):
    table = directory.hosts.update(
        lambda t: t.add(args.host, port=args.port, lmtp_port=args.lmtp_port, weight=args.weight))
    _changed(config, directory, table, out, f"added {args.host}")


def _change(name):
    def run(config, directory, args, out, err):
        placed = directory.placements.users_on(_canonical(args.host), time.time())
        if name == "remove":
            table = directory.hosts.update(lambda t: t.remove(args.host))
        else:
            table = directory.hosts.update(lambda t: t.set_up(args.host, name == "up"))
        _changed(config, directory, table, out, f"{args.host} {name}")
        if placed and name != "up":
            print(NOT_KICKED.format(host=_canonical(args.host)), file=err)
    return run


def _weight(config, directory, args, out, err):
    table = directory.hosts.update(lambda t: t.set_weight(args.host, args.weight))
    _changed(config, directory, table, out, f"{args.host} weight {args.weight}")


def _flush(config, directory, args, out, err):
    host = _canonical(args.host)
    users = directory.placements.users_on(host, time.time())
    table = _moving(config, directory, users, host,
                    lambda: directory.hosts.update(lambda t: t.flush(args.host)), out, err)
    _changed(config, directory, table, out,
             f"flushed {args.host}: {len(users)} placed users are placed again at their "
             f"next lookup")


def _moving(config, directory, keys, old: str, change, out, err):
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
    print(f"new logins of {len(keys)} users waited {time.time() - started:.1f}s for their "
          f"sessions on {old} to end", file=out)
    return result


def _canonical(host: str) -> str:
    from imapd.cluster.table import _address

    return _address(host)


def _owner(config, directory, args, out, err):
    status = directory.status(args.user)
    if status.current is None:
        raise _Refused("no host is up: the user has no owner")
    if not args.verbose:
        print(status.current.address, file=out)
        return
    how = "placed" if status.placed else "hashed"
    hashed = status.hashed.address if status.hashed else "-"
    print(f"{status.current.address} {how} user={args.user} key={status.key} "
          f"hash={status.hash} ring={hashed} epoch={status.epoch}", file=out)


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
        _moving(config, directory, [key], old.address, place, out, err)
    else:
        place()
    print(f"{args.user} placed on {host.address} (was {old.address if old else '-'}) "
          f"for {config.cluster.user_expire:g} seconds after its last lookup", file=out)
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
    print(f"# host table {directory.hosts.path}, epoch {table.epoch}", file=out)
    print("#address\timap_port\tlmtp_port\tweight\tstate\tchanged\tshare\tplaced", file=out)
    for h in table.hosts:
        placed = len(directory.placements.users_on(h.address, now))
        print(f"{h.address}\t{h.port}\t{h.lmtp_port}\t{h.weight}\t{'up' if h.up else 'down'}\t"
              f"{h.changed}\t{100 * share.get(h.address, 0.0):.1f}%\t{placed}", file=out)
    if args.users:
        out.write(export("tsv", _users(config), directory))


def _export(config, directory, args, out, err):
    domain = config.cluster.export_domain if args.domain is None else args.domain
    text = export(args.format, _users(config), directory, domain)
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
