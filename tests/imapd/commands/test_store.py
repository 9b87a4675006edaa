"""
STORE (RFC 3501 section 6.4.6) between sessions: C{+FLAGS} and C{-FLAGS}
change only the named flags of what the store holds, under its lock, never
a session's stale copy (issue 13 rule 1), and so do the other flag writers
(FETCH's implied C{\\Seen}, COPY's kept flags, UNCHANGEDSINCE).  Every
test runs on both stores.
"""

from __future__ import annotations

import re

from tests.imapd.commands.test_mailflow import append


def two_sessions(selected, new_conv, flags="(\\Seen) "):
    """One message; C{selected} and a second session both have INBOX selected."""
    append(selected, "a1", "INBOX", flags=flags)
    selected.ok("n1 NOOP")
    other = new_conv()
    other.login()
    other.ok("s1 SELECT INBOX")
    return other


def flags(conv, tag="f9") -> set[str]:
    """Message 1's flags as the session shows them after a NOOP, less \\Recent."""
    conv.ok("n9 NOOP")
    line = conv.ok(f"{tag} FETCH 1 FLAGS")[0]
    m = re.fullmatch(r"\* 1 FETCH \(FLAGS \((.*)\)\)", line)
    assert m, line
    return set(m.group(1).split()) - {"\\Recent"}


def test_plus_and_minus_flags_of_two_sessions_both_stay(selected, new_conv):
    """
    The issue's case: A adds \\Answered, B (whose view still says \\Seen
    only) removes \\Seen; after CHECK both see \\Answered and no \\Seen.
    """
    other = two_sessions(selected, new_conv)
    selected.ok("t1 STORE 1 +FLAGS (\\Answered)")
    lines = other.ok("t2 STORE 1 -FLAGS (\\Seen)")
    assert lines[0] == "* 1 FETCH (FLAGS (\\Answered))"
    selected.ok("c1 CHECK")
    other.ok("c2 CHECK")
    assert flags(selected) == {"\\Answered"}
    assert flags(other) == {"\\Answered"}


def test_keyword_changes_of_two_sessions_both_stay(selected, new_conv):
    """Keywords too: each session's +FLAGS/-FLAGS of its own keyword survives the other's."""
    other = two_sessions(selected, new_conv, flags="")
    selected.ok("t1 STORE 1 +FLAGS.SILENT ($Todo $Work)")
    other.ok("t2 STORE 1 +FLAGS.SILENT ($Later)")
    selected.ok("t3 STORE 1 -FLAGS.SILENT ($Todo)")
    other.ok("t4 STORE 1 -FLAGS.SILENT (\\Seen)")
    assert flags(selected) == {"$Work", "$Later"}
    assert flags(other) == {"$Work", "$Later"}


def test_minus_flags_removes_a_flag_this_session_was_not_told_about(selected, new_conv):
    """-FLAGS acts on the stored flags: a \\Flagged B set is removed even though A never saw it."""
    other = two_sessions(selected, new_conv, flags="")
    other.ok("t1 STORE 1 +FLAGS.SILENT (\\Flagged \\Draft)")
    selected.ok("t2 STORE 1 -FLAGS.SILENT (\\Flagged)")
    assert flags(other) == {"\\Draft"}


def test_silent_store_reports_flags_changed_elsewhere(selected, new_conv):
    """
    .SILENT spares only what the client can work out: when another
    session changed the message too, the client is told its real flags.
    """
    other = two_sessions(selected, new_conv, flags="")
    other.ok("t1 STORE 1 +FLAGS.SILENT (\\Flagged)")
    lines = selected.ok("t2 STORE 1 +FLAGS.SILENT (\\Answered)")
    assert lines[0].startswith("* 1 FETCH (FLAGS (\\Answered \\Flagged"), lines
    assert flags(other) == {"\\Answered", "\\Flagged"}


def test_fetch_body_adds_seen_to_the_stored_flags(selected, new_conv):
    """FETCH BODY[] adds \\Seen to what is stored, keeping a \\Flagged set by another session."""
    other = two_sessions(selected, new_conv, flags="")
    other.ok("t1 STORE 1 +FLAGS.SILENT (\\Flagged)")
    selected.send(b"f1 FETCH 1 BODY[]\r\n")
    out = selected.output()
    assert out.endswith(b"f1 OK FETCH completed\r\n"), out
    assert flags(other) == {"\\Seen", "\\Flagged"}
    assert flags(selected) == {"\\Seen", "\\Flagged"}


def test_copy_keeps_the_flags_stored_now(selected, new_conv):
    """COPY gives the copy the flags the message has in the store, not this session's old copy."""
    other = two_sessions(selected, new_conv)
    selected.ok("c0 CREATE Other")
    other.ok("t1 STORE 1 +FLAGS.SILENT (\\Flagged $Work)")
    selected.ok("c1 COPY 1 Other")
    selected.ok("s2 SELECT Other")
    assert flags(selected) == {"\\Seen", "\\Flagged", "$Work"}


def test_unchangedsince_is_checked_with_the_write(selected, new_conv):
    """
    RFC 7162 section 3.1.3 against another process: a change that lands
    after the session last looked but before the store writes (here from
    another open of the mailbox, as another process would) makes the
    conditional STORE fail with MODIFIED, and is kept.
    """
    other = two_sessions(selected, new_conv, flags="")
    line = selected.ok("f1 FETCH 1 (MODSEQ)")[-2]
    modseq = int(re.search(r"FETCH \(MODSEQ \((\d+)\)", line).group(1))
    view = selected.proto.selected
    mailbox = view.mailbox
    store = selected.proto.account.store
    real = mailbox.transaction

    def transaction():
        # Between the session's last look and the store's write.
        mailbox.transaction = real
        elsewhere = store.open("INBOX")
        try:
            tx = elsewhere.transaction()
            tx.set_flags(1, frozenset({"\\Flagged"}))
            tx.commit()
        finally:
            elsewhere.close()
        return real()

    mailbox.transaction = transaction
    lines = selected.transact(f"t1 STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Answered)")
    assert lines[-1].startswith("t1 OK [MODIFIED 1]"), lines
    assert flags(other) == {"\\Flagged"}


def test_store_on_a_message_expunged_meanwhile_shows_no_stale_flags(selected, new_conv):
    """
    Another session expunged the message before this session's STORE
    reached it: the change cannot be made, so no FETCH shows the message
    without it (a client would take that for the store's answer and think
    its flag lost); the EXPUNGE follows, as UID STORE allows (RFC 3501
    section 7.4.1), and the command completes (RFC 2180 section 4.2.1).
    """
    other = two_sessions(selected, new_conv, flags="")
    append(selected, "a2", "INBOX")
    selected.ok("n2 NOOP")
    other.ok("n3 NOOP")
    other.ok("t1 STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.ok("e1 EXPUNGE")
    lines = selected.ok("t2 UID STORE 1:2 +FLAGS ($Mine)")
    assert not [l for l in lines if re.match(r"\* 1 FETCH .*UID 1\b", l)], lines
    assert "* 1 EXPUNGE" in lines, lines
    fetched = [l for l in lines if "FETCH" in l]
    assert len(fetched) == 1 and re.fullmatch(r"\* 2 FETCH \(UID 2 FLAGS \((\\Recent )?\$Mine\)\)",
                                              fetched[0]), lines
