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
    result = json.loads(out)
    assert result["changed"] is True and result["copied"] == 15
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


def test_migrate_usage_errors_exit_2(capsys):
    """A missing --to is a usage error (2), and --help shows examples."""
    with pytest.raises(SystemExit) as e:
        main(["migrate", "-u", "u", "--from", MBOX])
    assert e.value.code == 2
    assert "--to" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["migrate", "--help"])
    assert e.value.code == 0
    assert "imapd-admin migrate -u alice --from" in capsys.readouterr().out
