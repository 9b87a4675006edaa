"""
A real synchronising client against the real daemon: isync's C{mbsync}
syncs a corpus mailbox (on each store) two ways with a local Maildir, both sides change
flags and delete a message, and after a second sync both sides hold the
same messages (by Message-ID) with the same flags.

mbsync reaches the daemon over implicit TLS, trusting the test's
self-signed certificate.  The test fails (it does not skip) when mbsync
is missing: C{.ci/run} installs isync.
"""

from __future__ import annotations

import email.parser
import imaplib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CORPUS = Path("/work/shared/corpus/spamassassin/easy_ham/cur")
#: How many corpus messages the mailbox starts with.
COUNT = 300

#: Maildir info letters (maildir(5)) and their IMAP flags.
LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
FLAGS = {v: k for k, v in LETTERS.items()}


def corpus_messages(count: int) -> list[tuple[str, bytes]]:
    """C{count} (Message-ID, bytes) pairs with distinct Message-IDs, envelope line removed."""
    out, seen = [], set()
    for name in sorted(os.listdir(CORPUS)):
        data = (CORPUS / name).read_bytes()
        if data.startswith(b"From "):
            data = data.split(b"\n", 1)[1]
        mid = message_id(data)
        if mid and mid not in seen:
            seen.add(mid)
            out.append((mid, data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")))
        if len(out) == count:
            break
    assert len(out) == count, "the corpus has too few messages with a Message-ID"
    return out


def message_id(data: bytes) -> str:
    headers = email.parser.BytesHeaderParser().parsebytes(data)
    return (headers.get("Message-ID") or "").strip()


def mbsync(config: Path, cwd: Path) -> None:
    result = subprocess.run(
        ["mbsync", "-c", str(config), "-V", "corpus"],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"mbsync failed:\n{result.stdout}\n{result.stderr}"


def write_mbsync_config(path: Path, server, local: Path) -> None:
    """One channel, INBOX only, two-way, expunging on both sides."""
    path.write_text(f"""\
IMAPAccount test
Host localhost
Port {server.tls_port}
User {server.user}
Pass "{server.password}"
SSLType IMAPS
CertificateFile {server.cert}
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX

Channel corpus
Far :remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
Sync All
SyncState *
""")


def server_state(server) -> dict[str, frozenset[str]]:
    """Message-ID -> system flags, as the server reports them."""
    with imaplib.IMAP4(server.host, server.port) as imap:
        imap.login(server.user, server.password)
        imap.select("INBOX", readonly=True)
        typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        assert typ == "OK"
    state = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()
        state[message_id(item[1])] = frozenset(f for f in flags if f in FLAGS)
    return state


def local_files(local: Path) -> dict[str, Path]:
    """Message-ID -> file in the local INBOX Maildir (new/ and cur/)."""
    out = {}
    for sub in ("new", "cur"):
        for path in (local / "INBOX" / sub).iterdir():
            out[message_id(path.read_bytes())] = path
    return out


def local_flags(path: Path) -> frozenset[str]:
    _base, sep, info = path.name.partition(":2,")
    return frozenset(LETTERS[c] for c in info if c in LETTERS) if sep else frozenset()


def set_local_flags(path: Path, flags: frozenset[str]) -> None:
    """Rename a Maildir file to carry C{flags}, into cur/, letters in ASCII order."""
    base = path.name.partition(":2,")[0]
    info = "".join(sorted(FLAGS[f] for f in flags))
    path.rename(path.parent.parent / "cur" / f"{base}:2,{info}")


@pytest.mark.parametrize("location", ["maildir:~/Maildir", "mbox:~/mail"])
def test_two_way_sync_converges(start_imapd, tmp_path, location):
    """mbsync, flag changes and a deletion on each side, mbsync again: both sides agree."""
    assert shutil.which("mbsync"), "mbsync (Debian package isync) is needed: apt-get install isync"
    server = start_imapd({"mail": {"location": location}})
    messages = corpus_messages(COUNT)
    with imaplib.IMAP4(server.host, server.port) as imap:
        imap.login(server.user, server.password)
        for i, (_mid, data) in enumerate(messages):
            flags = "(\\Seen)" if i % 3 == 0 else None
            typ, _ = imap.append("INBOX", flags, None, data)
            assert typ == "OK"

    # The mail went to the store under test, in the user's home.
    assert (server.root / "home" / server.user / location.split(":~/")[1]).exists()

    local = tmp_path / "local"
    local.mkdir()
    config = tmp_path / "mbsyncrc"
    write_mbsync_config(config, server, local)
    mbsync(config, tmp_path)

    first = server_state(server)
    files = local_files(local)
    assert set(files) == set(first) == {mid for mid, _ in messages}
    assert {mid: local_flags(p) for mid, p in files.items()} == first

    ids = [mid for mid, _ in messages]
    # Server side: flag 1, un-see 3 (seen at append), answer 4, delete 10.
    with imaplib.IMAP4(server.host, server.port) as imap:
        imap.login(server.user, server.password)
        imap.select("INBOX")
        assert imap.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert imap.store("4", "-FLAGS", "(\\Seen)")[0] == "OK"
        assert imap.store("5", "+FLAGS", "(\\Answered \\Seen)")[0] == "OK"
        assert imap.store("11", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert imap.expunge()[0] == "OK"
    server_deleted = ids[10]
    # Local side: flag message 21, see 22, un-see 25 (seen at append), delete 31.
    set_local_flags(files[ids[20]], local_flags(files[ids[20]]) | {"\\Flagged"})
    set_local_flags(files[ids[21]], local_flags(files[ids[21]]) | {"\\Seen"})
    set_local_flags(files[ids[24]], local_flags(files[ids[24]]) - {"\\Seen"})
    files[ids[30]].unlink()
    local_deleted = ids[30]

    mbsync(config, tmp_path)

    after = server_state(server)
    files = local_files(local)
    expected = set(ids) - {server_deleted, local_deleted}
    assert set(after) == expected
    assert set(files) == expected
    assert {mid: local_flags(p) for mid, p in files.items()} == after
    # Each change made on one side reached the other.
    assert after[ids[0]] == first[ids[0]] | {"\\Flagged"}
    assert after[ids[3]] == first[ids[3]] - {"\\Seen"}
    assert after[ids[4]] == {"\\Answered", "\\Seen"}
    assert after[ids[20]] == first[ids[20]] | {"\\Flagged"}
    assert after[ids[21]] == {"\\Seen"}
    assert after[ids[24]] == first[ids[24]] - {"\\Seen"}
    # Nothing else changed.
    untouched = expected - {ids[i] for i in (0, 3, 4, 20, 21, 24)}
    assert all(after[mid] == first[mid] for mid in untouched)
    # A third run finds nothing left to do and changes nothing.
    mbsync(config, tmp_path)
    assert server_state(server) == after
