"""
What nginx's mail proxy in front of a backend costs (issue 15, "Measure
and report"): LOGIN (connect, greeting, LOGIN answered) and a FETCH of a
10 MB message, each timed RUNS times straight to the backend and through
nginx (C{proxy_protocol on}, our auth_http), medians reported.

    /work/venv/bin/python tests/e2e/bench_nginx_cost.py [--runs 15] [--size-mb 10]

One backend of the default (multi-process) server on 127.0.0.2, loopback
only, everything in a temporary directory removed at the end.  Not a test
(pytest does not collect it): it prints a table.
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from e2e_helpers import Daemon, free_ports, start_nginx_mail, toml_text  # noqa: E402

from imapd.admin import main as admin  # noqa: E402
from imapd.auth.schemes import hash_password  # noqa: E402

BACKEND = "127.0.0.2"
USER, PASSWORD = "bench@example.org", "bench password"


def start(root: Path):
    imap_port, direct_port, auth_port, proxy_port = free_ports(4)
    (root / "passwd").write_text(
        f"{USER}:{hash_password(PASSWORD, 'PLAIN')}::::{root / 'home'}::\n")
    hosts_file = root / "store" / "hosts.json"
    admin_conf = root / "admin.toml"
    admin_conf.write_text(f'[cluster]\nhosts_file = "{hosts_file}"\n')
    assert admin(["--config", str(admin_conf), "cluster", "add", BACKEND, "--port",
                  str(imap_port)], io.StringIO(), io.StringIO()) == 0
    node = root / "node"
    node.mkdir()
    (node / "imapd.toml").write_text(toml_text({
        "listen": [f"haproxy:tcp:{imap_port}:interface={BACKEND}",
                   f"tcp:{direct_port}:interface={BACKEND}"],
        "haproxy_trusted_networks": ["127.0.0.0/8"],
        "data_dir": "data",
        "tls": {"enabled": False},
        "auth": {"passwd_file": str(root / "passwd"), "allow_plaintext": True},
        "mail": {"location": f"maildir:{root}/mail/%u", "index_dir": "index"},
        "cluster": {"hosts_file": str(hosts_file), "node": BACKEND,
                    "auth_http_listen": [f"tcp:{auth_port}:interface=127.0.0.1"]},
        "log": {"level": "warn"},
    }))
    daemon = Daemon(["--config", str(node / "imapd.toml")], node, "imapd-bench").start()
    daemon.wait_for_greeting(direct_port, host=BACKEND)
    nginx = start_nginx_mail(root / "nginx", auth_port, proxy_port)
    return daemon, nginx, (BACKEND, direct_port), ("127.0.0.1", proxy_port)


class Client:
    """A minimal IMAP client: timing without imaplib's own overhead."""

    def __init__(self, address) -> None:
        self.sock = socket.create_connection(address, 30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb", buffering=1 << 20)
        assert self.f.readline().startswith(b"* OK")

    def command(self, tag: bytes, text: bytes, literal: bytes = b"") -> int:
        """Send; read to the tagged line; return the bytes received."""
        self.sock.sendall(tag + b" " + text + b"\r\n" + literal)
        got = 0
        while True:
            line = self.f.readline()
            got += len(line)
            if line.startswith(tag + b" "):
                assert line.startswith(tag + b" OK"), line
                return got
            if line.endswith(b"}\r\n"):
                size = int(line[line.rindex(b"{") + 1:-3])
                left = size
                while left:
                    chunk = self.f.read(min(left, 1 << 20))
                    assert chunk
                    left -= len(chunk)
                got += size

    def close(self) -> None:
        self.sock.close()


def login(address) -> Client:
    c = Client(address)
    c.command(b"l", b'LOGIN "%s" "%s"' % (USER.encode(), PASSWORD.encode()))
    return c


def time_login(address) -> float:
    started = time.perf_counter()
    c = login(address)
    elapsed = time.perf_counter() - started
    c.command(b"o", b"LOGOUT")
    c.close()
    return elapsed


def time_fetch(address) -> float:
    c = login(address)
    c.command(b"s", b"SELECT INBOX")
    started = time.perf_counter()
    got = c.command(b"f", b"FETCH 1 BODY.PEEK[]")
    elapsed = time.perf_counter() - started
    c.command(b"o", b"LOGOUT")
    c.close()
    assert got > 10_000, got
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size-mb", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imapd-nginx-cost-") as tmp:
        daemon, nginx, direct, proxied = start(Path(tmp))
        try:
            line = b"x" * 76 + b"\r\n"
            body = line * int(args.size_mb * 1024 * 1024 / len(line))
            message = b"Subject: big\r\n\r\n" + body
            c = login(direct)
            c.command(b"a", b"APPEND INBOX {%d+}" % len(message), message + b"\r\n")
            c.close()
            results = {}
            for name, measure in (("LOGIN", time_login), ("FETCH", time_fetch)):
                for where, address in (("direct", direct), ("nginx", proxied)):
                    measure(address)  # warm up
                # Interleaved, so that load from elsewhere hits both alike.
                samples: dict[str, list[float]] = {"direct": [], "nginx": []}
                for _ in range(args.runs):
                    for where, address in (("direct", direct), ("nginx", proxied)):
                        samples[where].append(measure(address))
                results[name] = {w: statistics.median(s) for w, s in samples.items()}
            print(f"median of {args.runs} runs, {len(message) / 1e6:.1f} MB message, "
                  f"loopback, one multi-process backend, nginx with proxy_protocol on")
            print(f"{'operation':<28}{'direct ms':>12}{'via nginx ms':>14}{'added ms':>10}"
                  f"{'added %':>9}")
            for name, label in (("LOGIN", "LOGIN (connect to OK)"),
                                ("FETCH", f"FETCH BODY[] {args.size_mb:g} MB")):
                d, n = results[name]["direct"] * 1000, results[name]["nginx"] * 1000
                print(f"{label:<28}{d:>12.2f}{n:>14.2f}{n - d:>10.2f}{(n - d) / d * 100:>8.0f}%")
        finally:
            nginx.terminate()
            nginx.wait(15)
            daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
