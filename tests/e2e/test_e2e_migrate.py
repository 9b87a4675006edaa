"""
Migration that clients do not notice (issue 16, "Proof"), with real
clients against the real daemon, in both directions (mbox -> Maildir and
Maildir -> mbox).  The daemon serves a user's mail in the source store
(Dovecot's fixture of that store, plus corpus mail APPENDed through the
daemon, flags and keywords changed and messages expunged through it, so
that the modseq log has history); then:

 - a QRESYNC client (RFC 7162) caches INBOX: UIDVALIDITY, HIGHESTMODSEQ,
   UIDs, flags;
 - another session changes the flags of two messages and expunges one;
 - a real client, C{mbsync}, syncs every folder to a local Maildir;
 - the daemon stops, C{imapd-admin migrate} moves the mail to the other
   store, a daemon serving the target starts;
 - mbsync syncs again and transfers nothing: its sync log (C{-Ds}) shows
   no message pulled or pushed, no flag propagated, nothing expunged; its
   state files (UIDVALIDITY and UID pairs of both sides) are byte for byte
   what they were; the local files are untouched; the server shows what
   it showed before;
 - the QRESYNC client comes back with SELECT ... (QRESYNC (uidvalidity
   modseq known-uids)) and learns exactly what changed since its cache:
   the one UID in VANISHED (EARLIER), a FETCH for the two changed
   messages and no other; HIGHESTMODSEQ is the one the source's daemon
   last announced (the modseq log moved with the mail).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from e2e_helpers import USER, LineClient, start_server
from test_e2e_mbsync import corpus_messages, write_mbsync_config
from test_e2e_qresync import code, fetched_flags, vanished

from imapd.admin import main as admin_main

FIXTURE = next(p / "shared" for p in Path(__file__).resolve().parents
               if (p / "shared" / "corpus").is_dir()) / "testdata" / "dovecot-2.3.19"

MBOX = "mbox:~/mail:INBOX=~/mail/inbox"
MAILDIR = "maildir:~/Maildir"


def _writable(top: Path) -> None:
    """Make a copied read-only fixture ours (Maildirs get new/ and tmp/)."""
    for dirpath, dirs, files in os.walk(top):
        os.chmod(dirpath, 0o700)
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o600)
        if "cur" in dirs:
            for sub in ("new", "tmp"):
                os.makedirs(os.path.join(dirpath, sub), exist_ok=True)


def _home(root: Path, location: str) -> Path:
    """The user's home with Dovecot's fixture of the store of C{location}."""
    home = root / "home" / USER
    if location == MBOX:
        shutil.copytree(FIXTURE / "mboxu" / "mail", home / "mail")
        shutil.copy(FIXTURE / "mboxu" / "inbox", home / "mail" / "inbox")
    else:
        shutil.copytree(FIXTURE / "mdir" / "Maildir", home / "Maildir")
    _writable(home)
    return home


def _mbsync(config: Path, cwd: Path) -> str:
    """One two-way sync of every folder; its verbose and sync-debug log."""
    result = subprocess.run(["mbsync", "-c", str(config), "-V", "-Ds", "-a"], cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"mbsync failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _configure(config: Path, server, local: Path) -> None:
    write_mbsync_config(config, server, local)
    config.write_text(config.read_text().replace("Patterns INBOX", "Patterns *"))


#: What mbsync's sync log (C{-Ds}, isync 1.4) shows when it does anything:
#: every change to its sync state is first written to its journal and
#: logged as C{-> log: ...} (a message pulled or pushed, a flag change
#: propagated, an expunge, new UIDVALIDITYs), and a message it is about to
#: copy is announced as C{new message N}.  A sync that does nothing has
#: neither.
TRANSFER = re.compile(r"(?m)^(-> log: .*|new message .*|.*UIDVALIDITY.*)$")


def _moved(log: str) -> list[str]:
    return [m.group(0) for m in TRANSFER.finditer(log)]


def _local_tree(local: Path) -> dict[str, bytes]:
    """Every file mbsync keeps (messages and its state files) with its bytes."""
    out = {}
    for dirpath, _dirs, files in os.walk(local):
        for name in files:
            path = Path(dirpath) / name
            if name.endswith(".lock"):
                continue
            out[str(path.relative_to(local))] = path.read_bytes()
    return out


def _server_view(server) -> dict[str, tuple[int, int, dict[int, frozenset[str]]]]:
    """Every mailbox as the daemon shows it: UIDVALIDITY, UIDNEXT, UID -> flags."""
    c = LineClient(server)
    try:
        names = []
        for line in c.cmd('LIST "" "*"'):
            m = re.match(r'\* LIST \(([^)]*)\) "." (.*)$', line)
            if m and "\\Noselect" not in m.group(1):
                names.append(m.group(2))
        out = {}
        for name in names:
            sel = c.cmd(f"EXAMINE {name}")
            status = c.cmd(f"STATUS {name} (UIDNEXT)")
            uidnext = int(re.search(r"UIDNEXT (\d+)", status[0]).group(1))
            exists = int(next(re.match(r"\* (\d+) EXISTS", line).group(1)
                              for line in sel if re.match(r"\* \d+ EXISTS", line)))
            flags = fetched_flags(c.cmd("UID FETCH 1:* (FLAGS)")) if exists else {}
            out[name] = (code(sel, "UIDVALIDITY"), uidnext, flags)
        return out
    finally:
        c.close()


def _fill(server) -> None:
    """Corpus mail through the daemon, with flags and keywords, some expunged."""
    c = LineClient(server)
    for i, (_mid, data) in enumerate(corpus_messages(40)):
        flags = ["\\Seen"] if i % 3 == 0 else []
        if i % 7 == 0:
            flags.append("$Important")
        c.cmd(f"APPEND {'Archive' if i % 10 == 9 else 'INBOX'} ({' '.join(flags)})", data)
    c.cmd("SELECT INBOX")
    c.cmd("UID STORE 2,5 +FLAGS (\\Flagged todo)")
    c.cmd("UID STORE 20:22 +FLAGS (\\Deleted)")
    c.cmd("EXPUNGE")
    c.close()


@pytest.mark.parametrize("source,target", [(MBOX, MAILDIR), (MAILDIR, MBOX)],
                         ids=["mbox-to-maildir", "maildir-to-mbox"])
def test_mbsync_and_qresync_clients_do_not_notice(tmp_path, tls_files, source, target):
    """The proof of issue 16: mbsync transfers nothing, a QRESYNC cache stays exact."""
    assert shutil.which("mbsync"), "mbsync (Debian package isync) is needed: apt-get install isync"
    home = _home(tmp_path, source)
    local = tmp_path / "local"
    local.mkdir()
    config = tmp_path / "mbsyncrc"
    server = start_server(tmp_path, tls_files, {"mail": {"location": source}})
    try:
        _fill(server)
        # The QRESYNC client's cache of INBOX.
        q = LineClient(server)
        q.cmd("ENABLE QRESYNC")
        sel = q.cmd("SELECT INBOX (CONDSTORE)")
        uidvalidity, modseq = code(sel, "UIDVALIDITY"), code(sel, "HIGHESTMODSEQ")
        cache = fetched_flags(q.cmd("UID FETCH 1:* (FLAGS)"))
        q.close()
        uids = sorted(cache)
        flagged = next(u for u in uids if "\\Flagged" not in cache[u])
        answered, gone = uids[-1], uids[6]
        c = LineClient(server)
        c.cmd("SELECT INBOX")
        c.cmd(f"UID STORE {flagged} +FLAGS (\\Flagged)")
        c.cmd(f"UID STORE {answered} +FLAGS (\\Answered later)")
        c.cmd(f"UID STORE {gone} +FLAGS (\\Deleted)")
        c.cmd("EXPUNGE")
        last_modseq = code(c.cmd("SELECT INBOX (CONDSTORE)"), "HIGHESTMODSEQ")
        c.close()

        _configure(config, server, local)
        first = _mbsync(config, tmp_path)
        assert "new message" in first and "-> log: " in first, first
        synced = _local_tree(local)
        served = _server_view(server)
        messages = sorted(n for n in synced if "/cur/" in n or "/new/" in n)
        assert len(messages) == sum(len(v[2]) for v in served.values())
    finally:
        server.daemon.stop()

    out, err = io.StringIO(), io.StringIO()
    assert admin_main(["migrate", "-u", USER, "--home", str(home), "--from", source,
                       "--to", target], out, err) == 0, err.getvalue()
    assert re.search(r"^INBOX: \d+ messages", out.getvalue(), re.M), out.getvalue()

    server = start_server(tmp_path, tls_files, {"mail": {"location": target}})
    try:
        assert (home / ("Maildir/dovecot-uidlist" if target == MAILDIR else "mail/inbox")).exists()
        _configure(config, server, local)
        log = _mbsync(config, tmp_path)
        # mbsync's own record: nothing moved either way, and its state
        # (both sides' UIDVALIDITY, the UID pairs, MaxPulledUid...) is
        # byte for byte the same, as are the message files.
        assert not _moved(log), log
        assert log.count("synchronizing flags") == len(served), log  # it looked at each
        assert _local_tree(local) == synced, log
        assert _server_view(server) == served

        q = LineClient(server)
        q.cmd("ENABLE QRESYNC")
        known = ",".join(str(u) for u in uids)
        sel = q.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} {known}))")
        assert code(sel, "UIDVALIDITY") == uidvalidity
        assert code(sel, "HIGHESTMODSEQ") == last_modseq
        assert vanished(sel) == {gone}, sel
        changed = fetched_flags(sel)
        assert changed == {flagged: cache[flagged] | {"\\Flagged"},
                           answered: cache[answered] | {"\\Answered", "later"}}, sel
        # The cache with what QRESYNC said is the server's state.
        now = {u: f for u, f in {**cache, **changed}.items() if u != gone}
        assert fetched_flags(q.cmd("UID FETCH 1:* (FLAGS)")) == now
        q.close()
    finally:
        server.daemon.stop()
