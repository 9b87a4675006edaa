# -*- test-case-name: tests.storage.mbox.test_mbox_location -*-
"""
Where the mbox store puts its folders: C{mbox:~/mail} falls back to an
existing C{~/Mail} when C{~/mail} is missing and the other way round (what
pine and mutt users rely on, and Dovecot's autodetection tries), and the
C{REWRITE_IN_PLACE} location option.
"""

from __future__ import annotations

import os

import pytest

from storage.location import parse_location
from storage.mbox import open_mbox_store
from storage.mbox.store import folder_root

from storage_mbox_testutil import write

FOLDER = (b"From a@b Mon Nov 23 10:00:00 2026\nSubject: kept\n\nhello\n")


def _open(home, spec: str = "mbox:~/mail:INBOX=~/inbox"):
    return open_mbox_store(parse_location(spec, "joe", str(home)), "joe", None)


@pytest.mark.parametrize("configured, existing", [("mail", "Mail"), ("Mail", "mail")])
def test_missing_folder_dir_falls_back_to_the_other_case(tmp_path, configured, existing):
    """The configured ~/mail (or ~/Mail) is missing: the other one is used, none is created."""
    os.makedirs(tmp_path / existing)
    write(str(tmp_path / existing / "saved"), FOLDER)
    store = _open(tmp_path, f"mbox:~/{configured}:INBOX=~/inbox")
    assert store.root == str(tmp_path / existing)
    assert sorted(os.listdir(tmp_path)) == sorted([existing])
    assert [i.name for i in store.list_mailboxes()] == ["INBOX", "saved"]
    box = store.open("saved", readonly=True)
    assert [box.read(m.uid) for m in box.sync().messages] == [b"Subject: kept\r\n\r\nhello\r\n"]


def test_configured_folder_dir_wins_when_both_exist(tmp_path):
    """With both ~/mail and ~/Mail present, the configured one is used."""
    os.makedirs(tmp_path / "mail")
    os.makedirs(tmp_path / "Mail")
    write(str(tmp_path / "Mail" / "other"), FOLDER)
    store = _open(tmp_path)
    assert store.root == str(tmp_path / "mail")
    assert [i.name for i in store.list_mailboxes()] == ["INBOX"]


def test_neither_exists_creates_the_configured_one(tmp_path):
    """No ~/mail and no ~/Mail: the configured directory is created."""
    store = _open(tmp_path, "mbox:~/Mail:INBOX=~/inbox")
    assert store.root == str(tmp_path / "Mail")
    assert os.path.isdir(tmp_path / "Mail") and not os.path.exists(tmp_path / "mail")


def test_other_names_never_fall_back(tmp_path):
    """Only the mail/Mail pair falls back; ~/folders is created even if ~/Mail exists."""
    os.makedirs(tmp_path / "Mail")
    assert folder_root(str(tmp_path / "folders")) == str(tmp_path / "folders")
    store = _open(tmp_path, "mbox:~/folders:INBOX=~/inbox")
    assert store.root == str(tmp_path / "folders") and os.path.isdir(tmp_path / "folders")


def test_default_inbox_follows_the_fallback(tmp_path):
    """Without INBOX=, INBOX is the inbox file of the folder directory actually used."""
    os.makedirs(tmp_path / "Mail")
    store = _open(tmp_path, "mbox:~/mail")
    assert store.layout.inbox == str(tmp_path / "Mail" / "inbox")


def test_rewrite_in_place_option(tmp_path):
    """REWRITE_IN_PLACE makes an expunge keep the file's inode (journaled in place)."""
    store = _open(tmp_path, "mbox:~/mail:INBOX=~/inbox:REWRITE_IN_PLACE")
    assert store.rewrite_in_place
    box = store.open("INBOX")
    t = box.transaction()
    for i in range(3):
        t.append(b"Subject: %d\r\n\r\nbody\r\n" % i)
    t.commit()
    inode = os.stat(store.layout.inbox).st_ino
    box.sync()
    t = box.transaction()
    t.expunge(1)
    t.commit()
    assert os.stat(store.layout.inbox).st_ino == inode
    assert [m.uid for m in box.sync().messages] == [2, 3]
    assert not _open(tmp_path).rewrite_in_place
