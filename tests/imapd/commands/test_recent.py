"""
C{\\Recent} (RFC 3501 sections 2.3.2 and 7.3.2; issue 13 rule 3): a
message that APPEND, COPY, MOVE or another session puts into a mailbox is
recent for exactly one session, which is told C{* n RECENT} with the
EXISTS; EXAMINE and STATUS show what nobody took yet without taking it, so
the next SELECT still gets it (Dovecot 2.3 behaves the same: checked by
running it on these steps).  On both stores.
"""

from __future__ import annotations

import re

from tests.imapd.commands.test_mailflow import MSG, append


def session(new_conv, select=None):
    conv = new_conv()
    conv.login()
    if select:
        conv.ok(f"s0 SELECT {select}")
    return conv


def recent_count(lines) -> int | None:
    for line in lines:
        m = re.fullmatch(r"\* (\d+) RECENT", line)
        if m:
            return int(m.group(1))
    return None


def recent_flags(conv) -> list[bool]:
    """For each message, whether this session shows it \\Recent."""
    return ["\\Recent" in l for l in conv.ok("fr FETCH 1:* FLAGS")[:-1]]


def test_append_with_flags_by_another_session_is_recent_for_exactly_one(new_conv):
    """Two sessions have INBOX selected; a third APPENDs a \\Seen message: one of them has it \\Recent."""
    a, c = session(new_conv, "INBOX"), session(new_conv, "INBOX")
    b = session(new_conv)
    append(b, "a1", "INBOX", flags="(\\Seen) ")
    append(b, "a2", "INBOX")
    got_a, got_c = a.ok("n1 NOOP"), c.ok("n1 NOOP")
    assert "* 2 EXISTS" in got_a and "* 2 EXISTS" in got_c
    # Each session is told its own count with the EXISTS; together, each
    # message exactly once.
    assert recent_count(got_a) + recent_count(got_c) == 2, (got_a, got_c)
    flags_a, flags_c = recent_flags(a), recent_flags(c)
    assert [x + y for x, y in zip(flags_a, flags_c)] == [1, 1]
    assert sum(flags_a) == recent_count(got_a)


def test_copy_move_append_then_status_examine_select(new_conv):
    """
    Mail COPYed, MOVEd and APPENDed (with and without flags) into a
    mailbox nobody has selected: STATUS and EXAMINE count all of it as
    recent and take none; the first SELECT takes all; the next none.
    """
    b = session(new_conv)
    b.ok("c0 CREATE Other")
    append(b, "a1", "INBOX", flags="(\\Seen) ")
    append(b, "a2", "INBOX")
    append(b, "a3", "INBOX", flags="(\\Flagged) ")
    append(b, "a4", "Other", flags="(\\Answered) ")
    b.ok("s1 SELECT INBOX")
    b.ok("c1 COPY 1:2 Other")
    b.ok("m1 MOVE 3 Other")
    assert b.ok("st STATUS Other (RECENT)")[0] == "* STATUS Other (RECENT 4)"
    a = session(new_conv)
    lines = a.ok("e1 EXAMINE Other")
    assert "* 4 EXISTS" in lines and recent_count(lines) == 4, lines
    assert recent_flags(a) == [True] * 4
    assert recent_count(a.ok("e2 SELECT Other")) == 4
    assert recent_flags(a) == [True] * 4
    c = session(new_conv)
    assert recent_count(c.ok("e3 SELECT Other")) == 0
    assert b.ok("st2 STATUS Other (RECENT)")[0] == "* STATUS Other (RECENT 0)"


def test_own_copy_and_append_into_the_selected_mailbox_are_recent(selected, new_conv):
    """
    COPY and APPEND (with flags) by the session that has the mailbox
    selected: the new messages are its \\Recent, reported with EXISTS; an
    idle second session gets none.
    """
    other = session(new_conv, "INBOX")
    selected.send(b"a1 APPEND INBOX (\\Seen) {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
    lines = selected.lines()
    assert lines == ["* 1 EXISTS", "* 1 RECENT", lines[-1]], lines
    assert lines[-1].startswith("a1 OK"), lines
    lines = selected.ok("c1 COPY 1 INBOX")
    assert lines[:2] == ["* 2 EXISTS", "* 2 RECENT"], lines
    selected.send(b"a2 APPEND INBOX (\\Draft) {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
    lines = selected.lines()
    assert lines[-1].startswith("a2 OK"), lines
    assert lines[:2] == ["* 3 EXISTS", "* 3 RECENT"], lines
    assert recent_flags(selected) == [True, True, True]
    lines = other.ok("n2 NOOP")
    assert "* 3 EXISTS" in lines and recent_count(lines) == 0, lines
