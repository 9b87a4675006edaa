"""
How long C{imapd-admin mailbox status -A} takes over many users (issue 16
asks for 10,000): a generated passwd-file and tiny Maildirs (an INBOX of
two messages with its dovecot-uidlist, one of them unseen, and an empty
Sent) in a temporary directory, then the console script timed in a
process of its own, as a sysadmin runs it.

    python -m tests.imapd.adminops.bench_status_all [USERS] [--keep DIR]

tests/imapd/adminops/test_status_all.py runs the same generator with a
few hundred users and checks the output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

MESSAGE = (b"From: carol@example.org\r\nTo: user@example.org\r\nSubject: hello\r\n"
           b"Date: Mon, 5 Jan 2026 10:00:00 +0000\r\n\r\nHello.\r\n")
UIDVALIDITY = 1767225600


def make_users(root: str, count: int) -> str:
    """C{count} users with tiny Maildirs under C{root}; returns the configuration file."""
    lines = []
    for i in range(count):
        user = f"u{i:05d}"
        home = os.path.join(root, "home", user)
        maildir = os.path.join(home, "Maildir")
        for sub in ("cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"):
            os.makedirs(os.path.join(maildir, sub))
        names = []
        for n, flags in ((1, "S"), (2, "")):
            base = f"{UIDVALIDITY + n}.M{n}P1Q{n}.bench,S={len(MESSAGE)},W={len(MESSAGE)}"
            with open(os.path.join(maildir, "cur", f"{base}:2,{flags}"), "wb") as f:
                f.write(MESSAGE)
            names.append(base)
        with open(os.path.join(maildir, "dovecot-uidlist"), "w") as f:
            f.write(f"3 V{UIDVALIDITY} N3 G{i:032x}\n1 :{names[0]}\n2 :{names[1]}\n")
        lines.append(f"{user}:{{PLAIN}}pw::::{home}::userdb_mail=maildir:~/Maildir\n")
    with open(os.path.join(root, "passwd"), "w") as f:
        f.writelines(lines)
    config = os.path.join(root, "imapd.toml")
    with open(config, "w") as f:
        f.write(f'[auth]\npasswd_file = "passwd"\n[mail]\nindex_dir = "{root}/index"\n')
    return config


def run_status_all(config: str) -> tuple[float, subprocess.CompletedProcess]:
    """The console script's C{mailbox status -A --json}, timed (seconds)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = "import sys; from imapd.admin import console; sys.argv[0] = 'imapd-admin'; console()"
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", script, "--config", config, "mailbox", "status",
                          "-A", "--json"], capture_output=True, text=True, env=env)
    return time.monotonic() - started, run


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv and argv[0].isdigit() else 10_000
    keep = argv[argv.index("--keep") + 1] if "--keep" in argv else None
    root = keep or tempfile.mkdtemp(prefix="imapd-bench-")
    started = time.monotonic()
    config = make_users(root, count)
    print(f"{count} users made in {time.monotonic() - started:.1f}s under {root}")
    for attempt in ("cold", "warm"):
        seconds, run = run_status_all(config)
        rows = run.stdout.count('"mailbox"')
        print(f"mailbox status -A ({attempt}): {seconds:.2f}s, exit {run.returncode}, "
              f"{rows} mailboxes, {count / seconds:.0f} users/s")
        if run.returncode:
            print(run.stderr[-2000:])
    if keep is None:
        import shutil

        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
