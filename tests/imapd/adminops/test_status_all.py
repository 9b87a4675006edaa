"""
imapd-admin mailbox status -A over many users (issue 16), with the
generator of the benchmark (bench_status_all.py measures 10,000): every
user's mailboxes, in the user database's order, whatever the threads.
"""

import json

from .bench_status_all import UIDVALIDITY, make_users
from .helpers import admin


def test_status_of_every_user_in_order(tmp_path):
    """300 users: 600 rows, users in passwd-file order, each INBOX with 2 messages, 1 unseen."""
    config = make_users(str(tmp_path), 300)
    status, out, err = admin(config, "mailbox", "status", "-A", "--json")
    assert (status, err) == (0, "")
    rows = json.loads(out)
    assert [r["user"] for r in rows] == [f"u{i:05d}" for i in range(300) for _ in (0, 1)]
    inbox = [r for r in rows if r["mailbox"] == "INBOX"]
    assert {(r["messages"], r["unseen"], r["uidnext"], r["uidvalidity"]) for r in inbox} == {
        (2, 1, 3, UIDVALIDITY)}
    assert {r["messages"] for r in rows if r["mailbox"] == "Sent"} == {0}


def test_one_broken_user_does_not_stop_the_others(tmp_path):
    """A user whose uidlist is unreadable is one line on stderr and status 2; the rest print."""
    config = make_users(str(tmp_path), 20)
    (tmp_path / "home" / "u00007" / "Maildir" / "dovecot-uidlist").write_text("garbage\n")
    status, out, err = admin(config, "mailbox", "status", "-A")
    assert status == 2 and err.count("\n") == 1 and err.startswith("imapd-admin: u00007: ")
    users = [line.split("\t")[0] for line in out.splitlines()]
    assert "u00007" not in users and len(set(users)) == 19
