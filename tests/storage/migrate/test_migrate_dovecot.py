# -*- test-case-name: tests.storage.migrate.test_migrate_dovecot -*-
"""
Dovecot 2.3 as the referee of a migration (issue 16, "Proof"): a private
Dovecot (L{tests.dovecot_helpers}, its own configuration and loopback
port) reads the original mbox, another reads the Maildir that
C{imapd-admin migrate} made of it, and both show the same mailboxes with
the same UIDVALIDITY, UIDNEXT, UIDs, flags, keywords, sizes and
INTERNALDATEs.

Two mboxes: the one Dovecot 2.3.19 wrote (C{testdata/dovecot-2.3.19}),
and one that UW-IMAP's own library, c-client, wrote (L{uwimap_write.c},
compiled here against Debian's C{libc-client2007e-dev}): its pseudo
message (C{X-IMAP} with UIDVALIDITY, last UID and keywords), then
C{X-UID}, C{Status}, C{X-Status}, C{X-Keywords}, plus a message an MDA
appended after UW-IMAP last wrote the file (no C{X-UID}: both servers
must give it the same next UID).
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

import pytest

from tests.dovecot_helpers import start_dovecot

from storage_migrate_testutil import MAILDIR, MBOX, SHARED, maildir_home, mbox_home, run

HERE = Path(__file__).resolve().parent
CORPUS = SHARED / "corpus" / "notmuch" / "default" / "cur"


@pytest.fixture(scope="module")
def uwimap_write(tmp_path_factory) -> Path:
    """The c-client mail program, compiled (CI installs gcc's libc-client headers)."""
    assert os.path.exists("/usr/include/c-client/c-client.h"), (
        "UW-IMAP's c-client is needed: apt-get install libc-client2007e-dev")
    out = tmp_path_factory.mktemp("uw") / "uwimap_write"
    subprocess.run(["gcc", "-O", "-o", str(out), str(HERE / "uwimap_write.c"), "-lc-client"],
                   check=True, capture_output=True, timeout=120)
    return out


def _uw_write(program: Path, mailbox: Path, script: str) -> None:
    # c-client takes the name "inbox" for INBOX (the system spool): write
    # under another name, then rename the file.
    scratch = mailbox.with_name("uw-written")
    r = subprocess.run([str(program), str(scratch)], input=script, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "c-client" not in r.stderr, r.stderr
    scratch.rename(mailbox)


def uw_home(tmp_path: Path, program: Path) -> Path:
    """A home whose ~/mail/inbox and ~/mail/lists UW-IMAP's c-client wrote."""
    home = tmp_path / "home"
    mail = home / "mail"
    mail.mkdir(parents=True)
    messages = sorted(CORPUS.iterdir())[:14]
    for path in messages:
        assert not path.read_bytes().startswith(b"From "), path
    dates = [f"{1 + i:02d}-Mar-2009 1{i % 10}:2{i % 6}:00 +0{i % 3}00" for i in range(14)]
    lines = ["create"]
    flags = ["\\Seen", "-", "\\Seen,\\Answered", "\\Flagged", "-", "\\Draft", "\\Seen",
             "-", "\\Seen,\\Flagged", "-", "-", "\\Seen", "-", "\\Answered"]
    for i, path in enumerate(messages[:10]):
        lines.append(f"append {flags[i]} {dates[i]}\t{path}")
    # Keywords are created by STORE (c-client's append knows only those
    # the folder has); then some expunged, so UIDs have holes.
    lines += ["set 2 work", "set 3 work,$Forwarded", "set 5 home,$Label1",
              "set 4,7 \\Deleted", "expunge", "clear 1 \\Seen", "set 1 \\Answered,home"]
    _uw_write(program, mail / "inbox", "\n".join(lines) + "\n")
    lines = ["create"] + [f"append {flags[10 + i]} {dates[10 + i]}\t{p}"
                          for i, p in enumerate(messages[10:13])]
    lines += ["set 2 lists,\\Seen"]
    _uw_write(program, mail / "lists", "\n".join(lines) + "\n")
    text = (mail / "inbox").read_bytes()
    assert b"\nX-IMAP: " in text and b"FOLDER INTERNAL DATA" in text
    # Mail delivered after UW-IMAP last wrote the file, as an MDA appends it.
    with open(mail / "inbox", "ab") as f:
        f.write(b"From mda@example.org Sat Mar 21 09:00:00 2009\n"
                + messages[13].read_bytes() + b"\n")
    (mail / ".mailboxlist").write_bytes(b"lists\n")
    return home


def dovecot_view(location: str, tree: dict[str, Path]) -> dict:
    """
    What a private Dovecot with C{mail_location} C{location} shows of
    C{tree} (name under the user's mail directory -> source to copy):
    mailbox -> (UIDVALIDITY, UIDNEXT, UID -> (flags, size, INTERNALDATE)).
    """
    root = Path(tempfile.mkdtemp(prefix="migdove-", dir="/tmp"))
    server = None
    try:
        user = root / "mail" / "u"
        user.mkdir(parents=True)
        for name, src in tree.items():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, user / name)
        server = start_dovecot(root, {"u": "pass"}, location)
        imap = imaplib.IMAP4(server.host, server.port)
        imap.login("u", "pass")
        try:
            return _view(imap)
        finally:
            imap.logout()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _view(imap) -> dict:
    typ, listed = imap.list()
    assert typ == "OK", listed
    out = {}
    for line in listed:
        m = re.match(rb'\(([^)]*)\) "(.)" (.*)$', line)
        if b"\\Noselect" in m.group(1) or b"\\NonExistent" in m.group(1):
            continue
        name = m.group(3).decode()
        typ, _ = imap.select(name, readonly=True)
        assert typ == "OK", name
        uidvalidity = int(imap.response("UIDVALIDITY")[1][0])
        uidnext = int(imap.response("UIDNEXT")[1][0])
        typ, data = imap.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE INTERNALDATE)")
        messages = {}
        for item in data:
            if not item:
                continue
            text = item.decode() if isinstance(item, bytes) else item[0].decode()
            uid = int(re.search(r"UID (\d+)", text).group(1))
            flags = frozenset(re.search(r"FLAGS \(([^)]*)\)", text).group(1).split())
            size = int(re.search(r"RFC822\.SIZE (\d+)", text).group(1))
            when = datetime.strptime(re.search(r'INTERNALDATE "([^"]+)"', text).group(1),
                                     "%d-%b-%Y %H:%M:%S %z")
            messages[uid] = (flags - {"\\Recent"}, size, when.timestamp())
        out[name] = (uidvalidity, uidnext, messages)
    return out


MBOX_AT = "mbox:{d}/mail/%u:INBOX={d}/mail/%u/inbox:INDEX=MEMORY"
MAILDIR_AT = "maildir:{d}/mail/%u/Maildir:INDEX=MEMORY"


def _compare(home: Path) -> dict:
    """Migrate C{home}'s mbox to Maildir; Dovecot's two views, asserted equal."""
    report = run(home, MBOX, MAILDIR)
    assert report.copied > 0
    # UW's subscription file is no mailbox, but Dovecot would list it as one.
    before = dovecot_view(MBOX_AT, {p.name: p for p in (home / "mail").iterdir()
                                    if p.name != ".mailboxlist"})
    after = dovecot_view(MAILDIR_AT, {"Maildir": home / "Maildir"})
    assert _stored(after) == _stored(before)
    return before


def _stored(view: dict) -> dict:
    """
    C{view} without the UIDVALIDITY of mailboxes that never held a
    message: an empty mbox file has no X-IMAPbase, Dovecot keeps that
    UIDVALIDITY only in its own index (which it then gives anew on every
    open with INDEX=MEMORY), so there is none to keep, and no client
    cached a UID under it.
    """
    return {name: (None if (uidnext, messages) == (1, {}) else uidvalidity, uidnext, messages)
            for name, (uidvalidity, uidnext, messages) in view.items()}


def test_dovecot_sees_the_same_after_migrating_dovecots_mbox(tmp_path):
    """Dovecot's own mbox fixture: Dovecot shows the migrated Maildir as it showed the mbox."""
    view = _compare(mbox_home(tmp_path))
    assert set(view) == {"INBOX", "Archive", "Sent", "Ünïcode"} or set(view) == {
        "INBOX", "Archive", "Sent", "&ANw-n&AO8-code"}
    assert sorted(view["INBOX"][2]) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 14]
    assert view["INBOX"][2][10][0] == {"\\Answered", "\\Flagged", "project-x"}


def test_dovecot_sees_the_same_after_migrating_dovecots_maildir_to_mbox(tmp_path):
    """And back: Dovecot's Maildir fixture, migrated to mbox, as Dovecot shows both."""
    home = maildir_home(tmp_path)
    assert run(home, MAILDIR, MBOX).copied > 0
    before = dovecot_view(MAILDIR_AT, {"Maildir": home / "Maildir"})
    # Our own state directory (modseq logs) is no mail; Dovecot would list
    # its files as mailboxes.
    after = dovecot_view(MBOX_AT, {p.name: p for p in (home / "mail").iterdir()
                                   if p.name != ".imapd"})
    assert _stored(after) == _stored(before)
    assert sorted(after["INBOX"][2]) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 14]


def test_dovecot_sees_the_same_after_migrating_a_uw_imap_mbox(tmp_path, uwimap_write):
    """UW-IMAP's mbox (pseudo message, X-UID, X-Keywords, an MDA's late message)."""
    home = uw_home(tmp_path, uwimap_write)
    view = _compare(home)
    uidvalidity, uidnext, inbox = view["INBOX"]
    header = re.search(rb"\nX-IMAP: (\d+) (\d+)", (home / "mail" / "inbox").read_bytes())
    # The pseudo message is no message; its UIDVALIDITY is the folder's, and
    # the MDA's message got the UID after UW's last one.
    assert uidvalidity == int(header.group(1))
    assert sorted(inbox) == [1, 2, 3, 5, 6, 8, 9, 10, int(header.group(2)) + 1]
    assert uidnext == int(header.group(2)) + 2
    assert inbox[1][0] == {"\\Answered", "home"}
    assert inbox[3][0] == {"\\Seen", "\\Answered", "work", "$Forwarded"}
    assert inbox[5][0] == {"home", "$Label1"}
    assert set(view) == {"INBOX", "lists"}
    assert view["lists"][2][2][0] == {"\\Seen", "lists"}
