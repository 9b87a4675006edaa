"""
LMTP deliveries per second into a large mailbox: our daemon against
Dovecot's LMTP, same machine, same run (not a test: run it by hand)::

    /work/venv/bin/python tests/delivery/bench_lmtp.py [--messages 10000]
        [--deliveries 300] [--connections 1 4] [--modes multi single]
        [--rounds 1]

For each store (Maildir, mbox) it fills one user's INBOX with
C{--messages} messages for each server, lets one IMAP session SELECT it
(so that every message has its UID, as in any mailbox a client reads;
C{--unsynced} skips that), delivers a few to warm up, then
times C{--deliveries} deliveries of a 2 KB message, one transaction per
message, over C{--connections} parallel LMTP connections.  Our daemon
runs in each of C{--modes} (the multi-process default, C{[service]
single_process}).  Then, with an IMAP session of the user in IDLE, it
times C{--latency} single deliveries from the end of DATA (the final
C{.} sent) to the C{* N EXISTS} the session receives (median and
maximum).  Loopback only; everything lives in a scratch directory
removed at the end.

All servers of one store run at once, and with C{--rounds N} they take
turns N times: on a machine whose speed drifts from minute to minute
(session 10 saw Dovecot's own rate range from 214 to 460 between runs),
only rates measured in turn compare.  The table then gives each
server's median and its range.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import socket
import ssl
import statistics
import shutil
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "e2e")]

from e2e_helpers import Daemon, free_ports, write_config  # noqa: E402
from tests.dovecot_helpers import start_dovecot  # noqa: E402

USER = "bench"
PASSWORD = "pw"
BODY = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 30 + "\n")


def message(n: int) -> bytes:
    return (f"From: Sender <sender@example.net>\nTo: {USER}@example.org\n"
            f"Subject: message {n}\nMessage-ID: <{n}.{time.time()}@bench>\n\n{BODY}").encode()


def fill_maildir(path: Path, count: int) -> None:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        data = message(n)
        (path / "cur" / f"1700000000.M{n}P1.bench,S={len(data)}:2,S").write_bytes(data)


def fill_mbox(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for n in range(count):
            f.write(b"From sender@example.net Mon Dec  7 00:00:00 2026\n" + message(n) + b"\n")


def deliver(port: int, total: int, connections: int) -> float:
    """Seconds for C{total} deliveries over C{connections} connections."""
    per = [total // connections + (1 if i < total % connections else 0)
           for i in range(connections)]
    errors = []

    def worker(count: int) -> None:
        try:
            with smtplib.LMTP("127.0.0.1", port) as lmtp:
                lmtp.ehlo("bench")
                for n in range(count):
                    refused = lmtp.sendmail("sender@example.net", [f"{USER}@example.org"],
                                            message(n).replace(b"\n", b"\r\n"))
                    assert not refused, refused
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(c,)) for c in per]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def _imap(imap_port: int, tls: bool):
    imap = imaplib.IMAP4("127.0.0.1", imap_port, timeout=120)
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        imap.starttls(context)
    imap.login(USER, PASSWORD)
    return imap


def select_once(imap_port: int, tls: bool) -> float:
    """One session SELECTs INBOX (its UIDs are then all given): seconds it took."""
    imap = _imap(imap_port, tls)
    try:
        started = time.perf_counter()
        status, data = imap.select("INBOX")
        assert status == "OK", data
        return time.perf_counter() - started
    finally:
        imap.logout()


def idle_latency(imap_port: int, lmtp_port: int, rounds: int, tls: bool) -> list[float]:
    """
    Seconds from the end of DATA to the IDLE session's C{EXISTS}, for
    C{rounds} deliveries one after another.
    """
    imap = _imap(imap_port, tls)
    imap.select("INBOX")
    arrived: list[tuple[float, bytes]] = []

    def read() -> None:
        while True:
            try:
                line = imap.readline()
            except (OSError, ValueError):
                return
            if not line:
                return
            arrived.append((time.perf_counter(), line))
    imap.send(b"i1 IDLE\r\n")
    assert imap.readline().startswith(b"+ ")
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    found = []
    with smtplib.LMTP("127.0.0.1", lmtp_port) as lmtp:
        lmtp.ehlo("bench")
        for n in range(rounds):
            seen = len(arrived)
            assert lmtp.mail("sender@example.net")[0] == 250
            assert lmtp.rcpt(f"{USER}@example.org")[0] == 250
            lmtp.putcmd("data")
            assert lmtp.getreply()[0] == 354
            lmtp.send(message(n).replace(b"\n", b"\r\n") + b".\r\n")
            sent = time.perf_counter()
            assert lmtp.getreply()[0] == 250
            deadline = time.monotonic() + 35
            while not any(line.endswith(b"EXISTS\r\n") for _, line in arrived[seen:]):
                assert time.monotonic() < deadline, "no EXISTS within 35 s"
                time.sleep(0.001)
            at = next(t for t, line in arrived[seen:] if line.endswith(b"EXISTS\r\n"))
            found.append(at - sent)
            time.sleep(0.05)
    try:
        imap.send(b"DONE\r\n")
        imap.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    reader.join(5)
    return found


def ours(root: Path, kind: str, count: int, mode: str = "multi"):
    from imapd.tls import generate_self_signed

    root.mkdir()
    cert, key = str(root / "cert.pem"), str(root / "key.pem")
    generate_self_signed(cert, key, "localhost")
    (lmtp_port,) = free_ports(1)
    if kind == "maildir":
        fill_maildir(root / "mail" / USER, count)
        location = f"maildir:{root}/mail/%u"
    else:
        fill_mbox(root / "mail" / f"{USER}.inbox", count)
        (root / "mail" / USER).mkdir()
        location = f"mbox:{root}/mail/%u:INBOX={root}/mail/%u.inbox"
    config, (port, _tls) = write_config(root, (cert, key), {
        "lmtp_listen": [f"tcp:{lmtp_port}:interface=127.0.0.1"],
        "mail": {"location": location},
        "log": {"level": "info"},
        "service": {"single_process": mode == "single"},
    }, users={USER: PASSWORD})
    daemon = Daemon(["--config", str(config)], root).start()
    daemon.wait_for_greeting(port)
    return lmtp_port, port, True, daemon.stop


def dovecot(root: Path, kind: str, count: int, mode: str = ""):
    root.mkdir()
    (lmtp_port,) = free_ports(1)
    if kind == "maildir":
        fill_maildir(root / "mail" / USER, count)
        location = "maildir:{d}/mail/%u"
    else:
        fill_mbox(root / "mail" / f"{USER}.inbox", count)
        (root / "mail" / USER).mkdir()
        location = "mbox:{d}/mail/%u:INBOX={d}/mail/%u.inbox"
    extra = (f"protocols = imap lmtp\nservice lmtp {{\n  inet_listener lmtp {{\n"
             f"    address = 127.0.0.1\n    port = {lmtp_port}\n  }}\n}}\n"
             "lmtp_rcpt_check_quota = no\nauth_username_format = %Ln\n")
    server = start_dovecot(root, {USER: PASSWORD}, mail_location=location, extra=extra)
    return lmtp_port, server.port, False, server.stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--stores", nargs="+", default=["maildir", "mbox"])
    parser.add_argument("--modes", nargs="+", default=["multi", "single"],
                        choices=["multi", "single"])
    parser.add_argument("--latency", type=int, default=20,
                        help="deliveries timed to the IDLE EXISTS (0: none)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="times each server is timed, taking turns with the others "
                             "(the table gives the median and the range)")
    parser.add_argument("--unsynced", action="store_true",
                        help="deliver before any IMAP session saw the mailbox (by default "
                             "one SELECT first, so that the UID list or index holds all "
                             "its messages, as with any mailbox a client reads)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="imapd-bench-lmtp-"))
    os.chmod(scratch, 0o755)
    servers = [(f"imapd-{mode}", ours, mode) for mode in args.modes] + [
        ("dovecot", dovecot, "")]
    rates: dict[tuple, list[float]] = {}
    latencies = {}
    try:
        for kind in args.stores:
            # Every server of this store is up at once, so that the rounds
            # can alternate between them: on a machine whose speed drifts,
            # a server measured only at one moment is measured against the
            # moment, not against the others.
            running = []
            try:
                for name, start, mode in servers:
                    port, imap_port, tls, stop = start(scratch / f"{name}-{kind}", kind,
                                                       args.messages, mode)
                    running.append((name, port, imap_port, tls, stop))
                    if not args.unsynced:
                        seen = select_once(imap_port, tls)
                        print(f"{kind:8} {name:13} SELECT of the new mailbox: {seen:.2f}s",
                              flush=True)
                    warm = deliver(port, 3, 1)
                    print(f"{kind:8} {name:13} first 3 deliveries, cold mailbox: "
                          f"{warm:.2f}s", flush=True)
                for r in range(args.rounds):
                    for name, port, _imap_port, _tls, _stop in running:
                        for conns in args.connections:
                            seconds = deliver(port, args.deliveries, conns)
                            rate = args.deliveries / seconds
                            rates.setdefault((kind, name, conns), []).append(rate)
                            print(f"{kind:8} {name:13} {conns} conn: {rate:7.1f} deliveries/s"
                                  f" (round {r + 1})", flush=True)
                if args.latency:
                    for name, port, imap_port, tls, _stop in running:
                        found = idle_latency(imap_port, port, args.latency, tls)
                        latencies[kind, name] = found
                        print(f"{kind:8} {name:13} end of DATA -> IDLE EXISTS: median "
                              f"{statistics.median(found) * 1000:.1f} ms, max "
                              f"{max(found) * 1000:.1f} ms", flush=True)
            finally:
                for *_rest, stop in running:
                    stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    names = [name for name, _, _ in servers]
    several = args.rounds > 1
    print("\n| store | connections | " + " | ".join(f"{n} /s" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for kind in args.stores:
        for conns in args.connections:
            cells = []
            for n in names:
                got = rates.get((kind, n, conns), [0.0])
                cell = f"{statistics.median(got):.0f}"
                if several:
                    cell += f" ({min(got):.0f}–{max(got):.0f})"
                cells.append(cell)
            print(f"| {kind} | {conns} | " + " | ".join(cells) + " |")
    if several:
        print(f"\nMedian of {args.rounds} rounds (lowest–highest); the servers took turns "
              "in each round.")
    if latencies:
        print("\n| store | server | DATA -> EXISTS median ms | max ms |\n|---|---|---|---|")
        for (kind, name), found in latencies.items():
            print(f"| {kind} | {name} | {statistics.median(found) * 1000:.1f} | "
                  f"{max(found) * 1000:.1f} |")


if __name__ == "__main__":
    main()
