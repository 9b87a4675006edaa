# -*- test-case-name: tests.storage.migrate.test_migrate_maildirs -*-
"""
Maildirs whose UIDs live elsewhere than in C{dovecot-uidlist}, migrated into
our Maildir (and to mbox): Courier-IMAP's C{courierimapuiddb},
C{courierimapkeywords/} and C{courierimapsubscribed}; the UW-IMAP maildir
driver's C{,u=<uid>} names and C{.uidlast} file (and C{,U<uid>} info fields);
a Maildir with no UIDs at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from storage.maildir.store import MaildirStore
from storage.migrate import courier, uwmaildir

from storage_migrate_testutil import MAILDIR, fingerprint, maildir_view, mbox_view, run

MSG = b"From: a@example.org\nSubject: %s\n\nbody %s\n"


def _maildir(path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def _put(path: Path, name: str, subject: bytes, mtime: int) -> None:
    p = path / name
    p.write_bytes(MSG % (subject, subject))
    os.utime(p, (mtime, mtime))


def courier_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    src = _maildir(home / "Courier")
    _put(src, "cur/1100000000.1.mx:2,S", b"one", 1100000000)
    _put(src, "cur/1100000100.2.mx:2,FR", b"two", 1100000100)
    _put(src, "new/1100000200.3.mx", b"three", 1100000200)  # not in the uiddb yet
    (src / "courierimapuiddb").write_bytes(
        b"1 987654 20\n5 1100000000.1.mx\n9 1100000100.2.mx:2,FR\n")
    kw = src / "courierimapkeywords"
    kw.mkdir()
    (kw / ":list").write_bytes(b"Work\nHome\n\n1100000000.1.mx:0 1\n1100000100.2.mx:1\n")
    # A newer per-message update replaces :list's entry for message two.
    (kw / ".3.1100000100.2.mx").write_bytes(b"Urgent\n$Label1\n")
    sub = _maildir(src / ".Lists.Debian")
    (sub / "courierimapuiddb").write_bytes(b"1 111 8\n7 1100000300.4.mx\n")
    _put(sub, "cur/1100000300.4.mx:2,", b"four", 1100000300)
    (src / "courierimapsubscribed").write_bytes(b"INBOX\nINBOX.Lists.Debian\n")
    return home


def test_courier_uiddb_and_keywords():
    """The file formats as Courier-IMAP writes them."""
    assert courier.parse_uiddb(b"1 42 7\n3 a.b.c\n6 d.e:2,S\n") == (42, 7, {"a.b.c": 3, "d.e": 6})
    assert courier.parse_subscribed(b"INBOX\nINBOX.&ANw-n&AO8-code.Sub\n") == [
        "INBOX", "Ünïcode/Sub"]


def test_courier_maildir_into_ours(tmp_path):
    """UIDs, UIDVALIDITY, UIDNEXT, keywords (list and update files), subscriptions."""
    home = courier_home(tmp_path)
    before = fingerprint(home / "Courier")
    report = run(home, "maildir:~/Courier", MAILDIR)
    assert fingerprint(home / "Courier") == before
    assert {m.name: m.kind for m in report.mailboxes} == {"INBOX": "courier",
                                                           "Lists/Debian": "courier"}
    view = maildir_view(home / "Maildir")
    assert view["INBOX"][:3] == (987654, 21, {
        5: {"\\Seen", "Work", "Home"},
        9: {"\\Flagged", "\\Answered", "Urgent", "$Label1"},
        20: set()})
    assert view["Lists/Debian"][:3] == (111, 8, {7: set()})
    store = MaildirStore(str(home / "Maildir"), "u")
    assert sorted(store.subscriptions()) == ["INBOX", "Lists/Debian"]
    box = store.open("INBOX", readonly=True)
    box.sync()
    assert box.read(9) == (MSG % (b"two", b"two")).replace(b"\n", b"\r\n")
    assert box.record(9).internaldate.timestamp() == 1100000100
    # And once more: nothing to do.
    assert not run(home, "maildir:~/Courier", MAILDIR).changed


def uw_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    src = _maildir(home / "UW")
    (src / ".uidlast.0000000012.0000004242").write_bytes(b"")
    _put(src, "cur/1030712092.123.uw,u=3:2,S", b"three", 1)
    _put(src, "cur/1030712093.124.uw,u=12:2,FR", b"twelve", 1)
    _put(src, "new/1030712099.125.uw", b"new", 1)
    return home


def test_uw_maildir_names():
    """Where the UW-IMAP maildir driver keeps a UID, and the other spellings met."""
    assert uwmaildir.uid_of_name("1030712092.123.uw,u=3:2,S") == 3
    assert uwmaildir.uid_of_name("1030712092.123.uw:2,S,U1030712") == 1030712
    assert uwmaildir.uid_of_name("1030712092.123.uw:2,S,U=77") == 77
    assert uwmaildir.uid_of_name("1030712092.123.uw,S=300:2,S") is None


def test_uw_maildir_into_ours(tmp_path):
    """UIDs from the names, UIDVALIDITY and last UID from .uidlast, new mail after it."""
    home = uw_home(tmp_path)
    before = fingerprint(home / "UW")
    report = run(home, "maildir:~/UW", MAILDIR)
    assert fingerprint(home / "UW") == before
    assert report.mailboxes[0].kind == "uw-maildir"
    view = maildir_view(home / "Maildir")
    assert view["INBOX"][:3] == (4242, 14, {
        3: {"\\Seen"}, 12: {"\\Flagged", "\\Answered"}, 13: set()})
    box = MaildirStore(str(home / "Maildir"), "u").open("INBOX", readonly=True)
    box.sync()
    # The driver's INTERNALDATE: the time the file name starts with.
    assert box.record(12).internaldate.timestamp() == 1030712093


def test_uw_maildir_to_mbox(tmp_path):
    """The same Maildir straight to mbox keeps the same UIDs."""
    home = uw_home(tmp_path)
    run(home, "maildir:~/UW", "mbox:~/mail:INBOX=~/mail/inbox")
    view = mbox_view(home / "mail", home / "mail" / "inbox")
    assert view["INBOX"][:3] == (4242, 14, {
        3: {"\\Seen"}, 12: {"\\Flagged", "\\Answered"}, 13: set()})


def test_maildir_without_uids(tmp_path):
    """No UID state at all: UIDs from 1 in (mtime, name) order, a new UIDVALIDITY."""
    home = tmp_path / "home"
    src = _maildir(home / "Plain")
    _put(src, "cur/b:2,S", b"second", 2000)
    _put(src, "cur/a:2,", b"first", 1000)
    report = run(home, "maildir:~/Plain", MAILDIR)
    assert report.mailboxes[0].kind == "maildir"
    view = maildir_view(home / "Maildir")
    assert view["INBOX"][1:3] == (3, {1: set(), 2: {"\\Seen"}})


def test_maildir_without_uids_resumes(tmp_path, monkeypatch):
    """
    A Maildir nobody gave UIDs stores no UIDVALIDITY: each run makes one
    up (the time).  The next run keeps the one the first gave the target,
    instead of refusing it as "another mailbox" (no run could resume or
    follow new mail); new mail is copied after the rest.
    """
    from storage.migrate import sources

    home = tmp_path / "home"
    src = _maildir(home / "Plain")
    _put(src, "cur/a:2,S", b"first", 1000)
    monkeypatch.setattr(sources, "_now", lambda: 1111)
    run(home, "maildir:~/Plain", MAILDIR)
    _put(src, "new/b", b"second", 2000)
    monkeypatch.setattr(sources, "_now", lambda: 2222)
    report = run(home, "maildir:~/Plain", MAILDIR)
    assert (report.mailboxes[0].uidvalidity, report.copied) == (1111, 1)
    assert maildir_view(home / "Maildir")["INBOX"][:3] == (1111, 3, {1: {"\\Seen"}, 2: set()})
    assert not run(home, "maildir:~/Plain", MAILDIR).changed
