#!/usr/bin/env python3
"""
Memory and login latency of a running IMAP server's processes (issue 14's
"Measure and report"), for our server and Dovecot alike.

A script, not a test.  Given a server's loopback port and credentials it
measures:

  (a) the PSS of every process of the server (from
      C{/proc/PID/smaps_rollup}), grouped by process title: C{imapd:
      login}, C{imapd: worker pool-1}, ..., or Dovecot's C{dovecot},
      C{imap-login}, C{imap}, C{auth}, ...  The server's processes are the
      process tree of the one that listens on the port (the master, or the
      single process), so other servers on the machine are not counted;
  (b) the PSS growth per IDLE connection: the tree's total PSS before and
      after N connections (default 200) have logged in, selected INBOX
      and entered IDLE, divided by N;
  (c) the time from connect to the tagged OK of LOGIN, median (and
      spread) of M sequential logins (default 100).

Usage (as root, so that every process's smaps_rollup is readable)::

    python3 tests/bench/procmeasure.py --port 1143 --user 'bench{n}' --users 200 \\
        --password pass

C{{n}} in the user name is replaced by the connection's number modulo
C{--users}: Dovecot allows 10 connections per user and address by default
(C{mail_max_userip_connections}), our server 20 per address
(C{limits.max_connections_per_ip}); raise those, or spread the
connections over users.

It can also start the server itself, on a scratch directory, with users
C{bench0} ... C{bench<users-1>} (password C{--password}) and limits raised
for the IDLE connections:

    python3 tests/bench/procmeasure.py --start-dovecot /tmp/pm-dovecot
    python3 tests/bench/procmeasure.py --start-imapd /tmp/pm-imapd

Login latency is mostly the password hash: a system user's yescrypt
hash (Debian's default for chpasswd) costs some 100-200 ms to verify
through PAM, a PLAIN passwd-file entry nothing; compare servers checking
the same kind of password.

(C{--start-imapd} starts C{twistd -n imapd} of this checkout in
single-process mode unless C{--multi-process}.)  C{--json FILE} writes
the figures for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import socket
import ssl
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Title prefixes of the processes (a) reports by name; other processes of
#: the tree (the single-process twistd, Dovecot's helpers) are reported
#: too, under their program's name.
TITLES = ("imapd:", "dovecot", "imap-login", "imap")


# -- processes -----------------------------------------------------------------


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[1])


def listener_pids(port: int) -> set[int]:
    """The processes holding a socket that listens on C{port}."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    found = set()
    for pid in _pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    found.add(pid)
                    break
            except OSError:
                continue
    return found


def server_tree(port: int) -> set[int]:
    """The process tree rooted at the top process that listens on C{port}."""
    holders = listener_pids(port)
    if not holders:
        raise SystemExit(f"no process listens on port {port} (run as root to see them all)")
    roots = {pid for pid in holders if _parent(pid) not in holders}
    children: dict[int, list[int]] = {}
    for pid in _pids():
        parent = _parent(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    tree, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree


def title(pid: int) -> str:
    """A process's title (its command line as C{ps} shows it)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def group_of(text: str) -> str:
    """
    The group a title is counted in: C{imapd: login}, C{imapd: worker
    pool-1}, C{imapd: worker USER} (without the address), Dovecot's
    service names, else the program's name.
    """
    words = text.split()
    if not words:
        return "?"
    if words[0] == "imapd:":
        return " ".join(words[:3] if len(words) > 2 and words[1] == "worker" else words[:2])
    first = words[0]
    if first.startswith("dovecot/"):
        return first.split("/", 1)[1]
    if any(w.endswith("twistd") for w in words[:2]):
        return "twistd imapd (single process)"
    return os.path.basename(first)


def memory_kb(pid: int) -> dict | None:
    """
    A process's C{Pss}, C{Rss} and USS (C{Private_Clean} +
    C{Private_Dirty}: the pages no other process maps) in kB, from
    C{/proc/PID/smaps_rollup}.

    USS is what the issue calls the memory "beyond the shared image": a
    forked child's pages still shared with the spawner (and its siblings)
    count in its PSS only as a fraction, and not at all in its USS; what
    it has written since the fork, or allocated, is private.
    """
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("Pss", "Rss", "Private_Clean", "Private_Dirty"):
                fields[name] = int(rest.split()[0])
    except OSError:
        return None
    if "Pss" not in fields:
        return None
    return {"pss_kb": fields["Pss"], "rss_kb": fields.get("Rss", 0),
            "uss_kb": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}


def pss_kb(pid: int) -> int | None:
    memory = memory_kb(pid)
    return None if memory is None else memory["pss_kb"]


def measure_processes(port: int) -> dict:
    """(a): PSS per process and per group of the server's tree."""
    processes = []
    for pid in sorted(server_tree(port)):
        memory = memory_kb(pid)
        if memory is None:
            continue
        text = title(pid)
        processes.append({"pid": pid, "title": text, "group": group_of(text), **memory,
                          "named": text.startswith(TITLES)
                          or os.path.basename(text.split()[0] if text.split() else "")
                          .startswith(TITLES)})
    groups: dict[str, dict] = {}
    for p in processes:
        g = groups.setdefault(p["group"], {"count": 0, "pss_kb": 0, "max_kb": 0,
                                           "uss_kb": 0, "max_uss_kb": 0})
        g["count"] += 1
        g["pss_kb"] += p["pss_kb"]
        g["max_kb"] = max(g["max_kb"], p["pss_kb"])
        g["uss_kb"] += p["uss_kb"]
        g["max_uss_kb"] = max(g["max_uss_kb"], p["uss_kb"])
    return {"processes": processes, "groups": groups,
            "total_pss_kb": sum(p["pss_kb"] for p in processes),
            "total_uss_kb": sum(p["uss_kb"] for p in processes)}


# -- IMAP ------------------------------------------------------------------------


class Session:
    """A raw IMAP connection, enough for LOGIN, SELECT, IDLE and LOGOUT."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, timeout: float):
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        self.buffer = b""
        self.n = 0

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"server closed the connection; last: {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def greeting(self) -> None:
        line = self.line()
        if not line.startswith(b"* OK"):
            raise ConnectionError(f"greeting: {line!r}")

    def command(self, text: str) -> bytes:
        """Send a command; return its tagged line (raises unless OK)."""
        self.n += 1
        tag = b"p%d" % self.n
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ConnectionError(f"{text.split()[0]}: {line!r}")
                return line

    def login(self, user: str, password: str) -> None:
        self.command(f"LOGIN {quote(user)} {quote(password)}")

    def idle(self) -> None:
        self.n += 1
        self.idle_tag = b"p%d" % self.n
        self.sock.sendall(self.idle_tag + b" IDLE\r\n")
        while True:
            line = self.line()
            if line.startswith(b"+"):
                return
            if line.startswith(self.idle_tag + b" "):
                raise ConnectionError(f"IDLE: {line!r}")

    def close(self) -> None:
        try:
            if getattr(self, "idle_tag", None):
                self.sock.sendall(b"DONE\r\n")
            self.sock.sendall(b"z LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def user_for(pattern: str, n: int, users: int) -> str:
    return pattern.replace("{n}", str(n % max(users, 1)))


def measure_idle(args, tls) -> dict:
    """
    (b): the tree's total PSS before any IDLE connection and after each
    count of C{args.connections} (ascending: 200, 1000) have logged in,
    selected INBOX and entered IDLE.  The growth per connection is given
    from zero to the first count and, the figure the issue asks for,
    between successive counts (the slope): what the first connections
    cost once (a worker's first SELECT, the pages its first collections
    unshare) is not in the slope.
    """
    counts = sorted(set(args.connections))
    before = measure_processes(args.port)
    points = [(0, before["total_pss_kb"], before["total_uss_kb"])]
    groups = [before["groups"]]
    sessions = []
    try:
        for count in counts:
            while len(sessions) < count:
                n = len(sessions)
                s = Session(args.host, args.port, tls, args.timeout)
                sessions.append(s)
                s.greeting()
                s.login(user_for(args.user, n, args.users), args.password)
                s.command("SELECT INBOX")
                s.idle()
            time.sleep(args.settle)
            after = measure_processes(args.port)
            points.append((count, after["total_pss_kb"], after["total_uss_kb"]))
            groups.append(after["groups"])
        if args.hold:
            # The same connections, idle for a while: what an idling
            # session gains with time (each poll's garbage, a leak).
            time.sleep(args.hold)
            held = measure_processes(args.port)
            grown_pss = held["total_pss_kb"] - points[-1][1]
            grown_uss = held["total_uss_kb"] - points[-1][2]
    finally:
        for s in sessions:
            s.close()
    steps = []
    for (n0, pss0, uss0), (n1, pss1, uss1) in zip(points, points[1:]):
        steps.append({"from": n0, "to": n1, "pss_kb_per_connection": (pss1 - pss0) / (n1 - n0),
                      "uss_kb_per_connection": (uss1 - uss0) / (n1 - n0)})
    result = {"points": [{"connections": n, "total_pss_kb": pss, "total_uss_kb": uss,
                          "groups": g} for (n, pss, uss), g in zip(points, groups)],
              "steps": steps}
    if args.hold:
        result["held"] = {"seconds": args.hold, "connections": counts[-1],
                          "pss_kb_per_connection": grown_pss / counts[-1],
                          "uss_kb_per_connection": grown_uss / counts[-1]}
    return result


def measure_logins(args, tls) -> dict:
    """(c): connect to tagged OK of LOGIN, M times one after another."""
    times = []
    for n in range(args.logins):
        started = time.perf_counter()
        s = Session(args.host, args.port, tls, args.timeout)
        try:
            s.greeting()
            s.login(user_for(args.user, n, args.users), args.password)
            times.append(time.perf_counter() - started)
        finally:
            s.close()
    ms = sorted(t * 1000 for t in times)
    return {"logins": len(ms), "median_ms": statistics.median(ms), "min_ms": ms[0],
            "p90_ms": ms[int(len(ms) * 0.9) - 1] if len(ms) >= 10 else ms[-1], "max_ms": ms[-1]}


# -- starting a server -------------------------------------------------------------


def start_dovecot(args):
    sys.path.insert(0, str(REPO))
    from tests.dovecot_helpers import start_dovecot as start

    root = Path(args.start_dovecot)
    root.mkdir(parents=True, exist_ok=True)
    users = {f"bench{n}": args.password for n in range(args.users)}
    # Room for the IDLE connections: Dovecot's defaults are 100 processes
    # per service and 10 connections per user and address.
    extra = ("default_process_limit = 2000\n"
             "default_client_limit = 4000\n"
             "protocol imap {\n  mail_max_userip_connections = 1000\n}\n")
    server = start(root, users, extra=extra)
    args.port = server.port
    args.user = "bench{n}"
    return server.stop


def start_imapd(args):
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests" / "e2e"))
    from e2e_helpers import start_server

    from imapd.tls import generate_self_signed

    root = Path(args.start_imapd)
    root.mkdir(parents=True, exist_ok=True)
    cert, key = str(root / "cert.pem"), str(root / "key.pem")
    if not os.path.exists(cert):
        generate_self_signed(cert, key, "localhost")
    settings = {
        "limits": {"max_connections_per_ip": max(args.connections) + 50,
                   "max_connections": max(args.connections) + 100},
        "service": {"single_process": not args.multi_process},
        "log": {"level": "warn"},
    }
    users = {f"bench{n}": args.password for n in range(args.users)}
    server = start_server(root, (cert, key), settings, users=users)
    args.port = server.port
    args.user = "bench{n}"
    return lambda: server.daemon.stop()


# -- report ------------------------------------------------------------------------


def report(result: dict) -> None:
    print(f"(a) PSS and USS (private pages) by process group ({result['label']}, "
          f"port {result['port']})")
    print(f"    {'group':36} {'procs':>5} {'PSS MB':>8} {'largest':>8} {'USS MB':>8}"
          f" {'largest':>8}")
    for name, g in sorted(result["processes"]["groups"].items()):
        print(f"    {name:36} {g['count']:5} {g['pss_kb'] / 1024:8.1f} {g['max_kb'] / 1024:8.1f}"
              f" {g['uss_kb'] / 1024:8.1f} {g['max_uss_kb'] / 1024:8.1f}")
    print(f"    {'total':36} {'':5} {result['processes']['total_pss_kb'] / 1024:8.1f} {'':8}"
          f" {result['processes']['total_uss_kb'] / 1024:8.1f}")
    idle = result.get("idle")
    if idle:
        points = ", ".join(f"{p['connections']}: {p['total_pss_kb'] / 1024:.1f} MB"
                           for p in idle["points"])
        print(f"(b) total PSS with N IDLE connections ({points})")
        for step in idle["steps"]:
            print(f"    {step['from']:5} -> {step['to']:5}: {step['pss_kb_per_connection']:7.1f} kB "
                  f"PSS, {step['uss_kb_per_connection']:7.1f} kB USS per connection")
        held = idle.get("held")
        if held:
            print(f"    {held['connections']} held {held['seconds']:.0f} s more: "
                  f"{held['pss_kb_per_connection']:7.1f} kB PSS, "
                  f"{held['uss_kb_per_connection']:7.1f} kB USS per connection")
    logins = result.get("logins")
    if logins:
        print(f"(c) connect to LOGIN OK, {logins['logins']} sequential: median "
              f"{logins['median_ms']:.2f} ms (min {logins['min_ms']:.2f}, p90 "
              f"{logins['p90_ms']:.2f}, max {logins['max_ms']:.2f})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--user", default="bench{n}",
                        help="user name; {n} is the connection number modulo --users")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--password", default="pass")
    parser.add_argument("--tls", action="store_true", help="the port is implicit TLS")
    parser.add_argument("--cafile", help="trust anchor for --tls (default: no verification)")
    parser.add_argument("--connections", default="200,1000",
                        type=lambda text: [int(n) for n in text.split(",")],
                        help="IDLE connection counts, comma-separated (the slope is "
                             "taken between them)")
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to wait after the last IDLE before measuring")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="after the last count, keep the connections in IDLE this many "
                             "seconds more and measure again (growth per connection with time)")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--skip", action="append", default=[], choices=["idle", "logins"])
    parser.add_argument("--label", default="")
    parser.add_argument("--json", help="write the figures to this file")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--start-dovecot", metavar="DIR",
                       help="start a private Dovecot on DIR with users bench0..")
    start.add_argument("--start-imapd", metavar="DIR",
                       help="start this checkout's imapd on DIR with users bench0..")
    start.add_argument("--compare", metavar="DIR",
                       help="in one run: this checkout's multi-process imapd, then its "
                            "single process, then Dovecot, each on DIR/NAME; a table of all")
    parser.add_argument("--multi-process", action="store_true",
                        help="with --start-imapd: the multi-process server")
    args = parser.parse_args(argv)
    if args.port is None and not (args.start_dovecot or args.start_imapd or args.compare):
        parser.error("--port (or --start-dovecot / --start-imapd / --compare) is needed")

    if not args.compare:
        result = run_one(args)
        report(result)
        results = [result]
    else:
        results = []
        for label, option, multi in (("imapd multi-process", "start_imapd", True),
                                     ("imapd single-process", "start_imapd", False),
                                     ("dovecot 2.3", "start_dovecot", False)):
            one = argparse.Namespace(**vars(args))
            one.start_imapd = one.start_dovecot = None
            setattr(one, option, str(Path(args.compare) / label.split()[-1]))
            one.multi_process, one.label = multi, label
            result = run_one(one)
            report(result)
            results.append(result)
        compare(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results if args.compare else results[0], indent=2))
    return 0


def run_one(args) -> dict:
    """Start the server if asked, measure it, stop it."""
    stop = None
    if args.start_dovecot:
        stop = start_dovecot(args)
        args.label = args.label or "dovecot"
    elif args.start_imapd:
        stop = start_imapd(args)
        args.label = args.label or ("imapd" if args.multi_process else "imapd single-process")
    tls = None
    if args.tls:
        tls = ssl.create_default_context(cafile=args.cafile)
        if not args.cafile:
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    try:
        result = {"label": args.label or f"port {args.port}", "port": args.port,
                  "processes": measure_processes(args.port)}
        if "logins" not in args.skip:
            result["logins"] = measure_logins(args, tls)
        if "idle" not in args.skip:
            result["idle"] = measure_idle(args, tls)
    finally:
        if stop is not None:
            stop()
    return result


def compare(results: list[dict]) -> None:
    """One table: each process group's largest PSS and USS, and the IDLE slope, per server."""
    print()
    print(f"{'server':22} {'process group':30} {'procs':>5} {'PSS MB':>7} {'USS MB':>7}")
    for result in results:
        for name, g in sorted(result["processes"]["groups"].items()):
            print(f"{result['label']:22} {name:30} {g['count']:5} {g['max_kb'] / 1024:7.1f}"
                  f" {g['max_uss_kb'] / 1024:7.1f}")
    print()
    print("largest process of each group with N IDLE connections, PSS/USS MB")
    for result in results:
        points = result.get("idle", {}).get("points", ())
        names = sorted({name for p in points for name in p["groups"]})
        for name in names:
            cells = []
            for p in points:
                g = p["groups"].get(name)
                cells.append(f"{p['connections']}: " + (
                    f"{g['count']}x {g['max_kb'] / 1024:.1f}/{g['max_uss_kb'] / 1024:.1f}"
                    if g else "-"))
            print(f"{result['label']:22} {name:30} " + "  ".join(cells))
    print()
    print(f"{'server':22} {'IDLE connections':>16} {'PSS kB/conn':>12} {'USS kB/conn':>12}")
    for result in results:
        for step in result.get("idle", {}).get("steps", ()):
            span = f"{step['from']}->{step['to']}"
            print(f"{result['label']:22} {span:>16} {step['pss_kb_per_connection']:12.1f}"
                  f" {step['uss_kb_per_connection']:12.1f}")
        held = result.get("idle", {}).get("held")
        if held:
            span = f"{held['connections']} +{held['seconds']:.0f}s"
            print(f"{result['label']:22} {span:>16} {held['pss_kb_per_connection']:12.1f}"
                  f" {held['uss_kb_per_connection']:12.1f}")
    if any("logins" in r for r in results):
        print()
        print(f"{'server':22} {'LOGIN median ms':>16}")
        for result in results:
            if "logins" in result:
                print(f"{result['label']:22} {result['logins']['median_ms']:16.2f}")


if __name__ == "__main__":
    sys.exit(main())
