#!/usr/bin/env python3
"""
Issue 14's throughput figures in one run: imapbench's C{concurrent} op
(C{/work/shared/bench/imapbench.py}, or C{--bench}) against this
checkout's multi-process server, its single process and Dovecot 2.3, each
on its own copy of one corpus, then the concurrent stress mix
(L{tests.stress.stress}) against the same three.

A script, not a test::

    python3 tests/bench/throughput.py --messages 10000 --clients 8 --repeat 5 \\
        --stress-seconds 10

The corpus (imapbench C{corpus --uidlist}) is written once under
C{--dir} and kept; each server's INBOX is a hard-linked copy of it
(C{cp -al}, as imapbench's README does), Dovecot's last because it is
given to Dovecot's user.  C{--ops} runs other imapbench ops beside
C{concurrent}; C{--skip-stress} leaves the mix out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "e2e")]

BENCH = "/work/shared/bench/imapbench.py"
SERVERS = ("imapd multi-process", "imapd single-process", "dovecot 2.3")


def _corpus(args) -> Path:
    corpus = Path(args.dir) / f"corpus{args.messages}"
    if not (corpus / "cur").is_dir():
        subprocess.run([sys.executable, args.bench, "corpus", "--out", str(corpus),
                        "--messages", str(args.messages), "--uidlist"], check=True)
    return corpus


def _start(name: str, root: Path, corpus: Path):
    """Start one server with user bench/pass whose INBOX is the corpus: (port, pid, stop)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if name.startswith("dovecot"):
        from tests.dovecot_helpers import start_dovecot

        (root / "mail").mkdir()
        subprocess.run(["cp", "-al", f"{corpus}/.", str(root / "mail" / "bench")], check=True)
        extra = ("protocol imap {\n  mail_max_userip_connections = 100\n}\n")
        server = start_dovecot(root, {"bench": "pass"}, extra=extra)
        pid = int((root / "run" / "master.pid").read_text())
        return server.port, pid, server.stop
    from e2e_helpers import start_server

    from imapd.tls import generate_self_signed

    cert, key = str(root / "cert.pem"), str(root / "key.pem")
    generate_self_signed(cert, key, "localhost")
    (root / "mail").mkdir()
    subprocess.run(["cp", "-al", f"{corpus}/.", str(root / "mail" / "bench")], check=True)
    settings = {"service": {"single_process": name.endswith("single-process")},
                "log": {"level": "warn"}}
    server = start_server(root, (cert, key), settings, users={"bench": "pass"})
    return server.port, server.daemon.process.pid, server.daemon.stop


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/tmp/imapd-throughput")
    parser.add_argument("--bench", default=BENCH)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ops", default="concurrent")
    parser.add_argument("--stress-seconds", type=float, default=10.0)
    parser.add_argument("--skip-stress", action="store_true")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="comma-separated subset of: " + ", ".join(SERVERS))
    args = parser.parse_args(argv)
    top = Path(args.dir)
    top.mkdir(parents=True, exist_ok=True)
    os.chmod(top, 0o755)
    corpus = _corpus(args)
    names = [n for n in SERVERS if n in args.servers.split(",")]
    results = {}
    for name in names:
        port, pid, stop = _start(name, top / name.replace(" ", "-"), corpus)
        out = top / f"{name.replace(' ', '-')}.json"
        try:
            subprocess.run([sys.executable, args.bench, "run", "--port", str(port),
                            "--user", "bench", "--password", "pass", "--ops", args.ops,
                            "--clients", str(args.clients), "--repeat", str(args.repeat),
                            "--label", name, "--server-pid", str(pid), "--json", str(out)],
                           check=True)
        finally:
            stop()
        results[name] = json.loads(out.read_text())
    print("\nmedian seconds (sessions or messages per second) per op")
    print(f"{'op':16} " + " ".join(f"{n:>26}" for n in names))
    ops = [op for op in args.ops.split(",")]
    for op in ops:
        cells = []
        for name in names:
            row = _row(results[name], op)
            cells.append(f"{row['median']:9.3f} s {row['rate']:9.1f}/s" if row else
                         f"{'-':>26}")
        print(f"{op:16} " + " ".join(f"{c:>26}" for c in cells))
    if not args.skip_stress:
        servers = {"imapd multi-process": "ours", "imapd single-process": "ours-single",
                   "dovecot 2.3": "dovecot"}
        argv = [sys.executable, "-m", "tests.stress.stress", "--seconds",
                str(args.stress_seconds)]
        for name in names:
            argv += ["--server", servers[name]]
        print(f"\nstress mix ({' '.join(argv[1:])}):", flush=True)
        subprocess.run(argv, cwd=REPO, check=False)
    return 0


def _row(result: dict, op: str) -> dict | None:
    """The median time and rate of C{op} in an imapbench C{run --json} document."""
    entry = result.get("ops", {}).get(op)
    if not entry or entry.get("status") != "ok":
        return None
    return {"median": entry["median_ms"] / 1000, "rate": entry.get("per_s") or 0.0}


if __name__ == "__main__":
    sys.exit(main())
