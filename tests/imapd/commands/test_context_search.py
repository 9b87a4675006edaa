"""
RFC 5267 CONTEXT=SEARCH: ESEARCH PARTIAL, UPDATE with unsolicited
ADDTO/REMOVEFROM as the mailbox changes (this session, another session,
another process), CANCELUPDATE and NOUPDATE, as conversations with two
sessions interleaved, on each store.  The exact lines were checked
against Dovecot 2.3.19 where it behaves the same (see the docstrings).
"""

import os
import subprocess
import sys

from imapd.server import SessionLimits

#: The default bound on updating searches per session.
MAX_UPDATING = SessionLimits().max_updating_searches

from conversation_helpers import RECENT, append, second


def fill(conv, count, seen=()):
    """APPEND C{count} messages (1-based C{seen} get \\Seen), then SELECT INBOX."""
    for n in range(1, count + 1):
        append(conv, f"a{n}", n, "(\\Seen) " if n in seen else "")
    conv.ok("s1 SELECT INBOX")


def test_capability_advertised(authed):
    """CONTEXT=SEARCH is in the authenticated capability list."""
    assert "CONTEXT=SEARCH" in authed.ok("c1 CAPABILITY")[0].split()


def test_partial(authed):
    """
    PARTIAL low:high gives that window of the result, echoing the range
    (reversed ranges ascending) and NIL past the end; MIN/MAX/COUNT still
    describe the whole result (Dovecot 2.3 answers these lines exactly).
    """
    fill(authed, 6)
    authed.ok("d1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    authed.ok("d2 EXPUNGE")
    authed.script(
        """
        C: p1 SEARCH RETURN (PARTIAL 2:3) ALL
        S: * ESEARCH (TAG "p1") PARTIAL (2:3 2:3)
        S: p1 OK SEARCH completed
        C: p2 SEARCH RETURN (PARTIAL 3:2 COUNT MIN) ALL
        S: * ESEARCH (TAG "p2") MIN 1 PARTIAL (2:3 2:3) COUNT 5
        S: p2 OK SEARCH completed
        C: p3 UID SEARCH RETURN (PARTIAL 1:2) ALL
        S: * ESEARCH (TAG "p3") UID PARTIAL (1:2 1,3)
        S: p3 OK UID SEARCH completed
        C: p4 UID SEARCH RETURN (PARTIAL 4:100) ALL
        S: * ESEARCH (TAG "p4") UID PARTIAL (4:100 5:6)
        S: p4 OK UID SEARCH completed
        C: p5 SEARCH RETURN (PARTIAL 7:9) ALL
        S: * ESEARCH (TAG "p5") PARTIAL (7:9 NIL)
        S: p5 OK SEARCH completed
        C: p6 SEARCH RETURN (CONTEXT) ALL
        S: * ESEARCH (TAG "p6") ALL 1:5
        S: p6 OK SEARCH completed
        """
    )


def test_partial_syntax_errors(authed):
    """At most one of PARTIAL and ALL; the range is two non-zero numbers, no *."""
    fill(authed, 2)
    for n, opts in enumerate(["PARTIAL 1:2 ALL", "ALL PARTIAL 1:2", "PARTIAL 1:2 PARTIAL 3:4",
                              "PARTIAL 0:2", "PARTIAL 1:*", "PARTIAL 5", "PARTIAL"]):
        lines = authed.transact(f"b{n} SEARCH RETURN ({opts}) ALL")
        assert lines == [lines[-1]] and lines[-1].startswith(f"b{n} BAD "), (opts, lines)


def test_partial_save_keeps_the_window(authed):
    """SAVE with PARTIAL saves the window returned (as Dovecot 2.3 does)."""
    fill(authed, 5)
    authed.script(
        """
        C: t1 SEARCH RETURN (SAVE PARTIAL 2:3) ALL
        S: * ESEARCH (TAG "t1") PARTIAL (2:3 2:3)
        S: t1 OK SEARCH completed
        C: t2 FETCH $ UID
        S: * 2 FETCH (UID 2)
        S: * 3 FETCH (UID 3)
        S: t2 OK FETCH completed
        """
    )


def test_update_from_another_session(authed, new_conv):
    """
    Flag changes, new mail and an expunge by another session reach an
    updating UID SEARCH at the next NOOP: REMOVEFROM/ADDTO with position
    0, ADDTO after EXISTS, REMOVEFROM before EXPUNGE (Dovecot's lines).
    """
    fill(authed, 6, seen=(1, 3, 5))
    other = second(new_conv)
    authed.script(
        """
        C: x1 UID SEARCH RETURN (UPDATE ALL) UNSEEN
        S: * ESEARCH (TAG "x1") UID ALL 2,4,6
        S: x1 OK UID SEARCH completed
        C: x2 UID SEARCH RETURN (UPDATE) UNSEEN
        S: * ESEARCH (TAG "x2") UID
        S: x2 OK UID SEARCH completed
        """
    )
    other.ok("b1 STORE 1 -FLAGS.SILENT (\\Seen)")
    other.ok("b2 STORE 2 +FLAGS.SILENT (\\Seen)")
    authed.script(
        """
        C: n1 NOOP
        S: * 1 FETCH (FLAGS ({{(\\\\Recent)?}}))
        S: * 2 FETCH (FLAGS (\\Seen{{( \\\\Recent)?}}))
        S: * ESEARCH (TAG "x1") UID REMOVEFROM (0 2) ADDTO (0 1)
        S: * ESEARCH (TAG "x2") UID REMOVEFROM (0 2) ADDTO (0 1)
        S: n1 OK NOOP completed
        """
    )
    append(other, "b3", 7)
    authed.script(
        """
        C: n2 NOOP
        S: * 7 EXISTS
        S: * {{\\d}} RECENT
        S: * ESEARCH (TAG "x1") UID ADDTO (0 7)
        S: * ESEARCH (TAG "x2") UID ADDTO (0 7)
        S: n2 OK NOOP completed
        """
    )
    other.ok("b4 STORE 4 +FLAGS.SILENT (\\Deleted)")
    other.ok("b5 EXPUNGE")
    authed.script(
        """
        C: n3 NOOP
        S: * ESEARCH (TAG "x1") UID REMOVEFROM (0 4)
        S: * ESEARCH (TAG "x2") UID REMOVEFROM (0 4)
        S: * 4 EXPUNGE
        S: n3 OK NOOP completed
        """
    )
    # Nothing changed: nothing more is said.
    assert authed.ok("n4 NOOP") == ["n4 OK NOOP completed"]


def test_message_number_results_wait_for_a_command_without_sequence_numbers(authed, new_conv):
    """
    A SEARCH (message numbers) result is updated neither during FETCH nor
    during STORE (RFC 3501 section 7.4.1 holds EXPUNGE back then, and the
    numbers must stay valid); the next NOOP brings REMOVEFROM with the old
    number before the EXPUNGE, and ADDTO with new numbers after EXISTS.
    """
    fill(authed, 4)
    other = second(new_conv)
    authed.script(
        """
        C: x1 SEARCH RETURN (UPDATE COUNT) UNDELETED
        S: * ESEARCH (TAG "x1") COUNT 4
        S: x1 OK SEARCH completed
        """
    )
    other.ok("b1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("b2 EXPUNGE")
    append(other, "b3", 5)
    authed.script(
        """
        C: f1 FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS (\\Recent))
        S: * 5 EXISTS
        S: * {{\\d}} RECENT
        S: f1 OK FETCH completed
        C: n1 NOOP
        S: * ESEARCH (TAG "x1") REMOVEFROM (0 2)
        S: * 2 EXPUNGE
        S: * ESEARCH (TAG "x1") ADDTO (0 4)
        S: n1 OK NOOP completed
        """
    )


def test_own_changes(authed):
    """
    This session's own UID STORE updates the result before its tagged OK;
    its own EXPUNGE and MOVE say REMOVEFROM before each EXPUNGE.
    """
    fill(authed, 5)
    authed.ok("c1 CREATE Other")
    authed.script(
        """
        C: x1 UID SEARCH RETURN (UPDATE) UNFLAGGED
        S: * ESEARCH (TAG "x1") UID
        S: x1 OK UID SEARCH completed
        C: u1 UID STORE 2,4 +FLAGS.SILENT (\\Flagged \\Deleted)
        S: * ESEARCH (TAG "x1") UID REMOVEFROM (0 2,4)
        S: u1 OK UID STORE completed
        C: u2 UID STORE 4 -FLAGS.SILENT (\\Flagged)
        S: * ESEARCH (TAG "x1") UID ADDTO (0 4)
        S: u2 OK UID STORE completed
        C: e1 EXPUNGE
        S: * ESEARCH (TAG "x1") UID REMOVEFROM (0 4)
        S: * 4 EXPUNGE
        S: * 2 EXPUNGE
        S: e1 OK EXPUNGE completed
        C: m1 UID MOVE 1 Other
        S: * OK [COPYUID {{\\d+}} 1 1] Moved
        S: * ESEARCH (TAG "x1") UID REMOVEFROM (0 1)
        S: * 1 EXPUNGE
        S: m1 OK UID MOVE completed
        """
    )


def test_content_search_is_updated(authed, new_conv):
    """A program that reads messages (SUBJECT) is evaluated again for new mail."""
    fill(authed, 2)
    other = second(new_conv)
    authed.script(
        """
        C: x1 UID SEARCH RETURN (UPDATE ALL) SUBJECT "quokka"
        S: * ESEARCH (TAG "x1") UID
        S: x1 OK UID SEARCH completed
        """
    )
    append(other, "b1", 3, subject="a quokka")
    append(other, "b2", 4, subject="a wombat")
    authed.script(
        """
        C: n1 NOOP
        S: * 4 EXISTS
        S: * {{\\d}} RECENT
        S: * ESEARCH (TAG "x1") UID ADDTO (0 3)
        S: n1 OK NOOP completed
        """
    )


def test_qresync_removefrom_before_vanished(authed, new_conv):
    """With QRESYNC the expunge is a VANISHED response; REMOVEFROM still comes first."""
    fill(authed, 3)
    authed.ok("e1 ENABLE QRESYNC")
    authed.ok("s2 SELECT INBOX")
    other = second(new_conv)
    authed.ok("x1 UID SEARCH RETURN (UPDATE) ALL")
    other.ok("b1 UID STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("b2 EXPUNGE")
    lines = authed.ok("n1 NOOP")
    assert lines[:2] == ['* ESEARCH (TAG "x1") UID REMOVEFROM (0 2)', "* VANISHED 2"], lines
    assert lines[2].startswith("n1 OK [HIGHESTMODSEQ ") and len(lines) == 3, lines


def test_idle_brings_updates(authed, new_conv):
    """New mail from another session is reported during IDLE at the next poll, with its ADDTO."""
    fill(authed, 1)
    other = second(new_conv)
    authed.ok("x1 UID SEARCH RETURN (UPDATE) ALL")
    authed.send(b"i1 IDLE\r\n")
    assert authed.lines() == ["+ idling"]
    append(other, "b1", 2)
    authed.clock.advance(authed.context.limits.idle_poll_interval)
    assert authed.lines() == ["* 2 EXISTS", RECENT, '* ESEARCH (TAG "x1") UID ADDTO (0 2)']
    authed.send(b"DONE\r\n")
    assert authed.lines() == ["i1 OK IDLE terminated"]


def test_another_process(authed, mail_root, store_kind, tmp_path):
    """
    Mail delivered by another process (its own store object and index,
    as an MDA or another node) reaches the result at the next NOOP.
    """
    fill(authed, 1)
    authed.ok("x1 UID SEARCH RETURN (UPDATE) UNSEEN")
    code = (
        "import sys\n"
        "from storage.registry import open_store\n"
        "store = open_store(sys.argv[1], 'demo', None, sys.argv[2])\n"
        "box = store.open('INBOX')\n"
        "t = box.transaction()\n"
        "t.append(b'Subject: mda\\r\\n\\r\\nbody\\r\\n', ())\n"
        "t.commit()\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    subprocess.run([sys.executable, "-c", code, f"{store_kind}:{mail_root}/%u",
                    str(tmp_path / "index-mda")], check=True, env=env, timeout=60)
    lines = authed.ok("n1 NOOP")
    assert lines == ["* 2 EXISTS", RECENT, '* ESEARCH (TAG "x1") UID ADDTO (0 2)',
                     "n1 OK NOOP completed"], lines


def test_cancelupdate_and_tag_reuse(authed, new_conv):
    """
    CANCELUPDATE stops the updates of the named result; an unknown tag is
    NO (Dovecot: NO Unknown tag); UPDATE under a tag still being updated
    is BAD (RFC 5267 section 4.3), and fine again once cancelled.
    """
    fill(authed, 2)
    other = second(new_conv)
    authed.ok("x1 UID SEARCH RETURN (UPDATE) ALL")
    authed.ok("x2 UID SEARCH RETURN (UPDATE) ALL")
    authed.script(
        """
        C: x1 UID SEARCH RETURN (UPDATE) SEEN
        S: x1 BAD {{.*}}Tag reuse{{.*}}
        C: c1 CANCELUPDATE "x1"
        S: c1 OK CANCELUPDATE completed
        C: c2 CANCELUPDATE "x1"
        S: c2 NO Unknown tag x1{{.*}}
        C: c3 CANCELUPDATE "x2" "zz"
        S: c3 NO Unknown tag zz{{.*}}
        C: c4 CANCELUPDATE
        S: c4 BAD {{.*}}
        """
    )
    append(other, "b1", 3)
    assert authed.ok("n1 NOOP") == ["* 3 EXISTS", RECENT,
                                    '* ESEARCH (TAG "x2") UID ADDTO (0 3)', "n1 OK NOOP completed"]
    authed.ok("x1 UID SEARCH RETURN (UPDATE) ALL")


def test_noupdate(authed, new_conv):
    """
    Past MAX_UPDATING results, and for programs we cannot keep right
    (YOUNGER/OLDER change with the clock, $ with SAVE), the answer is an
    untagged NO [NOUPDATE "tag"], the other options still answered and
    the command OK; those results are not updated later.
    """
    fill(authed, 2)
    other = second(new_conv)
    for n in range(MAX_UPDATING):
        authed.ok(f"u{n} UID SEARCH RETURN (UPDATE) ALL")
    authed.script(
        f"""
        C: z1 UID SEARCH RETURN (UPDATE COUNT) ALL
        S: * NO [NOUPDATE "z1"] Too many updating searches (at most {MAX_UPDATING})
        S: * ESEARCH (TAG "z1") UID COUNT 2
        S: z1 OK UID SEARCH completed
        """
    )
    authed.ok("c1 CANCELUPDATE " + " ".join(f'"u{n}"' for n in range(MAX_UPDATING)))
    authed.script(
        """
        C: z2 UID SEARCH RETURN (UPDATE) YOUNGER 3600
        S: * NO [NOUPDATE "z2"] {{.*}}clock{{.*}}
        S: * ESEARCH (TAG "z2") UID
        S: z2 OK UID SEARCH completed
        C: z3 UID SEARCH RETURN (UPDATE MIN) $
        S: * NO [NOUPDATE "z3"] {{.*}}
        S: * ESEARCH (TAG "z3") UID
        S: z3 OK UID SEARCH completed
        """
    )
    append(other, "b1", 3)
    assert authed.ok("n1 NOOP") == ["* 3 EXISTS", RECENT, "n1 OK NOOP completed"]


def test_updates_end_with_the_selection(authed, new_conv):
    """Updates cease when the mailbox is no longer selected (RFC 5267 section 4.3)."""
    fill(authed, 1)
    other = second(new_conv)
    authed.ok("x1 UID SEARCH RETURN (UPDATE) ALL")
    authed.ok("s2 SELECT INBOX")
    append(other, "b1", 2)
    assert authed.ok("n1 NOOP") == ["* 2 EXISTS", RECENT, "n1 OK NOOP completed"]
    lines = authed.transact('c1 CANCELUPDATE "x1"')
    assert lines[-1].startswith("c1 NO "), lines
