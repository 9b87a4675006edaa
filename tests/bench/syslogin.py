#!/usr/bin/env python3
"""
Issue 14's login latency for system users, ours against Dovecot 2.3 in
one run: the time from connect to the tagged OK of LOGIN for a system
user who has no session yet (so that our master must fork the user's
worker, and Dovecot must start an imap process), median of C{--logins}
(default 100) sequential logins, each by a user of its own.

A script, not a test (run it as root: it makes system users and a PAM
service, and starts both servers as root)::

    python3 tests/bench/syslogin.py --logins 100

What it does:

  - makes C{--logins} users with C{useradd} and C{chpasswd} (Debian's
    default hash, yescrypt), homes under a scratch directory, and a PAM
    service file (pam_unix, as C{tests/system_users.py} does); all are
    removed at the end, whatever happened;
  - starts this checkout's multi-process imapd as root (C{[auth] pam},
    C{[userdb] system = true}, C{maildir:~/Maildir}) and Dovecot 2.3 as
    root on its own configuration and loopback port (C{passdb { driver =
    pam }}, C{userdb { driver = passwd }}, the same PAM service and
    mail location);
  - times the logins against each server, the servers taking turns
    (user 2k against one, 2k+1 against the other, alternating which goes
    first), so that a busy moment of the machine falls on both alike;
  - measures, for each server, an idle session of one more user (logged
    in, INBOX selected, in IDLE): the PSS and USS of its mail process
    (our C{imapd: worker USER}, Dovecot's C{imap}), with every process
    group (procmeasure's table).

Both check the same yescrypt hash through the same PAM stack, which
costs most of a login (some tens of milliseconds); the rest is the
servers' own.  C{--json FILE} writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "e2e"), str(REPO / "tests" / "bench")]

from procmeasure import Session, measure_processes  # noqa: E402

from tests.dovecot_helpers import CONF_BASE, DOVEADM, DOVECOT, free_port  # noqa: E402
from tests.system_users import pam_service_file, public_directory, system_user  # noqa: E402

DOVECOT_CONF = CONF_BASE + """\
passdb {{
  driver = pam
  args = {pam}
}}
userdb {{
  driver = passwd
}}
mail_location = maildir:~/Maildir
first_valid_uid = 1000
verbose_proctitle = yes
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class DovecotAsRoot:
    """Dovecot 2.3 started by root on a configuration of its own."""

    def __init__(self, root: Path, pam: str) -> None:
        self.root = root
        for sub in ("run", "state"):
            (root / sub).mkdir(exist_ok=True)
        self.port = free_port()
        self.conf = root / "dovecot.conf"
        self.conf.write_text(DOVECOT_CONF.format(d=root, pam=pam, port=self.port))
        subprocess.run([DOVECOT, "-c", str(self.conf)], check=True, timeout=60)
        _wait_for_greeting(self.port, lambda: (root / "dovecot.log").read_text(errors="replace"))

    def stop(self) -> None:
        subprocess.run([DOVEADM, "-c", str(self.conf), "stop"], check=False,
                       capture_output=True, timeout=30)


def _wait_for_greeting(port: int, log, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = Session("127.0.0.1", port, None, 5)
            s.greeting()
            s.sock.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing greets on port {port}:\n{log()}") from None
            time.sleep(0.1)


def start_imapd(root: Path, pam: str):
    """This checkout's multi-process imapd, as root, serving system users through PAM."""
    from e2e_helpers import start_server

    from imapd.tls import generate_self_signed

    cert, key = str(root / "cert.pem"), str(root / "key.pem")
    generate_self_signed(cert, key, "localhost")
    settings = {
        "auth": {"passwd_file": "", "pam": pam},
        "userdb": {"system": True},
        "mail": {"location": "maildir:~/Maildir"},
        "log": {"level": "warn"},
    }
    return start_server(root, (cert, key), settings, users={})


def login_ms(port: int, user) -> float:
    """Connect, greeting, LOGIN: milliseconds to the tagged OK."""
    started = time.perf_counter()
    s = Session("127.0.0.1", port, None, 30)
    try:
        s.greeting()
        s.login(user.name, user.password)
        return (time.perf_counter() - started) * 1000
    finally:
        s.close()


def idle_mail_process(port: int, user, title_of) -> dict:
    """An idle session of C{user}: the process groups, and its mail process's memory."""
    s = Session("127.0.0.1", port, None, 30)
    try:
        s.greeting()
        s.login(user.name, user.password)
        s.command("SELECT INBOX")
        s.idle()
        time.sleep(2.0)
        measured = measure_processes(port)
    finally:
        s.close()
    mine = [p for p in measured["processes"] if title_of(p["title"], user.name)]
    return {"groups": measured["groups"], "mail_process": mine}


def _ours(title: str, name: str) -> bool:
    return title.startswith(f"imapd: worker {name} ")


def _dovecots(title: str, name: str) -> bool:
    # verbose_proctitle: "dovecot/imap [USER IP IDLE]"
    return title.startswith(f"dovecot/imap [{name} ")


def summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"logins": len(ms), "median_ms": statistics.median(ms), "min_ms": ms[0],
            "p90_ms": ms[max(int(len(ms) * 0.9) - 1, 0)], "max_ms": ms[-1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: the bench makes system users and starts servers as root")

    results: dict = {}
    with ExitStack() as stack:
        top = stack.enter_context(public_directory())
        homes = top / "home"
        homes.mkdir()
        homes.chmod(0o755)
        pam = stack.enter_context(pam_service_file())
        print(f"making {2 * args.logins + 2} users ...", flush=True)
        users = [stack.enter_context(system_user(f"b{n}", homes))
                 for n in range(2 * args.logins + 2)]
        (top / "imapd").mkdir()
        (top / "dovecot").mkdir()
        imapd = start_imapd(top / "imapd", pam)
        stack.callback(imapd.daemon.stop)
        dovecot = DovecotAsRoot(top / "dovecot", pam)
        stack.callback(dovecot.stop)
        servers = {"imapd multi-process": imapd.port, "dovecot 2.3": dovecot.port}
        times: dict[str, list[float]] = {name: [] for name in servers}
        order = list(servers)
        for n in range(args.logins):
            for k, name in enumerate(order if n % 2 == 0 else order[::-1]):
                times[name].append(login_ms(servers[name], users[2 * n + k]))
        for name in servers:
            results[name] = {"login": summary(times[name])}
        results["imapd multi-process"]["idle"] = idle_mail_process(
            imapd.port, users[-2], _ours)
        results["dovecot 2.3"]["idle"] = idle_mail_process(dovecot.port, users[-1], _dovecots)

    print(f"\nconnect to OK of LOGIN, a new system user each time (PAM, yescrypt), "
          f"{args.logins} logins per server")
    print(f"{'server':22} {'median ms':>10} {'min':>8} {'p90':>8} {'max':>8}")
    for name, r in results.items():
        s = r["login"]
        print(f"{name:22} {s['median_ms']:10.2f} {s['min_ms']:8.2f} {s['p90_ms']:8.2f}"
              f" {s['max_ms']:8.2f}")
    ratio = (results["imapd multi-process"]["login"]["median_ms"]
             / results["dovecot 2.3"]["login"]["median_ms"])
    print(f"ratio imapd / dovecot: {ratio:.2f}")
    print("\nan idle system user's session (SELECT INBOX, IDLE): its mail process, and "
          "every process group (largest process)")
    print(f"{'server':22} {'process':34} {'PSS MB':>7} {'USS MB':>7}")
    for name, r in results.items():
        for p in r["idle"]["mail_process"]:
            print(f"{name:22} {p['title'][:34]:34} {p['pss_kb'] / 1024:7.1f}"
                  f" {p['uss_kb'] / 1024:7.1f}")
        for group, g in sorted(r["idle"]["groups"].items()):
            print(f"{name:22} {('  ' + str(g['count']) + 'x ' + group)[:34]:34}"
                  f" {g['max_kb'] / 1024:7.1f} {g['max_uss_kb'] / 1024:7.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
