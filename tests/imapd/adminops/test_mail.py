"""
imapd-admin mailbox, search, fetch, expunge and quota (issue 16), on
Maildir and mbox: the store a login opens, QUERY in IMAP SEARCH syntax.
"""

import json
from datetime import datetime, timezone

import pytest

from .helpers import admin, console, deliver, make_site, message

pytestmark = pytest.mark.parametrize("kind", ["maildir", "mbox"])


def _jan(day):
    return datetime(2026, 1, day, 12, tzinfo=timezone.utc)


@pytest.fixture
def site(tmp_path, kind):
    config = make_site(tmp_path, kind)
    uids = deliver(tmp_path, kind, "alice", messages=[
        (message("old"), (), datetime(2025, 12, 1, tzinfo=timezone.utc)),
        (message("seen", body="invoice attached\r\n"), ("\\Seen",), _jan(2)),
        (message("new", sender="mallory@example.com"), (), _jan(3)),
        (message("gone"), ("\\Deleted", "\\Seen"), _jan(4)),
    ])
    return tmp_path, config, uids


def test_search_uses_imap_search_syntax(site, kind):
    """search prints the UIDs the IMAP SEARCH program matches (UNSEEN SINCE, OR, headers, body)."""
    _, config, uids = site
    assert admin(config, "search", "-u", "alice", "INBOX", "UNSEEN", "SINCE", "1-Jan-2026") == (
        0, f"{uids[2]}\n", "")
    status, out, _ = admin(config, "search", "-u", "alice", "INBOX",
                           "OR FROM mallory SUBJECT old")
    assert out.split() == [str(uids[0]), str(uids[2])]
    status, out, _ = admin(config, "search", "-u", "alice", "INBOX", "BODY", "invoice", "--json")
    assert json.loads(out) == [{"mailbox": "INBOX", "uid": uids[1]}]
    status, out, err = admin(config, "search", "-u", "alice", "INBOX", "SINCE", "32-Jan-2026")
    assert status == 2 and out == "" and err.startswith("imapd-admin: QUERY: Invalid argument to SINCE")
    assert admin(config, "search", "-u", "alice", "Nope", "ALL") == (
        1, "", "imapd-admin: no mailbox 'Nope'\n")


def test_fetch_fields(site, kind):
    """fetch prints the chosen fields of the matching messages; hdr, body and text split the message."""
    _, config, uids = site
    status, out, _ = admin(config, "fetch", "-u", "alice", "INBOX", f"UID {uids[1]}",
                           "--fields", "uid,flags,size,date.received,hdr,body,text", "--json")
    row = json.loads(out)[0]
    raw = message("seen", body="invoice attached\r\n").decode()
    assert status == 0 and row["uid"] == uids[1] and row["flags"] == ["\\Seen"]
    assert row["size"] == len(raw) and row["date.received"] == "2026-01-02T12:00:00+00:00"
    assert row["text"] == raw and row["hdr"] + row["body"] == raw
    assert row["body"] == "invoice attached\r\n"
    status, out, _ = admin(config, "fetch", "-u", "alice", "INBOX", "DELETED")
    assert out == (f"uid: {uids[3]}\nflags: \\Deleted \\Seen\nsize: {len(message('gone'))}\n"
                   f"date.received: 2026-01-04T12:00:00+00:00\n\n")
    status, _, err = admin(config, "fetch", "-u", "alice", "INBOX", "ALL", "--fields", "uid,color")
    assert status == 2 and "--fields: unknown color" in err


def test_expunge_removes_matches_and_keeps_uids(site, kind):
    """expunge removes what QUERY matches, \\Deleted or not; the others keep their UIDs."""
    _, config, uids = site
    status, out, _ = admin(config, "expunge", "-u", "alice", "INBOX", "BEFORE", "1-Jan-2026")
    assert (status, out) == (0, f"expunged\t{uids[0]}\n")
    assert admin(config, "expunge", "-u", "alice", "INBOX", "DELETED")[1] == f"expunged\t{uids[3]}\n"
    assert admin(config, "search", "-u", "alice", "INBOX", "ALL")[1].split() == [
        str(uids[1]), str(uids[2])]
    assert admin(config, "expunge", "-u", "alice", "INBOX", "DELETED") == (0, "", "")


def test_mailbox_create_status_rename_delete(site, kind):
    """The mailbox commands change the store as the IMAP commands do."""
    tmp, config, uids = site
    # (An mbox folder that holds messages cannot hold folders: the
    # parent of Archive/2026 is made a directory, as IMAP CREATE does.)
    assert admin(config, "mailbox", "create", "-u", "alice", "Work", "Archive/2026") == (
        0, "created Work\ncreated Archive/2026\n", "")
    status, _, err = admin(config, "mailbox", "create", "-u", "alice", "Work")
    assert status == 2 and err == "imapd-admin: mailbox 'Work' exists already\n"
    assert admin(config, "mailbox", "create", "-u", "alice", "INBOX")[0] == 2
    deliver(tmp, kind, "alice", "Archive/2026", [(message("a"), ("\\Seen",), _jan(5))])
    status, out, _ = admin(config, "mailbox", "status", "-u", "alice", "--json")
    rows = {r["mailbox"]: r for r in json.loads(out)}
    assert sorted(rows) == (["Archive", "Archive/2026", "INBOX", "Work"] if kind == "maildir"
                            else ["Archive/2026", "INBOX", "Work"])
    assert rows["INBOX"]["messages"] == 4 and rows["INBOX"]["unseen"] == 2
    assert rows["INBOX"]["uidnext"] == uids[-1] + 1
    assert rows["Archive/2026"]["messages"] == 1 and rows["Archive/2026"]["unseen"] == 0
    assert admin(config, "mailbox", "rename", "-u", "alice", "Archive", "Old") == (
        0, "renamed Archive to Old\n", "")
    status, out, _ = admin(config, "mailbox", "list", "-u", "alice")
    assert "Old/2026" in out.split("\n") and "Archive/2026" not in out
    assert admin(config, "mailbox", "status", "-u", "alice", "Old/2026")[1].startswith(
        "Old/2026\tmessages=1 recent=")
    assert admin(config, "mailbox", "delete", "-u", "alice", "Old/2026") == (
        0, "deleted Old/2026\n", "")
    assert admin(config, "mailbox", "delete", "-u", "alice", "Old/2026") == (
        1, "", "imapd-admin: no mailbox 'Old/2026'\n")
    assert admin(config, "mailbox", "delete", "-u", "alice", "INBOX")[0] == 2
    assert admin(config, "mailbox", "status", "-u", "nobody")[0] == 1


def test_all_users(site, kind):
    """-A runs for every passwd-file user; one that never logged in has nothing to show."""
    tmp, config, uids = site
    status, out, _ = admin(config, "mailbox", "status", "-A")
    assert status == 0 and out.startswith("alice\tINBOX\tmessages=4 ")
    deliver(tmp, kind, "bob", messages=[(message("b"), (), _jan(6))])
    status, out, _ = admin(config, "search", "-A", "INBOX", "UNSEEN", "--json")
    assert {(r["user"], r["uid"]) for r in json.loads(out)} == {
        ("alice", uids[0]), ("alice", uids[2]), ("bob", 1)}


def test_quota(site, kind):
    """quota get/recalc: usage summed from the mailboxes, limits from [quota]."""
    tmp, _, _ = site
    config = tmp / "imapd.toml"
    config.write_text(config.read_text() + '[quota]\nstorage = "1M"\nmessages = 100\n')
    total = sum(len(message(s, body=b)) for s, b in (
        ("old", "Hello.\r\n"), ("seen", "invoice attached\r\n"), ("new", "Hello.\r\n"),
        ("gone", "Hello.\r\n")))
    for command in ("get", "recalc"):
        status, out, _ = admin(config, "quota", command, "-u", "alice", "--json")
        assert json.loads(out) == [{"storage_kib": (total + 1023) // 1024,
                                    "storage_limit_kib": 1024, "messages": 4,
                                    "messages_limit": 100}]


def test_console_script_mail(site, kind):
    """The console script, in its own process, takes the store's locks and answers."""
    _, config, uids = site
    run = console(config, "search", "-u", "alice", "INBOX", "SEEN", "NOT", "DELETED")
    assert (run.returncode, run.stdout, run.stderr) == (0, f"{uids[1]}\n", "")
    run = console(config, "mailbox", "status", "-u", "alice", "INBOX", "--json")
    assert run.returncode == 0 and json.loads(run.stdout)[0]["messages"] == 4
    run = console(config, "search", "-u", "alice", "INBOX", "(UNSEEN")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
