"""
imapd-admin force-resync and index rebuild|remove (issue 16), on Maildir
and mbox: a damaged uidlist or X-IMAPbase/X-UID is repaired with every
UID and the UIDVALIDITY kept; the node's index is dropped and refilled.
"""

import json
import os
import re

import pytest

from index import index_path

from .helpers import admin, deliver, make_site, message

pytestmark = pytest.mark.parametrize("kind", ["maildir", "mbox"])


@pytest.fixture
def site(tmp_path, kind):
    """alice's INBOX with UIDs 1, 2, 4, 5 (3 and 6 expunged), UIDNEXT 7."""
    config = make_site(tmp_path, kind)
    uids = deliver(tmp_path, kind, "alice",
                   messages=[(message(f"m{i}"), ("\\Seen",) if i == 1 else (), None)
                             for i in range(6)])
    assert uids == [1, 2, 3, 4, 5, 6]
    assert admin(config, "expunge", "-u", "alice", "INBOX", "UID 3,6")[0] == 0
    return tmp_path, config


def view(config):
    """What a login sees: (status, UIDs, UIDVALIDITY, UIDNEXT, seen UIDs)."""
    status, out, err = admin(config, "mailbox", "status", "-u", "alice", "INBOX", "--json")
    if status:
        return status, err
    row = json.loads(out)[0]
    uids = [int(u) for u in admin(config, "search", "-u", "alice", "INBOX", "ALL")[1].split()]
    seen = [int(u) for u in admin(config, "search", "-u", "alice", "INBOX", "SEEN")[1].split()]
    return 0, uids, row["uidvalidity"], row["uidnext"], seen


def mail_file(tmp, kind):
    home = tmp / "home" / "alice"
    return home / "Maildir" / "dovecot-uidlist" if kind == "maildir" else home / "inbox"


def modseq_file(tmp, kind):
    home = tmp / "home" / "alice"
    return (home / "Maildir" / "imapd-modseq" if kind == "maildir"
            else home / "mail" / ".imapd" / "INBOX.modseq")


def damage_numbers(tmp, kind, validity=False):
    """
    Garble the last UID given (and with C{validity} the UIDVALIDITY) where
    the store keeps them; for a Maildir also add a line of NUL bytes,
    repeat a line and swap two.
    """
    path = mail_file(tmp, kind)
    data = path.read_bytes()
    if kind == "maildir":
        head, *lines = data.decode().rstrip("\n").split("\n")
        head = re.sub(r" N(\d+)", r" N\1x", head)
        if validity:
            head = re.sub(r" V(\d+)", r" V?\1", head)
        lines = [lines[1], lines[0], "\0" * 40, *lines[2:], lines[3]]
        path.write_bytes(("\n".join([head, *lines]) + "\n").encode())
    else:
        pattern = rb"(X-IMAP: )(\d+) (\d+)" if validity else rb"(X-IMAP: \d+ )(\d+)"
        damaged, n = re.subn(pattern, rb"\1#\2 x", data, count=1)
        assert n == 1
        path.write_bytes(damaged)


def test_force_resync_keeps_uids_of_a_damaged_store(site, kind):
    """
    A garbled uidlist header with a NUL line, a repeated and swapped line
    (Maildir), or a garbled X-IMAP last UID (mbox) makes the mailbox
    unusable or renumbered; force-resync gives back the same UIDs,
    UIDVALIDITY, UIDNEXT and flags.

    (The mbox is read by the store's parser, not by a login: a login's
    sync would start the modseq log again under the UIDVALIDITY it made
    up, and the repair would lose its witness of the expunged UID 6; see
    L{storage.mbox.repair}.)
    """
    from storage.mbox.state import parse

    tmp, config = site
    before = view(config)
    assert before[:4] == (0, [1, 2, 4, 5], before[2], 7)
    damage_numbers(tmp, kind)
    if kind == "maildir":
        assert view(config)[0] == 2  # BrokenMailbox: unusable
    else:
        renumbered = [e.uid for e in parse(mail_file(tmp, kind).read_bytes(), 1).entries]
        assert renumbered == [1, 2, 3, 4, 5]  # the pseudo message shown, all renumbered
    status, out, err = admin(config, "force-resync", "-u", "alice", "INBOX")
    assert status == 0, err
    what = "dovecot-uidlist" if kind == "maildir" else "X-IMAPbase/X-UID"
    assert out == (f"INBOX\trepaired {what}\tuidvalidity={before[2]} uidnext=7 "
                   f"messages=4\n")
    assert err.startswith("imapd-admin: alice INBOX: ") and "unreadable" in err
    assert view(config) == before
    # Sound now: a second run changes nothing.
    assert admin(config, "force-resync", "-u", "alice", "INBOX")[1].split("\t")[1] == "sound"
    # New mail goes on after the last UID ever given.
    assert deliver(tmp, kind, "alice", messages=[(message("new"), (), None)]) == [7]


def test_force_resync_recovers_uidvalidity_from_the_modseq_log(site, kind):
    """An unreadable UIDVALIDITY is taken from the mailbox's modseq log."""
    tmp, config = site
    before = view(config)
    damage_numbers(tmp, kind, validity=True)
    status, out, err = admin(config, "force-resync", "-u", "alice", "INBOX", "--json")
    assert status == 0, err
    row = json.loads(out)[0]
    assert f"UIDVALIDITY {before[2]} from the modseq log" in row["problems"]
    assert view(config) == before


def test_force_resync_without_witness_needs_uidvalidity(site, kind):
    """
    With the UIDVALIDITY unreadable and no modseq log, nothing is written
    and one line asks for --uidvalidity; given, the UIDs are kept, and
    the unknown last UID costs a gap, never an expunged UID given again.
    """
    tmp, config = site
    before = view(config)
    damage_numbers(tmp, kind, validity=True)
    os.unlink(modseq_file(tmp, kind))
    damaged = mail_file(tmp, kind).read_bytes()
    status, out, err = admin(config, "force-resync", "-u", "alice", "INBOX")
    assert (status, out) == (2, "")
    assert err.count("\n") == 1 and "give the one clients know (--uidvalidity)" in err
    assert mail_file(tmp, kind).read_bytes() == damaged
    status, _, err = admin(config, "force-resync", "-u", "alice", "INBOX",
                           "--uidvalidity", str(before[2]))
    assert status == 0, err
    assert view(config)[:3] == before[:3]
    # The last UID given (6, expunged) is unreadable too: UIDNEXT leaves a
    # gap rather than give 6 again.
    assert view(config)[3] > 1000 and "no expunged UID is given again" in err
    status, _, err = admin(config, "force-resync", "-u", "alice", "INBOX", "--uidvalidity", "x")
    assert status == 2 and "not a UIDVALIDITY" in err and err.count("\n") == 1


def test_force_resync_after_the_folder_data_is_deleted(site, kind):
    """
    mbox: the pseudo message (X-IMAP) deleted by a mail program; Maildir:
    the uidlist's header line lost.  UIDVALIDITY and UIDNEXT come from
    the modseq log (UID 6 was expunged: UIDNEXT stays 7).

    (For mbox the repair has to come before the next login: a session
    reads a file without X-IMAPbase as new to IMAP, as Dovecot does, and
    its sync starts the modseq log again under the new UIDVALIDITY.)
    """
    from storage.mbox.state import parse

    tmp, config = site
    before = view(config)
    path = mail_file(tmp, kind)
    data = path.read_bytes()
    if kind == "mbox":
        second = data.index(b"\nFrom ", 1) + 1
        path.write_bytes(data[second:])
        state = parse(path.read_bytes(), 1)
        assert [e.uid for e in state.entries] == [1, 2, 3, 4]  # what a login would show
    else:
        path.write_bytes(data[data.index(b"\n") + 1:])
        assert view(config) != before
    status, _, err = admin(config, "force-resync", "-u", "alice", "INBOX")
    assert status == 0, err
    assert view(config) == before


def test_force_resync_every_mailbox_and_not_found(site, kind):
    """'*' resyncs every mailbox; an unknown mailbox or user is status 1."""
    tmp, config = site
    deliver(tmp, kind, "alice", "Work", [(message("w"), (), None)], create=True)
    status, out, _ = admin(config, "force-resync", "-u", "alice", "*")
    assert status == 0 and sorted(line.split("\t")[0] for line in out.splitlines()) == [
        "INBOX", "Work"]
    assert admin(config, "force-resync", "-u", "alice", "Nope")[0] == 1
    assert admin(config, "force-resync", "-u", "nobody", "INBOX")[0] == 1


def test_index_rebuild_and_remove(site, kind):
    """
    rebuild fills the node's index for every message (FETCH and SEARCH
    rows); remove deletes its files; searches answer the same throughout.
    """
    import sqlite3

    from imapd.cache import mailbox_identity
    from imapd.cache import _Located

    tmp, config = site
    where = (tmp / "home/alice/Maildir" if kind == "maildir" else tmp / "home/alice/inbox")
    db = index_path(str(tmp / "index"), mailbox_identity("alice", _Located("INBOX", str(where))))
    status, out, err = admin(config, "index", "rebuild", "-u", "alice", "INBOX")
    assert (status, out, err) == (0, "rebuilt\tINBOX\tmessages=4\n", "")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT uid, envelope IS NOT NULL, bodystructure IS NOT NULL, "
                            "header IS NOT NULL, search_subject FROM message ORDER BY uid"
                            ).fetchall()
    assert [r[:4] for r in rows] == [(u, 1, 1, 1) for u in (1, 2, 4, 5)]
    assert all("m" in r[4] for r in rows)
    found = admin(config, "search", "-u", "alice", "INBOX", "SUBJECT", "m4")
    assert found == (0, "5\n", "")
    status, out, _ = admin(config, "index", "remove", "-u", "alice", "--json")
    assert status == 0 and [r["mailbox"] for r in json.loads(out)] == ["INBOX"]
    assert json.loads(out)[0]["freed_bytes"] > 0 and not os.path.exists(db)
    assert admin(config, "search", "-u", "alice", "INBOX", "SUBJECT", "m4") == found
    assert admin(config, "index", "rebuild", "-u", "alice", "Nope")[0] == 1
    assert admin(config, "index", "remove", "-u", "alice", "Nope")[0] == 1


def test_dovecot_reads_the_repaired_store(site, kind):
    """
    Dovecot 2.3, given the repaired Maildir or mbox, shows the UIDs,
    UIDVALIDITY and UIDNEXT clients knew before the damage.
    """
    import imaplib
    import shutil

    from tests.dovecot_helpers import start_dovecot

    import tempfile
    from pathlib import Path

    tmp, config = site
    before = view(config)
    damage_numbers(tmp, kind)
    assert admin(config, "force-resync", "-u", "alice", "INBOX")[0] == 0
    # Dovecot's own user must reach it: not under pytest's 0700 directory.
    root = Path(tempfile.mkdtemp(prefix="resync-dovecot-", dir="/tmp"))
    home = tmp / "home" / "alice"
    if kind == "maildir":
        (root / "mail").mkdir()
        shutil.copytree(home / "Maildir", root / "mail" / "alice")
        location = "maildir:{d}/mail/%u"
    else:
        (root / "mail").mkdir()
        shutil.copytree(home / "mail", root / "mail" / "alice")
        shutil.copy(home / "inbox", root / "mail" / "alice-inbox")
        location = "mbox:{d}/mail/%u:INBOX={d}/mail/%u-inbox"
    dovecot = start_dovecot(root, {"alice": "pw"}, location)
    try:
        client = imaplib.IMAP4(dovecot.host, dovecot.port)
        client.login("alice", "pw")
        status = client.status("INBOX", "(UIDVALIDITY UIDNEXT)")[1][0].decode()
        client.select("INBOX", readonly=True)
        uids = [int(u) for u in client.uid("SEARCH", "ALL")[1][0].split()]
        client.logout()
    finally:
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert uids == before[1]
    assert f"UIDVALIDITY {before[2]}" in status and "UIDNEXT 7" in status
