"""
Benchmark: IMAP logins per second against a real LDAP directory, imapd
(with and without its authentication cache, in each server shape) beside
Dovecot 2.3 with its LDAP passdb (with and without its auth cache), all on
the same private slapd in the same run.

Not a test (pytest does not collect it: no C{test_} prefix).  Run as root
(Dovecot drops to its own user) from the checkout::

    /work/venv/bin/python tests/bench_ldap_logins.py [--seconds S] [--clients N]
        [--users U] [--mode attrs|bind]

Each row: C{--clients} processes, for C{--seconds} after one untimed round
over the users, each loop over the C{--users} directory users: connect,
greeting, C{LOGIN} (plaintext, loopback), C{LOGOUT}.  Every login must
succeed (a failure is counted and shown).  C{searches} is the number of
searches slapd logged during the timed part: with a cache, repeated logins
of a user with the same password do not reach the directory.

C{--mode attrs}: both servers read C{userPassword} ({SSHA}) as the reader
account and verify it themselves; C{bind}: both bind as the user (slapd
checks the password).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "e2e"))

from e2e_helpers import Daemon, free_ports  # noqa: E402
from imapd.auth.schemes import hash_password  # noqa: E402
from tests.dovecot_helpers import start_dovecot  # noqa: E402
from tests.ldap_helpers import PEOPLE, READER_DN, READER_PASSWORD, Slapd, ldif_user  # noqa: E402

FORK = multiprocessing.get_context("fork")
FILTER = "(&(objectClass=posixAccount)(uid=%u))"


def users(count: int) -> list[tuple[str, str]]:
    return [(f"bench{i:04d}", f"secret {i}") for i in range(count)]


def load_directory(root: Path, count: int) -> Slapd:
    slapd = Slapd(root / "slapd").start()
    slapd.load_base()
    entries = [ldif_user(name, hash_password(password, "SSHA"), 30000 + i)
               for i, (name, password) in enumerate(users(count))]
    for start in range(0, len(entries), 100):
        slapd.add("\n".join(entries[start:start + 100]))
    return slapd


def searches(slapd: Slapd) -> int:
    return sum(1 for line in slapd.log().splitlines() if " SRCH base=" in line)


# -- the load --------------------------------------------------------------------------


def _one_login(port: int, user: str, password: str) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        if not f.readline().startswith(b"* OK"):
            return False
        s.sendall(f'a LOGIN {user} "{password}"\r\n'.encode())
        while True:
            line = f.readline()
            if not line or line.startswith(b"a "):
                break
        ok = line.startswith(b"a OK")
        s.sendall(b"b LOGOUT\r\n")
        while True:
            line = f.readline()
            if not line or line.startswith(b"b "):
                break
        return ok


def _client(port, accounts, offset, start, seconds, result):
    start.wait()
    ok = failed = 0
    i = offset
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        user, password = accounts[i % len(accounts)]
        i += 1
        if _one_login(port, user, password):
            ok += 1
        else:
            failed += 1
    result.put((ok, failed))


def measure(port: int, accounts, clients: int, seconds: float, slapd: Slapd) -> dict:
    # One untimed round: every user logged in once (connections opened,
    # caches filled where there are caches).
    for user, password in accounts:
        if not _one_login(port, user, password):
            raise RuntimeError(f"warm-up login of {user} failed on port {port}")
    before = searches(slapd)
    start, result = FORK.Event(), FORK.Queue()
    procs = [FORK.Process(target=_client, args=(port, accounts, k * len(accounts) // clients,
                                                start, seconds, result))
             for k in range(clients)]
    for p in procs:
        p.start()
    began = time.monotonic()
    start.set()
    totals = [result.get() for _ in procs]
    elapsed = time.monotonic() - began
    for p in procs:
        p.join()
    ok = sum(t[0] for t in totals)
    return {"logins": ok, "failed": sum(t[1] for t in totals), "seconds": elapsed,
            "rate": ok / elapsed, "searches": searches(slapd) - before}


# -- the servers ----------------------------------------------------------------------


def start_imapd(root: Path, slapd: Slapd, single: bool, cache: bool, mode: str):
    root.mkdir(parents=True)
    (port,) = free_ports(1)
    (root / "reader.secret").write_text(READER_PASSWORD)
    cache_lines = "cache_size = 100000\ncache_ttl = 3600.0\n" if cache else ""
    attrs = ('auth_bind = true\npass_attrs = "uid=user"' if mode == "bind"
             else 'pass_attrs = "uid=user,userPassword=password"')
    (root / "imapd.toml").write_text(f"""
listen = ["tcp:{port}:interface=127.0.0.1"]
hostname = "imapd.bench"
data_dir = "{root}/data"

[auth]
passwd_file = ""
passdb = ["ldap"]
{cache_lines}
[ldap]
uris = ["{slapd.uri}"]
base = "{PEOPLE}"
bind_dn = "{READER_DN}"
bind_password_file = "{root}/reader.secret"
pass_filter = "{FILTER}"
user_filter = "{FILTER}"
user_attrs = ""
{attrs}

[mail]
location = "maildir:{root}/mail/%u"
index_dir = "{root}/index"

[limits]
max_connections_per_ip = 1000

[log]
level = "warn"

[service]
single_process = {"true" if single else "false"}
""")
    daemon = Daemon(["--config", str(root / "imapd.toml")], root).start()
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                if s.recv(100).startswith(b"* OK"):
                    break
        except OSError:
            pass
        if daemon.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"imapd did not start:\n{daemon.log()[-3000:]}")
        time.sleep(0.1)
    return daemon, port


DOVECOT_PASSDB = """\
passdb {{
  driver = ldap
  args = {d}/dovecot-ldap.conf.ext
}}"""


def start_dovecot_ldap(root: Path, slapd: Slapd, cache: bool, mode: str, reuse: bool = False):
    root.mkdir(parents=True)
    bind = ("auth_bind = yes\npass_attrs = uid=user\n" if mode == "bind"
            else "auth_bind = no\npass_attrs = uid=user,userPassword=password\n")
    (root / "dovecot-ldap.conf.ext").write_text(
        f"uris = {slapd.uri}\ndn = {READER_DN}\ndnpass = {READER_PASSWORD}\n"
        f"base = {PEOPLE}\nscope = subtree\npass_filter = {FILTER}\n"
        f"default_pass_scheme = CRYPT\n{bind}")
    extra = ("auth_cache_size = 100M\nauth_cache_ttl = 1 hour\n" if cache
             else "auth_cache_size = 0\n")
    # Dovecot's login processes and auth: the defaults of 2.3 (one auth
    # process, login processes in high-security mode: one per connection,
    # a new imap process per login); with reuse, its "high-performance"
    # login processes and imap processes serving one login after another.
    if reuse:
        extra += ("service imap-login {\n  service_count = 0\n}\n"
                  "service imap {\n  service_count = 0\n}\n")
    return start_dovecot(root, {}, extra=extra, passdb=DOVECOT_PASSDB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--mode", choices=["attrs", "bind"], default="attrs")
    parser.add_argument("--shapes", default="multi,single",
                        help="imapd server shapes to run (multi, single)")
    args = parser.parse_args()
    accounts = users(args.users)
    root = Path(tempfile.mkdtemp(prefix="bench-ldap-"))
    os.chmod(root, 0o755)  # Dovecot, started as root, runs as its own user
    rows = []
    slapd = load_directory(root, args.users)
    try:
        for shape in args.shapes.split(","):
            for cache in (False, True):
                label = f"imapd {shape}-process, cache {'on' if cache else 'off'}"
                daemon, port = start_imapd(root / label.replace(" ", "_").replace(",", ""),
                                           slapd, shape == "single", cache, args.mode)
                try:
                    rows.append((label, measure(port, accounts, args.clients, args.seconds,
                                                slapd)))
                finally:
                    daemon.stop()
        for reuse, cache in ((False, False), (False, True), (True, False), (True, True)):
            label = (f"Dovecot 2.3 LDAP passdb{', processes reused' if reuse else ''}, "
                     f"cache {'on' if cache else 'off'}")
            server = start_dovecot_ldap(root / f"dovecot-{reuse}-{cache}", slapd, cache,
                                        args.mode, reuse)
            try:
                rows.append((label, measure(server.port, accounts, args.clients, args.seconds,
                                            slapd)))
            finally:
                server.stop()
    finally:
        slapd.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nLDAP logins ({args.mode}), {args.users} users, {args.clients} clients, "
          f"{args.seconds:g} s each, {os.cpu_count()} CPUs\n")
    print(f"| {'server':56} | logins/s | logins | failed | slapd searches |")
    print(f"|{'-' * 58}|---------:|-------:|-------:|---------------:|")
    for label, r in rows:
        print(f"| {label:56} | {r['rate']:8.1f} | {r['logins']:6d} | {r['failed']:6d} | "
              f"{r['searches']:14d} |")


if __name__ == "__main__":
    main()
