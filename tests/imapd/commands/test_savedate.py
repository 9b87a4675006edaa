"""
SAVEDATE (RFC 8514): FETCH SAVEDATE, SEARCH SAVEDBEFORE/SAVEDON/SAVEDSINCE
and SAVEDATESUPPORTED, on each store.

Where the save date lives (see L{storage.maildir.filename.save_time}):
Maildir takes it from the unique name, which starts with the time the
file entered the folder (delivery, APPEND, COPY/MOVE give a new name, as
Dovecot does), falling back to the INTERNALDATE (the file's mtime) for a
name without one; mbox keeps none, so SAVEDATE is NIL, SAVEDATESUPPORTED
matches nothing and the SAVED* keys use INTERNALDATE.
"""

import os
import re
import time
from datetime import datetime, timezone

import pytest

OLD = '"01-Jan-2020 10:00:00 +0000"'
MSG = b"Subject: s\r\n\r\nbody\r\n"


def _append_dated(conv, tag, mailbox="INBOX"):
    conv.send(f"{tag} APPEND {mailbox} {OLD} {{{len(MSG)}+}}\r\n".encode() + MSG + b"\r\n")
    assert conv.lines()[-1].startswith(f"{tag} OK"), tag


def _date(text: str) -> datetime:
    return datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z")


def _today() -> str:
    return datetime.now(timezone.utc).strftime("%d-%b-%Y")


def test_advertised(authed):
    """RFC 8514 section 2: SAVEDATE in the capability list once logged in."""
    assert "SAVEDATE" in authed.ok("c1 CAPABILITY")[0].split()


def test_parser_accepts_the_new_keys(authed):
    """The fetch item and the four search keys parse on both stores (no BAD)."""
    authed.append("a1", MSG)
    authed.ok("s1 SELECT INBOX")
    authed.ok("f1 FETCH 1:* (SAVEDATE)")
    for key in ("SAVEDBEFORE 1-Jan-2020", "SAVEDON 1-Jan-2020", "SAVEDSINCE 1-Jan-2020",
                "SAVEDATESUPPORTED", "NOT SAVEDATESUPPORTED"):
        authed.ok(f"s2 SEARCH {key}")


@pytest.mark.parametrize("store_kind", ["maildir"])
def test_maildir_save_date_is_when_it_entered_the_folder(authed, store_kind):
    """APPEND with an old INTERNALDATE: SAVEDATE is now; COPY gives the copy its own; STORE keeps it."""
    authed.ok("c0 CREATE Other")
    before = time.time()
    _append_dated(authed, "a1")
    after = time.time()
    authed.ok("s1 SELECT INBOX")
    line = authed.ok("f1 FETCH 1 (SAVEDATE INTERNALDATE)")[0]
    m = re.fullmatch(r'\* 1 FETCH \(SAVEDATE "([^"]+)" INTERNALDATE "([^"]+)"\)', line)
    assert m, line
    saved = _date(m.group(1)).timestamp()
    assert int(before) <= saved <= after + 1
    assert _date(m.group(2)) == _date("01-Jan-2020 10:00:00 +0000")
    authed.ok("st STORE 1 +FLAGS (\\Seen $Work)")
    assert authed.ok("f2 FETCH 1 (SAVEDATE)")[0] == line.split(" INTERNALDATE")[0] + ")"
    time.sleep(1.05)
    authed.ok("c1 COPY 1 Other")
    authed.ok("s2 SELECT Other")
    copied = authed.ok("f3 FETCH 1 (SAVEDATE)")[0]
    m2 = re.fullmatch(r'\* 1 FETCH \(SAVEDATE "([^"]+)"\)', copied)
    assert m2 and _date(m2.group(1)).timestamp() > saved, (line, copied)
    authed.script(
        f"""
        C: q1 SEARCH SAVEDATESUPPORTED
        S: * SEARCH 1
        S: q1 OK SEARCH completed
        C: q2 SEARCH SAVEDON {_today()}
        S: * SEARCH 1
        S: q2 OK SEARCH completed
        C: q3 SEARCH SAVEDBEFORE 2-Jan-2020
        S: * SEARCH
        S: q3 OK SEARCH completed
        C: q4 SEARCH SAVEDSINCE 1-Jan-2021 BEFORE 2-Jan-2020
        S: * SEARCH 1
        S: q4 OK SEARCH completed
        """
    )


@pytest.mark.parametrize("store_kind", ["maildir"])
def test_maildir_name_without_time_falls_back_to_mtime(authed, store_kind, mail_root):
    """A file an MDA named without a leading time: SAVEDATE is its INTERNALDATE (mtime)."""
    authed.ok("s0 SELECT INBOX")
    inbox = mail_root / "demo"
    path = inbox / "new" / "deliveredbyfoo.host"
    path.write_bytes(MSG)
    stamp = datetime(2021, 3, 4, 5, 6, 7, tzinfo=timezone.utc).timestamp()
    os.utime(path, (stamp, stamp))
    authed.ok("n1 NOOP")
    authed.script(
        """
        C: f1 FETCH 1 (SAVEDATE INTERNALDATE)
        S: * 1 FETCH (SAVEDATE " 4-Mar-2021 05:06:07 +0000" INTERNALDATE " 4-Mar-2021 05:06:07 +0000")
        S: f1 OK FETCH completed
        C: q1 SEARCH SAVEDON 4-Mar-2021
        S: * SEARCH 1
        S: q1 OK SEARCH completed
        """
    )


@pytest.mark.parametrize("store_kind", ["mbox"])
def test_mbox_keeps_no_save_date(authed, store_kind):
    """mbox: SAVEDATE NIL, SAVEDATESUPPORTED matches nothing, SAVED* search INTERNALDATE."""
    _append_dated(authed, "a1")
    authed.ok("s1 SELECT INBOX")
    authed.script(
        f"""
        C: f1 FETCH 1 (SAVEDATE)
        S: * 1 FETCH (SAVEDATE NIL)
        S: f1 OK FETCH completed
        C: q1 SEARCH SAVEDATESUPPORTED
        S: * SEARCH
        S: q1 OK SEARCH completed
        C: q2 SEARCH NOT SAVEDATESUPPORTED
        S: * SEARCH 1
        S: q2 OK SEARCH completed
        C: q3 SEARCH SAVEDON 1-Jan-2020
        S: * SEARCH 1
        S: q3 OK SEARCH completed
        C: q4 SEARCH SAVEDSINCE {_today()}
        S: * SEARCH
        S: q4 OK SEARCH completed
        """
    )
