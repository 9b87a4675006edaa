"""
RFC 7162 QRESYNC on each store: ENABLE QRESYNC, SELECT/EXAMINE (QRESYNC
(...)) with VANISHED (EARLIER) and the changed FETCHes, [CLOSED], the
VANISHED UID FETCH modifier, and expunges reported as VANISHED.  The
RFC's examples are followed in shape with the server's own MODSEQs.
"""

import re

MSG = b"From: a@example.org\r\nSubject: m{n}\r\n\r\nBody {n}.\r\n"


def fill(conv, count):
    for n in range(1, count + 1):
        data = MSG.replace(b"{n}", b"%d" % n)
        conv.send(f"a{n} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
        assert conv.lines()[-1].startswith(f"a{n} OK"), n
    conv.ok("fs SELECT INBOX")  # take \Recent now
    conv.ok("fu UNSELECT")


def state(conv) -> tuple[int, int]:
    """(UIDVALIDITY, HIGHESTMODSEQ) by STATUS."""
    line = conv.ok("st STATUS INBOX (UIDVALIDITY HIGHESTMODSEQ)")[0]
    m = re.fullmatch(r"\* STATUS INBOX \(UIDVALIDITY (\d+) HIGHESTMODSEQ (\d+)\)", line)
    return int(m.group(1)), int(m.group(2))


def other_session(new_conv):
    c = new_conv()
    c.login()
    c.ok("o0 SELECT INBOX")
    return c


def changes_elsewhere(new_conv):
    """Flag message 2 and 6, expunge UIDs 3 and 5, from another session."""
    other = other_session(new_conv)
    other.ok("o1 STORE 2,6 +FLAGS.SILENT (\\Flagged)")
    other.ok("o2 UID STORE 3,5 +FLAGS.SILENT (\\Deleted)")
    other.ok("o3 EXPUNGE")
    other.ok("o4 LOGOUT")


def modseq_of(conv, uid) -> int:
    line = conv.ok(f"m UID FETCH {uid} (MODSEQ)")[0]
    return int(re.search(r"MODSEQ \((\d+)\)", line).group(1))


def test_enable_qresync(authed):
    authed.script(
        """
        C: A01 ENABLE QRESYNC
        S: * ENABLED QRESYNC
        S: A01 OK ENABLE completed
        C: A02 ENABLE QRESYNC CONDSTORE
        S: * ENABLED
        S: A02 OK ENABLE completed
        """
    )
    assert {"QRESYNC", "CONDSTORE"} <= authed.proto.enabled


def test_select_qresync_reports_vanished_and_changes(authed, new_conv):
    """RFC 7162 section 3.2.5.1, example A02, without known UIDs."""
    fill(authed, 8)
    uidvalidity, before = state(authed)
    changes_elsewhere(new_conv)
    authed.ok("A01 ENABLE QRESYNC")
    lines = authed.ok(f"A02 SELECT INBOX (QRESYNC ({uidvalidity} {before}))")
    assert f"* OK [HIGHESTMODSEQ {state(authed)[1]}] Highest" in lines
    tail = lines[lines.index(f"* OK [HIGHESTMODSEQ {state(authed)[1]}] Highest") + 1:]
    assert tail[0] == "* VANISHED (EARLIER) 3,5"
    m2, m6 = modseq_of(authed, 2), modseq_of(authed, 6)
    assert tail[1:] == [
        f"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({m2}))",
        f"* 4 FETCH (UID 6 FLAGS (\\Flagged) MODSEQ ({m6}))",
        "A02 OK [READ-WRITE] SELECT completed",
    ]


def test_known_uids_limit_vanished(authed, new_conv):
    """RFC 7162 section 3.2.5.1: only UIDs within known-uids are reported."""
    fill(authed, 8)
    uidvalidity, before = state(authed)
    changes_elsewhere(new_conv)
    authed.ok("A01 ENABLE QRESYNC")
    lines = authed.ok(f"A02 EXAMINE INBOX (QRESYNC ({uidvalidity} {before} 1:4 (1:4 1:4)))")
    assert "* VANISHED (EARLIER) 3" in lines
    assert not any("VANISHED (EARLIER) 3,5" in l for l in lines)
    assert lines[-1] == "A02 OK [READ-ONLY] EXAMINE completed"


def test_uidvalidity_mismatch_sends_no_changes(authed, new_conv):
    fill(authed, 8)
    uidvalidity, before = state(authed)
    changes_elsewhere(new_conv)
    authed.ok("A01 ENABLE QRESYNC")
    lines = authed.ok(f"A02 SELECT INBOX (QRESYNC ({uidvalidity + 1} {before}))")
    assert not any("VANISHED" in l or "FETCH" in l for l in lines)


def test_closed_when_selecting_again(authed):
    """RFC 7162 section 3.2.11: [CLOSED] before the new mailbox's responses."""
    fill(authed, 1)
    authed.ok("A01 ENABLE QRESYNC")
    authed.ok("s1 SELECT INBOX")
    lines = authed.ok("s2 EXAMINE INBOX")
    assert lines[0] == "* OK [CLOSED] Previous mailbox closed."
    assert lines.count("* OK [CLOSED] Previous mailbox closed.") == 1


def test_no_closed_without_qresync(authed):
    fill(authed, 1)
    authed.ok("s1 SELECT INBOX")
    assert not any("CLOSED" in l for l in authed.ok("s2 EXAMINE INBOX"))


def test_expunge_reported_as_vanished(authed):
    """RFC 7162 section 3.2.10: EXPUNGE responses become VANISHED."""
    fill(authed, 5)
    authed.ok("A01 ENABLE QRESYNC")
    authed.ok("s1 SELECT INBOX")
    authed.ok("t1 STORE 2,3,5 +FLAGS.SILENT (\\Deleted)")
    authed.script(
        """
        C: x1 EXPUNGE
        S: * VANISHED 2:3,5
        S: x1 OK [HIGHESTMODSEQ {{\\d+}}] EXPUNGE completed
        C: f1 FETCH 1:* (UID)
        S: * 1 FETCH (UID 1)
        S: * 2 FETCH (UID 4)
        S: f1 OK FETCH completed
        """
    )


def test_expunge_elsewhere_is_vanished_on_noop(authed, new_conv):
    fill(authed, 4)
    authed.ok("A01 ENABLE QRESYNC")
    authed.ok("s1 SELECT INBOX")
    other = other_session(new_conv)
    other.ok("o1 STORE 1,4 +FLAGS.SILENT (\\Deleted)")
    other.ok("o2 EXPUNGE")
    status = other.ok("o3 STATUS INBOX (HIGHESTMODSEQ)")
    highest = next(re.search(r"HIGHESTMODSEQ (\d+)\)", line).group(1) for line in status
                   if line.startswith("* STATUS"))
    authed.script(
        f"""
        C: n1 NOOP
        S: * VANISHED 1,4
        S: n1 OK [HIGHESTMODSEQ {highest}] NOOP completed
        C: n2 NOOP
        S: n2 OK NOOP completed
        """
    )


def test_uid_fetch_vanished_modifier(authed, new_conv):
    """RFC 7162 section 3.2.6, example: UID FETCH ... (CHANGEDSINCE n VANISHED)."""
    fill(authed, 8)
    _uidvalidity, before = state(authed)
    authed.ok("A01 ENABLE QRESYNC")
    authed.ok("s1 SELECT INBOX")
    changes_elsewhere(new_conv)
    authed.ok("n1 NOOP")  # learn about it: VANISHED 3,5 and the FETCHes
    m2, m6 = modseq_of(authed, 2), modseq_of(authed, 6)
    authed.script(
        f"""
        C: s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {before} VANISHED)
        S: * VANISHED (EARLIER) 3,5
        S: * 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({m2}))
        S: * 4 FETCH (UID 6 FLAGS (\\Flagged) MODSEQ ({m6}))
        S: s100 OK UID FETCH completed
        C: s101 UID FETCH 4:* (FLAGS) (CHANGEDSINCE {before} VANISHED)
        S: * VANISHED (EARLIER) 5
        S: * 4 FETCH (UID 6 FLAGS (\\Flagged) MODSEQ ({m6}))
        S: s101 OK UID FETCH completed
        """
    )


def test_vanished_modifier_errors(authed):
    fill(authed, 2)
    authed.ok("s1 SELECT INBOX")
    authed.script(
        """
        C: b1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
        S: b1 BAD {{.*}}QRESYNC{{.*}}
        C: e1 ENABLE QRESYNC
        S: * ENABLED QRESYNC
        S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
        S: e1 OK ENABLE completed
        C: b2 FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
        S: b2 BAD {{.*}}UID FETCH{{.*}}
        C: b3 UID FETCH 1:* (FLAGS) (VANISHED)
        S: b3 BAD {{.*}}VANISHED requires CHANGEDSINCE{{.*}}
        C: b4 SELECT INBOX (QRESYNC (0 1))
        S: b4 BAD {{.*}}Invalid QRESYNC parameter{{.*}}
        """
    )


def test_close_reports_highestmodseq(authed):
    """RFC 7162 section 3.2.8: CLOSE's tagged OK carries HIGHESTMODSEQ."""
    fill(authed, 3)
    authed.ok("A01 ENABLE QRESYNC")
    authed.ok("s1 SELECT INBOX")
    authed.ok("t1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    before = state(authed)[1]
    line = authed.ok("c1 CLOSE")[-1]
    m = re.fullmatch(r"c1 OK \[HIGHESTMODSEQ (\d+)\] CLOSE completed", line)
    assert m, line
    assert int(m.group(1)) == state(authed)[1] > before
    _uidvalidity, now = state(authed)
    lines = authed.ok(f"s2 SELECT INBOX (QRESYNC ({_uidvalidity} {before}))")
    assert "* VANISHED (EARLIER) 2" in lines


def test_move_reports_vanished(authed):
    """RFC 6851 section 4.3 with RFC 7162: MOVE's expunges are VANISHED too."""
    fill(authed, 3)
    authed.ok("c0 CREATE Archive")
    authed.ok("A01 ENABLE QRESYNC")
    authed.ok("s1 SELECT INBOX")
    lines = authed.ok("m1 UID MOVE 2 Archive")
    assert "* VANISHED 2" in lines
    assert not any(l.endswith("EXPUNGE") for l in lines)


def test_within_merges_and_bisects():
    from imapd.commands.select import within
    from imapd.parser.types import SequenceSet

    uids = [1, 2, 5, 9, 10, 40, 100]
    spans = SequenceSet(((9, 2), (10, 10), (50, None)))
    assert within(uids, spans, 120) == [2, 5, 9, 10, 100]
    assert within(uids, None, 120) == uids
    assert within(uids, SequenceSet(((101, None),)), 100) == [100]  # 101:* is 100:101


def test_idle_reports_vanished_and_modseq(authed, new_conv):
    """
    While IDLE, changes elsewhere come as FETCH ... MODSEQ and VANISHED:
    at once when another session of the process made them (issue 14),
    nothing more at the next poll.
    """
    fill(authed, 3)
    authed.ok("A01 ENABLE QRESYNC")
    authed.ok("s1 SELECT INBOX")
    authed.send(b"i1 IDLE\r\n")
    assert authed.lines() == ["+ idling"]
    other = other_session(new_conv)
    other.ok("o1 STORE 1 +FLAGS.SILENT (\\Flagged)")
    other.ok("o2 STORE 3 +FLAGS.SILENT (\\Deleted)")
    other.ok("o3 EXPUNGE")
    lines = authed.lines()
    assert re.fullmatch(r"\* 1 FETCH \(UID 1 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", lines[0])
    assert re.fullmatch(r"\* 3 FETCH \(UID 3 FLAGS \(\\Deleted\) MODSEQ \(\d+\)\)", lines[1])
    assert lines[2:] == ["* VANISHED 3"]
    authed.clock.advance(authed.context.limits.idle_poll_interval)
    assert authed.lines() == []
    authed.send(b"DONE\r\n")
    # RFC 7162 section 3.2.10: the VANISHED sent during IDLE brings the
    # mailbox's HIGHESTMODSEQ into the tagged OK.
    (done,) = authed.lines()
    status = other.ok("o4 STATUS INBOX (HIGHESTMODSEQ)")
    highest = next(re.search(r"HIGHESTMODSEQ (\d+)\)", line).group(1) for line in status
                   if line.startswith("* STATUS"))
    assert done == f"i1 OK [HIGHESTMODSEQ {highest}] IDLE terminated"
