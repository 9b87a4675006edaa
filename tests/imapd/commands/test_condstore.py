"""
RFC 7162 CONDSTORE on each store: HIGHESTMODSEQ in SELECT and STATUS, the
MODSEQ FETCH item and CHANGEDSINCE, STORE UNCHANGEDSINCE with [MODIFIED],
SEARCH MODSEQ, and MODSEQ in untagged FETCHes once enabled.  The RFC's
examples are followed in shape; their MODSEQ numbers are the server's own
(captured), because MODSEQs come from the store's modseq log.
"""

import re

import pytest

MSG = b"From: a@example.org\r\nSubject: m{n}\r\n\r\nBody {n}.\r\n"


def fill(conv, count):
    for n in range(1, count + 1):
        data = MSG.replace(b"{n}", b"%d" % n)
        conv.send(f"a{n} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
        assert conv.lines()[-1].startswith(f"a{n} OK"), n
    # Take \Recent now, so that later responses do not depend on it.
    conv.ok("fs SELECT INBOX")
    conv.ok("fu UNSELECT")


def modseqs(conv) -> dict[int, int]:
    """UID -> MODSEQ, by UID FETCH 1:* (MODSEQ)."""
    out = {}
    for line in conv.ok("ms UID FETCH 1:* (MODSEQ)")[:-1]:
        m = re.fullmatch(r"\* \d+ FETCH \(UID (\d+) MODSEQ \((\d+)\)\)", line)
        assert m, line
        out[int(m.group(1))] = int(m.group(2))
    return out


def highest(conv) -> int:
    # The STATUS line; the first STATUS HIGHESTMODSEQ while INBOX is
    # selected also enables CONDSTORE, whose OK [HIGHESTMODSEQ] comes first.
    line = conv.ok("hs STATUS INBOX (HIGHESTMODSEQ)")[-2]
    return int(re.fullmatch(r'\* STATUS INBOX \(HIGHESTMODSEQ (\d+)\)', line).group(1))


def test_capability_advertises_condstore(authed):
    caps = authed.ok("c1 CAPABILITY")[0].split()
    assert "CONDSTORE" in caps and "QRESYNC" in caps


def test_select_condstore_reports_highestmodseq(authed):
    """RFC 7162 section 3.1.2.1: SELECT (CONDSTORE) gives [HIGHESTMODSEQ]."""
    fill(authed, 3)
    h = highest(authed)
    authed.script(
        f"""
        C: A142 SELECT INBOX (CONDSTORE)
        S: * FLAGS {{{{.*}}}}
        S: * 3 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] {{{{.*}}}}
        S: * OK [UIDVALIDITY {{{{\\d+}}}}] {{{{.*}}}}
        S: * OK [UIDNEXT 4] {{{{.*}}}}
        S: * OK [PERMANENTFLAGS {{{{.*}}}}] {{{{.*}}}}
        S: * OK [HIGHESTMODSEQ {h}] {{{{.*}}}}
        S: A142 OK [READ-WRITE] SELECT completed
        """
    )
    ms = modseqs(authed)
    assert len(set(ms.values())) == 3 and max(ms.values()) == h


def test_every_select_reports_highestmodseq(authed):
    """
    RFC 7162 section 3.1.2.1: with persistent MODSEQs, every SELECT and
    EXAMINE says HIGHESTMODSEQ, CONDSTORE enabled or not; untagged FETCH
    responses only carry MODSEQ once it is enabled.
    """
    fill(authed, 1)
    lines = authed.ok("s1 SELECT INBOX")
    assert any(re.fullmatch(r"\* OK \[HIGHESTMODSEQ \d+\] Highest", l) for l in lines), lines
    assert authed.ok("t1 STORE 1 +FLAGS (\\Seen)")[0] == "* 1 FETCH (FLAGS (\\Seen))"
    authed.script(
        """
        C: e1 ENABLE CONDSTORE
        S: * ENABLED CONDSTORE
        S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
        S: e1 OK ENABLE completed
        """
    )
    line = authed.ok("t2 STORE 1 +FLAGS (\\Answered)")[0]
    assert re.fullmatch(r"\* 1 FETCH \(FLAGS \(\\Answered \\Seen\) MODSEQ \(\d+\)\)", line), line


def test_fetch_changedsince(authed):
    """RFC 7162 section 3.1.4.1: only messages changed since, with MODSEQ."""
    fill(authed, 5)
    authed.ok("s1 SELECT INBOX (CONDSTORE)")
    before = highest(authed)
    authed.ok("t1 STORE 2,4 +FLAGS.SILENT (\\Flagged)")
    ms = modseqs(authed)
    assert ms[2] > before and ms[4] > before
    authed.script(
        f"""
        C: s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {before})
        S: * 2 FETCH (UID 2 FLAGS (\\Flagged{{{{.*}}}}) MODSEQ ({ms[2]}))
        S: * 4 FETCH (UID 4 FLAGS (\\Flagged{{{{.*}}}}) MODSEQ ({ms[4]}))
        S: s100 OK UID FETCH completed
        C: s101 FETCH 1:* (FLAGS) (CHANGEDSINCE {ms[4]})
        S: s101 OK FETCH completed
        """
    )


def test_store_unchangedsince_silent_reports_modseq(authed):
    """RFC 7162 section 3.1.3, example a103: .SILENT still gives MODSEQ."""
    fill(authed, 8)
    authed.ok("s1 SELECT INBOX (CONDSTORE)")
    h = highest(authed)
    lines = authed.ok(f"a103 UID STORE 6,4,8 (UNCHANGEDSINCE {h}) +FLAGS.SILENT (\\Deleted)")
    assert lines[-1] == "a103 OK UID STORE completed"
    got = [re.fullmatch(r"\* (\d+) FETCH \(UID (\d+) MODSEQ \((\d+)\)\)", l) for l in lines[:-1]]
    assert all(got), lines
    assert [(int(m.group(1)), int(m.group(2))) for m in got] == [(4, 4), (6, 6), (8, 8)]
    new = [int(m.group(3)) for m in got]
    assert len(set(new)) == 3 and min(new) > h
    assert modseqs(authed)[6] == new[1]
    authed.script(
        """
        C: f1 FETCH 6 (FLAGS)
        S: * 6 FETCH (FLAGS (\\Deleted))
        S: f1 OK FETCH completed
        """
    )


def test_store_unchangedsince_conflict_gives_modified(authed, new_conv):
    """
    RFC 7162 section 3.1.3, example d105: messages changed since the
    client's MODSEQ are left alone and named in [MODIFIED].
    """
    fill(authed, 9)
    authed.ok("s1 SELECT INBOX (CONDSTORE)")
    h = highest(authed)
    other = new_conv()
    other.login()
    other.ok("o1 SELECT INBOX")
    other.ok("o2 STORE 7,9 +FLAGS.SILENT (\\Seen)")
    lines = authed.transact(f"d105 STORE 7,5,9 (UNCHANGEDSINCE {h}) +FLAGS.SILENT (\\Deleted)")
    assert lines[-1] == "d105 OK [MODIFIED 7,9] Conditional STORE failed"
    assert any(re.fullmatch(r"\* 5 FETCH \(MODSEQ \(\d+\)\)", l) for l in lines), lines
    authed.script(
        """
        C: f1 FETCH 5,7,9 (FLAGS)
        S: * 5 FETCH (FLAGS (\\Deleted))
        S: * 7 FETCH (FLAGS (\\Seen))
        S: * 9 FETCH (FLAGS (\\Seen))
        S: f1 OK FETCH completed
        C: u1 UID STORE 7 (UNCHANGEDSINCE 0) +FLAGS (\\Answered)
        S: u1 OK [MODIFIED 7] Conditional STORE failed
        """
    )


def test_store_reports_modseq_once_enabled(authed):
    fill(authed, 2)
    authed.ok("s1 SELECT INBOX")
    line = authed.ok("t1 STORE 1 +FLAGS (\\Seen)")[0]
    assert line == "* 1 FETCH (FLAGS (\\Seen))"
    authed.ok("e1 ENABLE CONDSTORE")
    line = authed.ok("t2 STORE 2 +FLAGS (\\Answered)")[0]
    m = re.fullmatch(r"\* 2 FETCH \(FLAGS \(\\Answered\) MODSEQ \((\d+)\)\)", line)
    assert m and int(m.group(1)) == highest(authed)


def test_unsolicited_fetch_carries_modseq(authed, new_conv):
    """RFC 7162 section 3.1.2: flag changes made elsewhere come with MODSEQ."""
    fill(authed, 3)
    authed.ok("s1 SELECT INBOX (CONDSTORE)")
    other = new_conv()
    other.login()
    other.ok("o1 SELECT INBOX")
    other.ok("o2 STORE 2 +FLAGS.SILENT (\\Flagged)")
    lines = authed.ok("n1 NOOP")
    m = re.fullmatch(r"\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \((\d+)\)\)", lines[0])
    assert m, lines
    assert int(m.group(1)) == highest(authed)


def test_search_modseq(authed):
    """RFC 7162 section 3.1.5: SEARCH MODSEQ, with (MODSEQ n) in the result."""
    fill(authed, 6)
    authed.ok("s1 SELECT INBOX")
    h = highest(authed)
    authed.ok("t1 STORE 2,5,6 +FLAGS.SILENT (\\Draft)")
    top = highest(authed)
    authed.script(
        f"""
        C: a SEARCH MODSEQ "/flags/\\\\draft" all {h + 1}
        S: * SEARCH 2 5 6 (MODSEQ {top})
        S: a OK SEARCH completed
        C: b UID SEARCH RETURN (ALL COUNT) MODSEQ {h + 1}
        S: * ESEARCH (TAG "b") UID ALL 2,5:6 COUNT 3 MODSEQ {top}
        S: b OK UID SEARCH completed
        C: c SEARCH MODSEQ {top + 1}
        S: * SEARCH
        S: c OK SEARCH completed
        C: d SEARCH RETURN (MIN) MODSEQ {h + 1}
        S: * ESEARCH (TAG "d") MIN 2 MODSEQ {{{{\\d+}}}}
        S: d OK SEARCH completed
        """
    )
    ms = modseqs(authed)
    # MIN alone: the MODSEQ is that of the message returned (message 2).
    assert f"MIN 2 MODSEQ {ms[2]}" in authed.ok(f"d2 SEARCH RETURN (MIN) MODSEQ {h + 1}")[0]


def test_status_highestmodseq_grows(authed):
    fill(authed, 2)
    h1 = highest(authed)
    authed.ok("s1 SELECT INBOX")
    authed.ok("t1 STORE 1 +FLAGS.SILENT (\\Seen)")
    h2 = highest(authed)
    authed.ok("t2 STORE 1 +FLAGS.SILENT (\\Seen)")  # no change, no new MODSEQ
    assert h2 > h1 and highest(authed) == h2


def test_bad_select_parameter_keeps_mailbox(authed):
    fill(authed, 1)
    authed.ok("s1 SELECT INBOX")
    authed.script(
        """
        C: s2 SELECT INBOX (FOO)
        S: s2 BAD {{.*}}Unknown select parameter FOO{{.*}}
        C: s3 SELECT INBOX (QRESYNC (1 2))
        S: s3 BAD {{.*}}ENABLE QRESYNC{{.*}}
        C: n1 NOOP
        S: n1 OK NOOP completed
        """
    )
    assert authed.proto.selected is not None


def test_unchangedsince_check_and_write_are_one_step_in_process(authed, new_conv):
    """
    A flag change by another session of this process cannot slip between
    the UNCHANGEDSINCE check and the write: both take the mailbox's
    flag_lock, so while one holds it the other waits.
    """
    import threading

    from imapd.selected import flag_lock

    fill(authed, 2)
    authed.ok("s1 SELECT INBOX (CONDSTORE)")
    other = new_conv()
    other.login()
    other.ok("o1 SELECT INBOX")
    lock = flag_lock(authed.proto.selected.mailbox)
    # Two sessions, two mailbox objects, one lock.
    assert other.proto.selected.mailbox is not authed.proto.selected.mailbox
    assert flag_lock(other.proto.selected.mailbox) is lock
    got = []
    with lock:
        t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.2)))
        t.start()
        t.join()
    assert got == [False]  # another thread could not take it meanwhile


ENABLING = [
    "FETCH 1 (MODSEQ)",
    "FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
    "SEARCH MODSEQ 1",
    "STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)",
    "STATUS INBOX (HIGHESTMODSEQ)",
    "ENABLE CONDSTORE",
]


@pytest.mark.parametrize("command", ENABLING)
def test_enabling_command_while_selected_reports_highestmodseq(authed, command):
    """
    RFC 7162 section 3.1: a CONDSTORE enabling command issued while a
    mailbox is selected answers, before its own data, an untagged
    OK [HIGHESTMODSEQ] of that mailbox; once only.
    """
    fill(authed, 2)
    lines = authed.ok("s1 SELECT INBOX")
    [selected_highest] = [l for l in lines if "HIGHESTMODSEQ" in l]
    lines = authed.ok(f"c1 {command}")
    # After ENABLE's own ENABLED line, else first.
    assert lines[1 if command.startswith("ENABLE") else 0] == selected_highest, lines
    assert [l for l in lines if "[HIGHESTMODSEQ" in l] == [selected_highest], lines
    lines = authed.ok("c2 FETCH 1 (MODSEQ)")
    assert not any("[HIGHESTMODSEQ" in l for l in lines), lines


def test_select_condstore_reports_only_the_new_mailbox(authed):
    """SELECT (CONDSTORE) over another selected mailbox says the new mailbox's HIGHESTMODSEQ, once."""
    fill(authed, 1)
    authed.ok("c0 CREATE Other")
    authed.ok("s1 SELECT INBOX")
    lines = authed.ok("s2 SELECT Other (CONDSTORE)")
    assert sum("[HIGHESTMODSEQ" in l for l in lines) == 1, lines
