# -*- test-case-name: tests.imapd.test_admin_migrate -*-
"""
C{imapd-admin migrate}: the command line around L{storage.migrate}: its
report (text and JSON), exit status 0/1/2, one clear line on a bad
argument, and its help with examples.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from imapd.admin import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage" / "migrate"))
from storage_migrate_testutil import MAILDIR, MBOX, fingerprint, mbox_home  # noqa: E402


def admin(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out, err)
    return status, out.getvalue(), err.getvalue()


def test_migrate_reports_each_mailbox_then_nothing_to_do(tmp_path):
    """A first run lists what it copied; the second says there is nothing to do."""
    home = mbox_home(tmp_path)
    status, out, err = admin("migrate", "-u", "u", "--home", str(home),
                             "--from", MBOX, "--to", MAILDIR)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == ("INBOX: 12 messages (mbox), UIDVALIDITY 1795428228, UIDNEXT 15: "
                        "12 copied, 0 flag changes, 0 expunged")
    assert lines[-1].startswith("done: 15 messages copied in ")
    before = fingerprint(home / "Maildir")
    status, out, err = admin("migrate", "-u", "u", "--home", str(home),
                             "--from", MBOX, "--to", MAILDIR)
    assert status == 0
    assert out.splitlines()[-1].startswith("nothing to do: 0 messages copied")
    assert fingerprint(home / "Maildir") == before


def test_migrate_json(tmp_path):
    """--json gives every mailbox's UIDVALIDITY, UIDNEXT and counts."""
    home = mbox_home(tmp_path)
    status, out, _ = admin("migrate", "-u", "u", "--home", str(home), "--from", MBOX,
                           "--to", MAILDIR, "--json")
    assert status == 0
    [result] = json.loads(out)
    assert result["user"] == "u" and result["changed"] is True and result["copied"] == 15
    inbox = result["mailboxes"][0]
    assert (inbox["name"], inbox["uidvalidity"], inbox["uidnext"], inbox["copied"]) == (
        "INBOX", 1795428228, 15, 12)


def test_migrate_refusals_are_one_line_and_status_1(tmp_path):
    """Same place, missing source, a target with other mail: exit 1 with one line."""
    home = mbox_home(tmp_path)
    status, out, err = admin("migrate", "-u", "u", "--home", str(home), "--from", MAILDIR,
                             "--to", "maildir:" + str(home / "Maildir"))
    assert status == 1 and "same place" in err and err.count("\n") == 1
    status, out, err = admin("migrate", "-u", "u", "--home", str(home),
                             "--from", "maildir:~/nothing", "--to", MAILDIR)
    assert status == 1 and "does not exist" in err and err.count("\n") == 1
    status, _, err = admin("migrate", "-u", "u", "--home", str(home),
                           "--from", "sdbox:~/x", "--to", MAILDIR)
    assert status == 1 and "sdbox" in err
    assert not os.path.exists(home / "Maildir")


def test_migrate_usage_errors_exit_2(tmp_path):
    """A missing --to is a usage error (2, one line), and --help shows examples."""
    status, out, err = admin("migrate", "-u", "u", "--from", MBOX)
    assert (status, out) == (2, "") and "--to" in err and err.count("\n") == 1
    status, out, err = admin("migrate", "--help")
    assert status == 0 and "imapd-admin migrate -u alice --from" in out
    status, out, err = admin("migrate", "-A", "--home", str(tmp_path), "--from", MBOX,
                             "--to", MAILDIR)
    assert (status, out) == (2, "") and "--home" in err and err.count("\n") == 1


def test_migrate_all_users_of_the_user_database(tmp_path):
    """-A migrates every user of the passwd-file, each at the home the user database gives."""
    homes = {}
    for user in ("ann", "ben"):
        (tmp_path / user).mkdir()
        homes[user] = mbox_home(tmp_path / user)
    (tmp_path / "passwd").write_text("".join(
        f"{user}:{{PLAIN}}pw::::{home}::\n" for user, home in homes.items()))
    config = tmp_path / "imapd.toml"
    config.write_text(f'[auth]\npasswd_file = "passwd"\n[mail]\nindex_dir = "{tmp_path}/i"\n')
    status, out, err = admin("-c", str(config), "migrate", "-A", "--from", MBOX,
                             "--to", MAILDIR, "--json")
    assert (status, err) == (0, "")
    rows = json.loads(out)
    assert [(r["user"], r["copied"]) for r in rows] == [("ann", 15), ("ben", 15)]
    for home in homes.values():
        assert fingerprint(home / "Maildir")
    status, out, err = admin("-c", str(config), "migrate", "-A", "--from", MBOX,
                             "--to", MAILDIR)
    assert status == 0
    last = [line.split(": 0 messages")[0] for line in out.splitlines() if "nothing" in line]
    assert last == ["ann: nothing to do", "ben: nothing to do"]
