# -*- test-case-name: tests.storage.migrate.test_migrate -*-
"""
L{storage.migrate}: mbox (UW-IMAP and Dovecot) to Maildir and back keeps
UIDVALIDITY, every UID, UIDNEXT, flags, keywords and subscriptions; never
writes the source; a second run writes nothing; a run killed half-way is
completed by the next without duplicates or renumbering; a changed source
is followed, a renumbered one refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.maildir.store import MaildirStore
from storage.maildir.uidlist import UidlistFile
from storage.mbox.store import MboxStore
from storage.migrate.engine import MigrationError

from storage_migrate_testutil import (MAILDIR, MBOX, fingerprint, maildir_home, maildir_view,
                                      mbox_home, mbox_view, run)

# What Dovecot 2.3.19 showed of its fixture (testdata/README.md;
# tests/storage/maildir/test_maildir_fixture.py holds the same facts).
INBOX = {
    1: set(), 2: {"\\Seen"}, 3: {"\\Seen", "\\Answered"}, 4: {"\\Flagged"},
    5: {"\\Seen", "$Forwarded"}, 6: {"\\Draft"}, 8: {"$Junk"}, 9: {"project-x", "\\Seen"},
    10: {"\\Answered", "\\Flagged", "project-x"}, 11: set(), 12: {"\\Seen"}, 14: {"$Label1"},
}


def test_mbox_to_maildir_keeps_uids_flags_and_subscriptions(tmp_path):
    """Dovecot's mbox fixture, migrated: the Maildir shows what the mbox showed."""
    home = mbox_home(tmp_path)
    before = fingerprint(home / "mail")
    report = run(home, MBOX, MAILDIR)
    assert fingerprint(home / "mail") == before, "the source was written"
    assert report.copied == 15
    assert {m.name: m.kind for m in report.mailboxes} == {
        "INBOX": "mbox", "Archive": "mbox", "Sent": "mbox", "Ünïcode": "mbox"}
    source = mbox_view(home / "mail", home / "mail" / "inbox")
    target = maildir_view(home / "Maildir")
    assert target == source
    assert {u: set(f) for u, f in target["INBOX"][2].items()} == INBOX
    assert target["INBOX"][:2] == (1795428228, 15)
    assert sorted(MaildirStore(str(home / "Maildir"), "u").subscriptions()) == sorted(
        ["INBOX", "Archive", "Sent", "Ünïcode"])


def test_maildir_to_mbox_keeps_uids_flags_and_subscriptions(tmp_path):
    """Dovecot's Maildir fixture (uidlist with lines of expunged files), to mbox."""
    home = maildir_home(tmp_path)
    before = fingerprint(home / "Maildir")
    report = run(home, MAILDIR, MBOX)
    assert fingerprint(home / "Maildir") == before, "the source was written"
    assert {m.name: m.kind for m in report.mailboxes}["INBOX"] == "dovecot-uidlist"
    target = mbox_view(home / "mail", home / "mail" / "inbox")
    source = maildir_view(home / "Maildir")
    assert target == source
    assert {u: set(f) for u, f in target["INBOX"][2].items()} == INBOX
    assert set(MboxStore(str(home / "mail"), "u").subscriptions()) == {
        "INBOX", "Archive", "Sent", "Ünïcode"}
    # The mbox is one Dovecot and UW-IMAP read: X-IMAPbase with the UIDVALIDITY
    # and last UID, X-UID on each message.
    text = (home / "mail" / "inbox").read_bytes()
    base = b"%d %010d" % (source["INBOX"][0], 14)
    assert b"X-IMAP: " + base in text or b"X-IMAPbase: " + base in text
    assert text.count(b"\nX-UID: ") == 12


def test_round_trip_mbox_maildir_mbox(tmp_path):
    """mbox -> Maildir -> mbox: the last shows what the first did."""
    home = mbox_home(tmp_path)
    run(home, MBOX, MAILDIR)
    run(home, MAILDIR, "mbox:~/back:INBOX=~/back/inbox")
    assert mbox_view(home / "back", home / "back" / "inbox") == mbox_view(
        home / "mail", home / "mail" / "inbox")


@pytest.mark.parametrize("source,target,home_of", [
    (MBOX, MAILDIR, mbox_home), (MAILDIR, MBOX, maildir_home)])
def test_second_run_writes_nothing(tmp_path, source, target, home_of):
    """Run twice: the second reports nothing to do and leaves every file as it was."""
    home = home_of(tmp_path)
    first = run(home, source, target)
    assert first.changed
    top = home / ("Maildir" if target == MAILDIR else "mail")
    after_first = fingerprint(top)
    second = run(home, source, target)
    assert not second.changed and second.copied == 0
    assert fingerprint(top) == after_first


UW_MBOX = b"""\
From MAILER-DAEMON Fri Jul  8 12:08:34 2011
Date: 08 Jul 2011 12:08:34 +0000
From: Mail System Internal Data <MAILER-DAEMON@uw.example>
Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA
Message-ID: <1310126914@uw.example>
X-IMAP: 1310126914 0000000010 work home
Status: RO

This text is part of the internal format of your mail folder, and is not
a real message.  It is created automatically by the mail system software.
If deleted, important folder data will be lost, and it will be re-created
with the data reset to initial values.

From alice@uw.example Fri Jul  8 12:09:00 2011
Subject: three
Status: RO
X-Status: AF
X-Keywords: work
X-UID: 3

three
From bob@uw.example Sat Jul  9 12:09:00 2011
Subject: seven
Status: O
X-Keywords: work home
X-UID: 7

>From the body
seven
From carol@uw.example Sun Jul 10 12:09:00 2011
Subject: new since UW last ran

new
"""


def test_uw_imap_mbox_with_pseudo_message(tmp_path):
    """
    UW-IMAP's layout: the pseudo message holds UIDVALIDITY, the last UID and
    the keywords; it is not migrated; a message without X-UID gets the UID
    UW would give it (after the last UID).
    """
    home = tmp_path / "home"
    (home / "mail").mkdir(parents=True)
    (home / "mail" / "inbox").write_bytes(UW_MBOX)
    (home / "mail" / ".mailboxlist").write_bytes(b"INBOX\n")
    report = run(home, MBOX, MAILDIR)
    assert [(m.name, m.uidvalidity, m.uidnext, m.copied) for m in report.mailboxes] == [
        ("INBOX", 1310126914, 12, 3)]
    target = maildir_view(home / "Maildir")
    assert target["INBOX"][:3] == (1310126914, 12, {
        3: {"\\Seen", "\\Answered", "\\Flagged", "work"}, 7: {"work", "home"}, 11: set()})
    box = MaildirStore(str(home / "Maildir"), "u").open("INBOX", readonly=True)
    box.sync()
    assert box.read(7) == b"Subject: seven\r\n\r\nFrom the body\r\nseven\r\n"
    assert MaildirStore(str(home / "Maildir"), "u").subscriptions() == ["INBOX"]


def test_killed_run_resumes_without_duplicates(tmp_path, monkeypatch):
    """
    A run killed after writing message files but before their uidlist
    lines (the one window the order leaves), then a run killed between two
    batches: the third run completes with every UID once and no stray file.
    """
    home = mbox_home(tmp_path)
    real_write = UidlistFile.write
    calls = []

    def dying_write(self, uidlist, added=()):
        calls.append(len(added))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_write(self, uidlist, added)

    monkeypatch.setattr(UidlistFile, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run(home, MBOX, MAILDIR, batch=5)
    monkeypatch.setattr(UidlistFile, "write", real_write)
    cur = home / "Maildir" / "cur"
    assert len(os.listdir(cur)) == 10, "the second batch's files were written before the kill"
    calls.clear()
    report = run(home, MBOX, MAILDIR, batch=5)
    assert report.copied == 10  # 7 of INBOX (5 files found again) and 3 of Archive
    assert len(os.listdir(cur)) == 12
    assert maildir_view(home / "Maildir") == mbox_view(home / "mail", home / "mail" / "inbox")


def test_killed_mbox_target_run_resumes(tmp_path, monkeypatch):
    """A Maildir -> mbox run killed after its first batch is completed by the next."""
    from storage.migrate import targets

    home = maildir_home(tmp_path)
    real_place = targets.MboxTarget.place
    calls = []

    def dying_place(self, name, source, messages, last=True):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_place(self, name, source, messages, last)

    monkeypatch.setattr(targets.MboxTarget, "place", dying_place)
    with pytest.raises(KeyboardInterrupt):
        run(home, MAILDIR, MBOX, batch=5)
    monkeypatch.setattr(targets.MboxTarget, "place", real_place)
    report = run(home, MAILDIR, MBOX, batch=5)
    assert report.copied == 10
    inbox = (home / "mail" / "inbox").read_bytes()
    assert inbox.count(b"\nX-UID: ") == 12
    assert mbox_view(home / "mail", home / "mail" / "inbox") == maildir_view(home / "Maildir")


def test_changes_to_the_source_between_runs_are_followed(tmp_path):
    """Flags changed, a message expunged and one delivered in the source: the next run follows."""
    home = mbox_home(tmp_path)
    run(home, MBOX, MAILDIR)
    store = MboxStore(str(home / "mail"), "u", inbox=str(home / "mail" / "inbox"), fsync=False)
    box = store.open("INBOX")
    box.sync()
    tx = box.transaction()
    tx.set_flags(1, frozenset({"\\Seen", "$Label1"}))
    tx.expunge(4)
    tx.append(b"Subject: late\r\n\r\nlate\r\n", ["\\Flagged"])
    tx.commit()
    box.close()
    report = run(home, MBOX, MAILDIR)
    inbox = report.mailboxes[0]
    assert (inbox.copied, inbox.flags_updated, inbox.expunged) == (1, 1, 1)
    target = maildir_view(home / "Maildir")["INBOX"]
    assert target[2][1] == {"\\Seen", "$Label1"}
    assert 4 not in target[2] and target[2][15] == {"\\Flagged"}
    assert target[1] == 16
    assert maildir_view(home / "Maildir") == mbox_view(home / "mail", home / "mail" / "inbox")


def test_renumbered_source_is_refused(tmp_path):
    """Another message under a UID already copied: the run stops, the target is left alone."""
    home = tmp_path / "home"
    (home / "mail").mkdir(parents=True)
    inbox = home / "mail" / "inbox"
    inbox.write_bytes(UW_MBOX)
    run(home, MBOX, MAILDIR)
    before = fingerprint(home / "Maildir")
    inbox.write_bytes(UW_MBOX.replace(b"three\n", b"three, longer now\n"))
    with pytest.raises(MigrationError, match="UID 3 is another message"):
        run(home, MBOX, MAILDIR)
    assert fingerprint(home / "Maildir") == before


def test_target_under_another_uidvalidity_is_refused(tmp_path):
    """A target mailbox with mail of its own is not overwritten or mixed in."""
    home = mbox_home(tmp_path)
    store = MaildirStore(str(home / "Maildir"), "u", fsync=False)
    box = store.open("INBOX")
    tx = box.transaction()
    tx.append(b"Subject: mine\r\n\r\nmine\r\n")
    tx.commit()
    with pytest.raises(MigrationError, match="UIDVALIDITY"):
        run(home, MBOX, MAILDIR)
    assert len(os.listdir(home / "Maildir" / "new")) + len(
        os.listdir(home / "Maildir" / "cur")) == 1


def test_modseq_log_of_this_server_is_carried(tmp_path):
    """
    An mbox this server served has a modseq log: the Maildir shows the same
    HIGHESTMODSEQ and per-message MODSEQs (RFC 7162 clients keep their cache).
    """
    home = mbox_home(tmp_path)
    store = MboxStore(str(home / "mail"), "u", inbox=str(home / "mail" / "inbox"), fsync=False)
    box = store.open("INBOX")
    box.sync()
    tx = box.transaction()
    tx.set_flags(2, frozenset({"\\Seen", "\\Flagged"}))
    tx.commit()
    before = box.sync()
    box.close()
    run(home, MBOX, MAILDIR)
    after = MaildirStore(str(home / "Maildir"), "u").open("INBOX").sync()
    assert after.highestmodseq == before.highestmodseq
    assert {m.uid: m.modseq for m in after.messages} == {m.uid: m.modseq for m in before.messages}


def test_restore_refuses_uids_below_next_uid(tmp_path):
    """A UID the target gave up (expunged there) is not given again."""
    home = mbox_home(tmp_path)
    run(home, MBOX, MAILDIR)
    store = MaildirStore(str(home / "Maildir"), "u", fsync=False)
    box = store.open("INBOX")
    box.sync()
    tx = box.transaction()
    tx.expunge(2)
    tx.commit()
    report = run(home, MBOX, MAILDIR)
    assert report.mailboxes[0].refused == (2,)
    assert 2 not in maildir_view(home / "Maildir")["INBOX"][2]


def test_files_are_flushed_once_per_batch_before_the_uidlist_names_them(tmp_path, monkeypatch):
    """
    Each batch's files reach the disk (data and renames) in one flush,
    before the uidlist line that makes them messages: no per-file fsync
    (10,000 of them made a migration take minutes), and no line for a file
    a power cut could still take away.
    """
    from storage.maildir import restore as restore_module

    home = mbox_home(tmp_path)
    events: list = []

    def syncfs(fd):
        events.append(("flush", len(os.listdir(home / "Maildir" / "cur"))))
        return 0

    real_write = UidlistFile.write

    def write(self, uidlist, added=()):
        if added:
            events.append(("uidlist", len(added)))
        return real_write(self, uidlist, added)

    real_fsync = os.fsync

    def fsync(fd):
        # Control files (uidlist, keywords, modseq log) keep theirs.
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    monkeypatch.setattr(restore_module, "_syncfs", syncfs)
    monkeypatch.setattr(UidlistFile, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    run(home, MBOX, MAILDIR, batch=5)
    inbox = [e for e in events if e[0] != "fsync"][:6]
    assert inbox == [("flush", 5), ("uidlist", 5), ("flush", 10), ("uidlist", 5),
                     ("flush", 12), ("uidlist", 2)], events
    messages = str(home / "Maildir" / "cur"), str(home / "Maildir" / "tmp")
    assert not [e for e in events if e[0] == "fsync" and e[1].startswith(messages)]


def test_mbox_target_is_read_once_not_once_per_batch(tmp_path, monkeypatch):
    """
    The mbox target stays open from batch to batch: each batch appends
    after what the store already knows, instead of parsing the whole
    growing file again (quadratic: a 10,000-message migration took minutes).
    """
    from storage.mbox import mailbox as mbox_mailbox
    from storage.mbox import state as mbox_state

    home = maildir_home(tmp_path)
    parsed = []
    real_parse = mbox_state.parse_file

    def parse_file(fd, start, end, *args, **kwargs):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/inbox"):
            parsed.append(end - start)
        return real_parse(fd, start, end, *args, **kwargs)

    monkeypatch.setattr(mbox_state, "parse_file", parse_file)
    monkeypatch.setattr(mbox_mailbox, "parse_file", parse_file)
    report = run(home, MAILDIR, MBOX, batch=2)
    assert report.copied == 15
    # Each byte of the file is parsed about once (the batches' appends),
    # not once per later batch (that was 5 times the file here, with 8 batches).
    size = os.path.getsize(home / "mail" / "inbox")
    assert sum(parsed) <= 2 * size, (parsed, size)
    assert mbox_view(home / "mail", home / "mail" / "inbox") == maildir_view(home / "Maildir")


def test_mbox_target_append_torn_by_a_kill_is_placed_again(tmp_path):
    """
    A process that dies in the middle of an mbox append (here: a forked
    run that exits on the spot, half way through its second batch's
    bytes, without any cleanup) leaves whole messages of the torn batch in
    the file with a journal.  The next run must not count them as placed:
    the store's repair takes them away, and then they were never copied
    again ("refused"), lost from the target.
    """
    from storage.mbox import journal, rewrite

    home = maildir_home(tmp_path)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            appends = []
            real_append, real_pwrite = rewrite.append_bytes, journal._pwrite_all

            def append_bytes(fd, old_size, data, *args):
                appends.append(0)
                return real_append(fd, old_size, data, *args)

            def pwrite_all(fd, data, offset):
                real_pwrite(fd, data, offset)
                if len(appends) == 2:
                    appends[-1] += 1
                    if appends[-1] == 6:
                        os._exit(9)  # killed: no truncation, the journal stays

            rewrite.append_bytes, journal._pwrite_all = append_bytes, pwrite_all
            run(home, MAILDIR, MBOX, batch=5)
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] >> 8 == 9, "the child was to die in its second append"
    report = run(home, MAILDIR, MBOX, batch=5)
    assert report.mailboxes[0].refused == ()
    assert mbox_view(home / "mail", home / "mail" / "inbox") == maildir_view(home / "Maildir")


def test_modseqs_stay_the_sources_when_a_later_run_follows_flag_changes(tmp_path):
    """
    Migrate early, let the user go on with the source (two flag changes
    of one message, an expunge: new MODSEQs there), migrate again for the
    switch: the
    target shows the source's MODSEQs and HIGHESTMODSEQ, not ones its own
    flag changes made up (a QRESYNC client would fetch everything again).
    """
    home = mbox_home(tmp_path)
    store = MboxStore(str(home / "mail"), "u", inbox=str(home / "mail" / "inbox"), fsync=False)
    box = store.open("INBOX")
    box.sync()
    run(home, MBOX, MAILDIR)
    for flags in ({"\\Seen"}, {"\\Flagged"}):  # two changes; the target sees the last
        tx = box.transaction()
        tx.set_flags(3, frozenset(flags))
        tx.commit()
        box.sync()
    tx = box.transaction()
    tx.expunge(5)
    tx.commit()
    before = box.sync()
    box.close()
    report = run(home, MBOX, MAILDIR)
    assert (report.mailboxes[0].flags_updated, report.mailboxes[0].expunged) == (1, 1)
    after = MaildirStore(str(home / "Maildir"), "u").open("INBOX").sync()
    assert after.highestmodseq == before.highestmodseq
    assert {m.uid: m.modseq for m in after.messages} == {m.uid: m.modseq for m in before.messages}
