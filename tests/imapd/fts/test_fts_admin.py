"""
C{imapd-admin fts status|rebuild -u USER [MAILBOX]} (L{imapd.fts.admin})
on a site of its own: a passwd-file user with a Maildir of two mailboxes.
"""

from __future__ import annotations

import io
import sqlite3

import pytest

from imapd.admin import main

MESSAGES = [
    b"From: a@example.org\r\nSubject: one\r\n\r\nfirst text about apples\r\n",
    b"From: b@example.org\r\nSubject: two\r\n\r\nsecond text about pears\r\n",
    b"From: c@example.org\r\nSubject: three\r\n\r\nthird text about plums\r\n",
]


@pytest.fixture
def site(tmp_path):
    from storage.registry import open_store

    (tmp_path / "passwd").write_text(f"alice:{{PLAIN}}x::::{tmp_path}/home/alice::\n")
    config = tmp_path / "imapd.toml"
    config.write_text(
        f'data_dir = "{tmp_path}/data"\n'
        f'[auth]\npasswd_file = "{tmp_path}/passwd"\n'
        f'[mail]\nlocation = "maildir:{tmp_path}/mail/%u"\nindex_dir = "{tmp_path}/index"\n')
    store = open_store(f"maildir:{tmp_path}/mail/%u", "alice", None, str(tmp_path / "index"))
    store.create("Archive")
    for name, count in (("INBOX", 3), ("Archive", 2)):
        mailbox = store.open(name)
        t = mailbox.transaction()
        for data in MESSAGES[:count]:
            t.append(data)
        t.commit()
        mailbox.close()
    store.close()
    return tmp_path, str(config)


def admin(config, *argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(["--config", config, "fts", *argv], out, err)
    return status, out.getvalue(), err.getvalue()


def test_status_rebuild_status(site):
    """An empty index, rebuilt, then complete and checked; one mailbox or all."""
    _tmp, config = site
    status, out, err = admin(config, "status", "-u", "alice")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("Archive: messages=2 indexed=0 too_large=0 missing=2 ")
    assert lines[1].startswith("INBOX: messages=3 indexed=0 too_large=0 missing=3 ")

    assert admin(config, "rebuild", "-u", "alice", "INBOX") == (
        0, "INBOX: indexed=3 documents=3\n", "")
    status, out, _ = admin(config, "status", "-u", "alice", "INBOX")
    assert status == 0
    assert out.startswith("INBOX: messages=3 indexed=3 too_large=0 missing=0 bytes=")
    assert out.endswith(" check=ok\n")
    # Rebuilt again: everything indexed anew, not only what was missing.
    assert admin(config, "rebuild", "-u", "alice") == (
        0, "Archive: indexed=2 documents=2\nINBOX: indexed=3 documents=3\n", "")


def test_status_finds_damage_sqlite_cannot_see_and_rebuild_cures_it(site):
    """
    An inverted index that disagrees with its text (its pages blanked,
    which SQLite and a MATCH take as no hits): status says so and exits
    1; rebuild repairs it.
    """
    from imapd.cache import mailbox_identity
    from imapd.fts.query import fts_index
    from storage.registry import open_store

    tmp, config = site
    assert admin(config, "rebuild", "-u", "alice", "INBOX")[0] == 0
    store = open_store(f"maildir:{tmp}/mail/%u", "alice", None, str(tmp / "index"))
    mailbox = store.open("INBOX", readonly=True)
    path = fts_index(str(tmp / "index"), mailbox_identity("alice", mailbox)).path
    fts_index(str(tmp / "index"), mailbox_identity("alice", mailbox)).close()
    mailbox.close()
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE text_data SET block = zeroblob(length(block)) WHERE id > 10")
    conn.commit()
    conn.close()
    status, out, _ = admin(config, "status", "-u", "alice", "INBOX")
    assert status == 1 and " check=damaged (" in out, out
    assert admin(config, "rebuild", "-u", "alice", "INBOX")[0] == 0
    status, out, _ = admin(config, "status", "-u", "alice", "INBOX")
    assert status == 0 and out.endswith(" check=ok\n"), out


def test_unknown_user_and_mailbox(site):
    """A user or mailbox that does not exist: exit 1 with the reason."""
    _tmp, config = site
    status, out, err = admin(config, "status", "-u", "nobody-here")
    assert status == 1 and out == "" and "nobody-here" in err
    status, out, err = admin(config, "rebuild", "-u", "alice", "Nope")
    assert status == 1 and err == "imapd-admin: no mailbox 'Nope'\n"


def test_rebuild_refused_when_fts_is_off(site):
    tmp, config = site
    with open(config, "a") as f:
        f.write("[fts]\nenabled = false\n")
    status, out, err = admin(config, "rebuild", "-u", "alice", "INBOX")
    assert status == 2 and "[fts] enabled = false" in err
