"""
Tests for where mbox UIDs may come from: an C{X-UID} header is a UID only
within the range the file's C{X-IMAPbase} says was given; one that came
with mail from outside never moves the mailbox's UIDs.
"""

from __future__ import annotations

from datetime import datetime, timezone

from storage.mbox.state import parse

WHEN = datetime(2024, 1, 1, tzinfo=timezone.utc)


def message(body: bytes, *headers: bytes) -> bytes:
    return (b"From sender@example.com Mon Jan  1 00:00:00 2024\n"
            + b"".join(h + b"\n" for h in headers)
            + b"Subject: " + body + b"\n\n" + body + b"\n\n")


def test_xuid_without_base_is_ignored():
    # A fresh spool written by an MDA: the second sender put an X-UID in.
    data = message(b"one") + message(b"two", b"X-UID: 4294967290") + message(b"three")
    state = parse(data, 1000, WHEN)
    assert [e.uid for e in state.entries] == [1, 2, 3]
    assert state.uidnext == 4
    assert any("4294967290" in p for p in state.problems)


def test_xuid_beyond_base_is_ignored_but_kept_within():
    data = (message(b"one", b"X-IMAPbase: 1700000000 0000000003", b"X-UID: 1")
            + message(b"two", b"X-UID: 3")
            # Appended by an MDA after the last write: not ours.
            + message(b"three", b"X-UID: 4294967290")
            + message(b"four"))
    state = parse(data, 1000, WHEN)
    assert state.uidvalidity == 1700000000
    assert [e.uid for e in state.entries] == [1, 3, 4, 5]
    assert state.uidnext == 6


def test_incremental_parse_applies_the_same_rule():
    head = message(b"one", b"X-IMAPbase: 1700000000 0000000001", b"X-UID: 1")
    first = parse(head, 1000, WHEN)
    tail = message(b"two", b"X-UID: 99999")
    whole = head + tail
    start = first.entries[-1].raw.start
    later = parse(whole[start:], 1000, WHEN, base=start, previous=first)
    assert [e.uid for e in later.entries] == [1, 2]
    assert [e.uid for e in parse(whole, 1000, WHEN).entries] == [1, 2]
