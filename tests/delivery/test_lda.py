"""
C{imapd-deliver}, the LDA, as MTAs run it: a separate process fed the
message on standard input (a sendmail-style pipe), answering in sysexits
codes; Maildir and mbox.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from e2e_helpers import REPO, daemon_env
from tests.delivery.delivery_helpers import messages_of, open_user_store

MESSAGE = b"From: a@example.net\nSubject: via the LDA\n\nbody\n"


@pytest.fixture
def config(tmp_path, location, passwd_file):
    path = tmp_path / "imapd.toml"
    path.write_text(f'[auth]\npasswd_file = "{passwd_file}"\n'
                    f'[mail]\nlocation = "{location}"\nindex_dir = "{tmp_path}/index"\n'
                    '[quota.users]\n"bob@example.org" = { messages = 1 }\n'
                    '[lmtp]\nmax_message_size = 2000\n')
    return str(path)


def lda(*args: str, stdin: bytes = MESSAGE, shell_pipe: bool = False):
    argv = [sys.executable, "-m", "imapd.delivery.lda", *args]
    if shell_pipe:
        # As sendmail's prog mailer or a .forward "|command" runs it.
        command = "printf '%s' \"$MSG\" | " + " ".join(f"'{a}'" for a in argv)
        env = dict(daemon_env(), MSG=stdin.decode())
        return subprocess.run(["/bin/sh", "-c", command], env=env, cwd=REPO,
                              capture_output=True, timeout=60)
    return subprocess.run(argv, input=stdin, env=daemon_env(), cwd=REPO,
                          capture_output=True, timeout=60)


def test_delivers_with_trace_headers(config, location, tmp_path):
    """
    Exit 0; the message is in INBOX with Return-Path from -f and
    Delivered-To; a leading From_ line is dropped and gives the sender
    when -f is absent.
    """
    result = lda("-c", config, "-d", "alice", "-f", "s@example.net", shell_pipe=True)
    assert result.returncode == 0, result.stderr
    result = lda("-c", config, "-d", "alice",
                 stdin=b"From envelope@example.org Mon Dec  7 03:00:00 2026\n" + MESSAGE)
    assert result.returncode == 0, result.stderr
    first, second = (m.replace(b"\r\n", b"\n") for m in messages_of(location, "alice", tmp_path))
    assert first == b"Return-Path: <s@example.net>\nDelivered-To: alice\n" + MESSAGE
    assert second == b"Return-Path: <envelope@example.org>\nDelivered-To: alice\n" + MESSAGE


def test_folder_option(config, location, tmp_path):
    """-m delivers into an existing folder, falls back to INBOX for a missing one."""
    store = open_user_store(location, "alice", tmp_path)
    store.create("Lists")
    store.close()
    assert lda("-c", config, "-d", "alice", "-m", "Lists").returncode == 0
    assert lda("-c", config, "-d", "alice", "-m", "Missing").returncode == 0
    assert len(messages_of(location, "alice", tmp_path, "Lists")) == 1
    assert len(messages_of(location, "alice", tmp_path)) == 1


def test_exit_codes(config, tmp_path):
    """sysexits: 67 unknown user, 64 usage, 78 bad config, 77 too big."""
    result = lda("-c", config, "-d", "nobody")
    assert result.returncode == 67, result.stderr
    assert b"no such user" in result.stderr
    assert lda("-c", config).returncode == 64
    assert lda("-c", config, "-d", "alice", "--bogus").returncode == 64
    bad = tmp_path / "bad.toml"
    bad.write_text("[mail]\nlocation = 'nodriver'\n")
    assert lda("-c", str(bad), "-d", "alice").returncode == 78
    assert lda("-c", str(tmp_path / "missing.toml"), "-d", "alice").returncode == 78
    big = MESSAGE + b"x" * 3000 + b"\n"
    result = lda("-c", config, "-d", "alice", stdin=big)
    assert result.returncode == 77, result.stderr


def test_over_quota_and_tempfail(config, tmp_path, location, passwd_file):
    """
    Over quota is 77 (refused for good); a store that cannot be written
    (the mail root is a file) is 75, so the MTA keeps the message queued.
    """
    assert lda("-c", config, "-d", "bob@example.org").returncode == 0
    result = lda("-c", config, "-d", "bob@example.org")
    assert result.returncode == 77, result.stderr
    assert b"5.2.2" in result.stderr
    # A file where alice's mail root should be: the store cannot be opened.
    root = location.split(":", 1)[1].split(":", 1)[0].replace("%u", "alice")
    os.makedirs(os.path.dirname(root), exist_ok=True)
    with open(root, "w") as f:
        f.write("not a directory")
    result = lda("-c", config, "-d", "alice")
    assert result.returncode == 75, result.stderr


def test_failed_write_leaves_nothing_half_written(config, location, tmp_path):
    """
    A write that fails half-way (here the file size limit, RLIMIT_FSIZE,
    standing in for a full disk) is a temporary failure (75) and leaves the
    mailbox exactly as it was: no partial message, no stray temporary file.
    """
    import resource
    import signal

    assert lda("-c", config, "-d", "alice").returncode == 0
    before = messages_of(location, "alice", tmp_path)
    mail_root = tmp_path / "mail"
    files_before = {p: p.stat().st_size for p in mail_root.rglob("*") if p.is_file()}

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    big = MESSAGE + b"".join(b"line %06d of a message that will not fit\n" % i
                             for i in range(1500))
    roomy = tmp_path / "roomy.toml"
    roomy.write_text(open(config).read().replace("max_message_size = 2000", ""))
    result = subprocess.run([sys.executable, "-m", "imapd.delivery.lda", "-c", str(roomy),
                             "-d", "alice"], input=big, env=daemon_env(), cwd=REPO,
                            capture_output=True, timeout=60, preexec_fn=limit)
    assert result.returncode == 75, result.stderr
    assert b"4.3.0 Temporary store failure" in result.stderr
    assert messages_of(location, "alice", tmp_path) == before
    leftovers = {p: p.stat().st_size for p in mail_root.rglob("*") if p.is_file()}
    changed = {p for p in set(leftovers) | set(files_before)
               if leftovers.get(p) != files_before.get(p)}
    # Only bookkeeping of the store may differ (nothing was delivered).
    assert not {p for p in changed if "tmp" in p.parts or p.parent.name in ("new", "cur")
                or p.name.endswith(".inbox") or p.name == "alice"}, changed
